//! Case g, TLS at the edge: each proxy terminates TLS with the same
//! certificate (ECDSA P-256, made for the run) and forwards plain HTTP/1.1
//! to the same nginx backends. Three measurements per proxy, the proxies
//! interleaved (rotated) within each repetition, each run preceded by the
//! quiet-machine check:
//!
//! - keep-alive HTTPS: `wrk -t1 -c<conns>` over TLS 1.3: req/s and the
//!   proxy's own CPU µs per request (its extra cost: the backend is not
//!   counted);
//! - new handshakes: the same with `Connection: close`, so every request
//!   is a new connection with a full handshake (wrk resumes no session):
//!   handshakes/s and the proxy's CPU µs per handshake;
//! - HTTP/2: `h2load -t1 -c<conns> -m<streams>` with ALPN h2: req/s.

use std::net::SocketAddr;

use anyhow::Context;
use sluice_testkit::free_port;
use sluice_testkit::tls::TestCa;

use crate::h2load;
use crate::params::Params;
use crate::peers::{self, TlsFiles};
use crate::procfs;
use crate::progress;
use crate::quiet::{wait_quiet, Quiet};
use crate::stack::{Layout, Proxy, Target};
use crate::stats::{cpu_us_per_request, median};
use crate::throughput::contended_note;
use crate::wrk;

/// Keep-alive and handshake runs use this many connections.
pub const CONNS: usize = 64;
/// HTTP/2 runs: connections, and concurrent streams on each.
pub const H2_CONNS: usize = 16;
pub const H2_STREAMS: usize = 32;

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    KeepAlive,
    Handshake,
    Http2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::KeepAlive, Kind::Handshake, Kind::Http2];

    pub fn label(self) -> &'static str {
        match self {
            Kind::KeepAlive => "keep-alive HTTPS req/s",
            Kind::Handshake => "new TLS handshakes/s",
            Kind::Http2 => "HTTP/2 req/s",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::KeepAlive => "keepalive",
            Kind::Handshake => "handshake",
            Kind::Http2 => "h2",
        }
    }
}

/// One run.
#[derive(Clone, Debug)]
pub struct Run {
    pub rep: usize,
    pub kind: Kind,
    pub target: Target,
    pub rps: f64,
    pub requests: u64,
    /// The proxy's own CPU µs per request (or per handshake).
    pub cpu_us: f64,
    pub errors: u64,
    pub quiet: Quiet,
}

/// Medians over the repetitions of one (kind, target).
#[derive(Clone, Debug)]
pub struct Row {
    pub kind: Kind,
    pub target: Target,
    pub rps: f64,
    pub cpu_us: f64,
    pub errors: u64,
    pub runs: usize,
    pub contended: usize,
}

/// Every run, in the order they ran.
#[derive(Clone, Debug, Default)]
pub struct TlsResult {
    pub runs: Vec<Run>,
}

impl TlsResult {
    /// One row per (kind, target), in [`Kind::ALL`] and
    /// [`Target::PROXIES`] order.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for kind in Kind::ALL {
            for target in Target::PROXIES {
                let runs: Vec<&Run> = self
                    .runs
                    .iter()
                    .filter(|r| r.kind == kind && r.target == target)
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let med = |f: fn(&Run) -> f64| {
                    median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
                };
                rows.push(Row {
                    kind,
                    target,
                    rps: med(|r| r.rps),
                    cpu_us: med(|r| r.cpu_us),
                    errors: runs.iter().map(|r| r.errors).sum(),
                    runs: runs.len(),
                    contended: runs.iter().filter(|r| r.quiet.contended).count(),
                });
            }
        }
        rows
    }

    /// The row of `target` for `kind`.
    pub fn row(&self, kind: Kind, target: Target) -> Option<Row> {
        self.rows()
            .into_iter()
            .find(|r| r.kind == kind && r.target == target)
    }
}

/// A proxy with its HTTPS listener.
struct TlsProxy {
    proxy: Proxy,
    addr: SocketAddr,
}

/// Runs case g on fresh proxies (the backends keep running).
pub async fn run(p: &Params, layout: &Layout) -> anyhow::Result<TlsResult> {
    let files = certificate(layout)?;
    let mut proxies = Vec::new();
    for target in Target::PROXIES {
        proxies.push(start(layout, target, &files).await?);
    }
    let mut result = TlsResult::default();
    let total = p.reps * Kind::ALL.len() * Target::PROXIES.len();
    for rep in 1..=p.reps {
        for kind in Kind::ALL {
            for k in 0..proxies.len() {
                let proxy = &proxies[(k + rep - 1) % proxies.len()];
                let target = proxy.proxy.target();
                let quiet = wait_quiet(p.quiet_threshold, p.quiet_wait).await;
                // The proxy alone: its extra cost over the backend.
                let pids = procfs::tree(proxy.proxy.pid());
                let cpu_before = procfs::cpu_seconds_of(&pids);
                let log = layout.dir.join(format!(
                    "tls-{}-{}-rep{rep}.txt",
                    kind.slug(),
                    target.slug()
                ));
                let url = format!("https://{}/", proxy.addr);
                let cpus = &layout.load_cpus;
                let (rps, requests, errors) = match kind {
                    Kind::KeepAlive => {
                        let w = wrk::run(cpus, CONNS, p.duration, &url, &log).await?;
                        (w.rps, w.requests, w.errors)
                    }
                    Kind::Handshake => {
                        let w = wrk::run_with(
                            cpus,
                            CONNS,
                            p.duration,
                            &url,
                            &["Connection: close"],
                            &log,
                        )
                        .await?;
                        (w.rps, w.requests, w.errors)
                    }
                    Kind::Http2 => {
                        let h =
                            h2load::run(cpus, H2_CONNS, H2_STREAMS, p.duration, &url, &log).await?;
                        (h.rps, h.requests, h.errors)
                    }
                };
                let cpu = procfs::cpu_seconds_of(&pids) - cpu_before;
                let run = Run {
                    rep,
                    kind,
                    target,
                    rps,
                    requests,
                    cpu_us: cpu_us_per_request(cpu, requests),
                    errors,
                    quiet,
                };
                progress::say(&format!(
                    "tls {}/{total}: rep {rep}, {}, {}: {:.0}/s, {:.1} proxy CPU µs each, {} errors{}",
                    result.runs.len() + 1,
                    kind.label(),
                    target.label(),
                    run.rps,
                    run.cpu_us,
                    run.errors,
                    contended_note(&quiet)
                ));
                result.runs.push(run);
            }
        }
    }
    Ok(result)
}

/// Makes the run's certificate (a CA of its own and a leaf for 127.0.0.1
/// and localhost) and writes it where the peers read it.
fn certificate(layout: &Layout) -> anyhow::Result<TlsFiles> {
    let ca = TestCa::new("sluice-bench CA");
    let (chain, key) = ca.leaf(&["localhost", "127.0.0.1"]);
    let dir = layout.dir.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = TlsFiles {
        port: 0,
        chain: dir.join("chain.pem"),
        key: dir.join("key.pem"),
        combined: dir.join("combined.pem"),
    };
    let write = |path: &std::path::Path, text: &str| {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(&files.chain, &chain)?;
    write(&files.key, &key)?;
    write(&files.combined, &format!("{chain}{key}"))?;
    Ok(files)
}

/// Starts `target` with an HTTPS listener on a port of its own.
async fn start(layout: &Layout, target: Target, files: &TlsFiles) -> anyhow::Result<TlsProxy> {
    let files = TlsFiles {
        port: free_port(),
        ..files.clone()
    };
    let (p, s, cpus) = (&layout.ports, &layout.sizing, &layout.server_cpus);
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    match target {
        Target::Sluice => {
            let proxy = Proxy::start(layout, target, false, "tls").await?;
            let Proxy::Sluice { node, .. } = &proxy else {
                anyhow::bail!("sluice did not start as sluice");
            };
            let chain = std::fs::read_to_string(&files.chain)?;
            let key = std::fs::read_to_string(&files.key)?;
            node.cert("bench", &chain, &key).await?;
            let addr = node.tls_listener("http", files.port, "bench").await?;
            Ok(TlsProxy { proxy, addr })
        }
        Target::Haproxy => {
            let daemon = peers::start_haproxy(
                &peers::haproxy_tls_cfg(p, s, &files),
                &layout.dir,
                cpus,
                &[p.haproxy_http, files.port],
            )?;
            Ok(TlsProxy {
                proxy: Proxy::Peer { target, daemon },
                addr: local(files.port),
            })
        }
        Target::Nginx => {
            let daemon = peers::start_nginx(
                "nginx-proxy-tls",
                &peers::nginx_tls_conf(p, s, &files),
                &layout.dir,
                cpus,
                &[p.nginx_http, files.port],
            )?;
            Ok(TlsProxy {
                proxy: Proxy::Peer { target, daemon },
                addr: local(files.port),
            })
        }
        Target::Direct => anyhow::bail!("direct is not a proxy"),
    }
}
