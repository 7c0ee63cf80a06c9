//! The benchmark run: its parameters (the command line, with the smoke
//! defaults), then the cases in order — a and b against one running stack,
//! c and d on fresh proxies, e on a three-node cluster once everything
//! else is stopped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sluice_testkit::bench::report::Machine;
use sluice_testkit::free_port;

use crate::peers::{Ports, Sizing};
use crate::report::{Report, Versions};
use crate::stack::{Backends, Layout, Proxy, Target};
use crate::{drain, idle, latency, procfs, propagation, throughput, wire};

/// The cases, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// a. keep-alive throughput and latency (wrk)
    Throughput,
    /// b. fixed-rate latency
    FixedRate,
    /// c. idle memory per connection
    Idle,
    /// d. drain fan-out (sluice)
    Drain,
    /// e. cluster propagation (sluice)
    Propagation,
}

/// Descriptors kept free for everything but held connections.
const FD_RESERVE: u64 = 1000;

/// The benchmark's command line.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The sluice binary.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// Every case once in seconds (1 s runs, 1 repetition, 64 connections,
    /// 200 req/s, N = 200 held, drain N = 100 with a 1 s drain, 3
    /// removals); asserts nothing about speed.
    #[arg(long)]
    smoke: bool,
    /// Length of each wrk and fixed-rate run [default: 10s; smoke 1s].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Repetitions of cases a and b [default: 3; smoke 1].
    #[arg(long)]
    reps: Option<usize>,
    /// wrk connection counts [default: 64,256; smoke 64].
    #[arg(long, value_delimiter = ',')]
    conns: Option<Vec<usize>>,
    /// Fixed rate, requests/s [default: 5000, lowered to half the slowest
    /// target's keep-alive req/s if need be; smoke 200].
    #[arg(long)]
    rate: Option<u32>,
    /// Connections of the fixed-rate generator.
    #[arg(long, default_value_t = 64)]
    rate_conns: usize,
    /// Idle connections to hold per proxy [default: 10000; smoke 200],
    /// capped by the open-files limit.
    #[arg(long)]
    idle_n: Option<usize>,
    /// Tunnels of the drain fan-out [default: 100000; smoke 100], capped
    /// by the open-files limit.
    #[arg(long)]
    drain_n: Option<usize>,
    /// Drain timeout of the drain fan-out [default: 5s; smoke 1s].
    #[arg(long, value_parser = humantime::parse_duration)]
    drain_timeout: Option<Duration>,
    /// Removals of the propagation case [default: 50; smoke 3].
    #[arg(long)]
    removals: Option<usize>,
    /// Cases to run [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    cases: Option<Vec<Case>>,
    /// The machine counts as quiet at or below this CPU use (percent,
    /// summed over CPUs).
    #[arg(long, default_value_t = 15.0)]
    quiet_threshold: f64,
    /// Longest wait for a quiet machine before a run [default: 30s; smoke 0s].
    #[arg(long, value_parser = humantime::parse_duration)]
    quiet_wait: Option<Duration>,
    /// Also write the whole document to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the directory of configs and raw logs.
    #[arg(long)]
    keep: bool,
}

/// Resolved parameters.
#[derive(Clone, Debug)]
pub struct Params {
    /// The sluice binary (absolute) and as the command line named it.
    pub sluice: PathBuf,
    pub sluice_as_given: PathBuf,
    pub smoke: bool,
    pub duration: Duration,
    pub reps: usize,
    pub conns: Vec<usize>,
    /// wrk warm-up per target before case a.
    pub warmup: Duration,
    pub rate: Option<u32>,
    pub rate_conns: usize,
    pub rate_duration: Duration,
    pub idle_requested: usize,
    pub idle_n: usize,
    pub idle_warmup: usize,
    pub drain_requested: usize,
    pub drain_n: usize,
    pub drain_timeout: Duration,
    pub removals: usize,
    pub cases: Vec<Case>,
    pub quiet_threshold: f64,
    pub quiet_wait: Duration,
    /// Pause before each RSS reading.
    pub settle: Duration,
    /// Pause between closing the held connections and reading what RSS the
    /// proxy kept (case c).
    pub after_close: Duration,
    pub fd_soft: u64,
    pub fd_hard: u64,
    /// Most connections a proxy can hold: (hard limit − 1000) / 2.
    pub conn_cap: usize,
    pub keep: bool,
    pub out: Option<PathBuf>,
    /// The command line, for the report.
    pub command: String,
}

impl RunArgs {
    /// Resolves the defaults (module docs) and the open-files cap; raises
    /// this process's soft open-files limit to the hard one.
    pub fn params(&self, command: String) -> anyhow::Result<Params> {
        if !self.sluice.is_file() {
            bail!(
                "{} is not a file: build it (`cargo build --release --bin sluice`) or pass --sluice PATH",
                self.sluice.display()
            );
        }
        let sluice = self
            .sluice
            .canonicalize()
            .with_context(|| format!("resolving {}", self.sluice.display()))?;
        let smoke = self.smoke;
        let (fd_soft, fd_hard) = procfs::raise_nofile();
        let conn_cap = (fd_hard.saturating_sub(FD_RESERVE) / 2) as usize;
        let duration =
            self.duration
                .unwrap_or(pick(smoke, Duration::from_secs(10), Duration::from_secs(1)));
        let idle_requested = self.idle_n.unwrap_or(pick(smoke, 10_000, 200));
        let drain_requested = self.drain_n.unwrap_or(pick(smoke, 100_000, 100));
        let conns = self
            .conns
            .clone()
            .unwrap_or_else(|| pick(smoke, vec![64, 256], vec![64]));
        let reps = self.reps.unwrap_or(pick(smoke, 3, 1));
        if reps == 0 || conns.is_empty() || conns.contains(&0) || self.rate_conns == 0 {
            bail!("--reps, --conns and --rate-conns must be at least 1");
        }
        if conn_cap == 0 {
            bail!("the open-files limit ({fd_hard}) leaves no room for held connections");
        }
        Ok(Params {
            sluice,
            sluice_as_given: self.sluice.clone(),
            smoke,
            duration,
            reps,
            warmup: pick(smoke, Duration::from_secs(2), Duration::ZERO),
            rate: self.rate.or(smoke.then_some(200)),
            rate_conns: self.rate_conns,
            rate_duration: duration,
            idle_requested,
            idle_n: idle_requested.min(conn_cap),
            idle_warmup: pick(smoke, 300, 20),
            drain_requested,
            drain_n: drain_requested.min(conn_cap),
            drain_timeout: self.drain_timeout.unwrap_or(pick(
                smoke,
                Duration::from_secs(5),
                Duration::from_secs(1),
            )),
            removals: self.removals.unwrap_or(pick(smoke, 50, 3)),
            cases: self.cases.clone().unwrap_or_else(|| {
                vec![
                    Case::Throughput,
                    Case::FixedRate,
                    Case::Idle,
                    Case::Drain,
                    Case::Propagation,
                ]
            }),
            quiet_threshold: self.quiet_threshold,
            quiet_wait: self.quiet_wait.unwrap_or(pick(
                smoke,
                Duration::from_secs(30),
                Duration::ZERO,
            )),
            settle: pick(smoke, Duration::from_secs(2), Duration::from_millis(300)),
            after_close: pick(smoke, Duration::from_secs(10), Duration::from_millis(300)),
            fd_soft,
            fd_hard,
            conn_cap,
            keep: self.keep,
            out: self.out.clone(),
            conns,
            command,
        })
    }
}

/// `quick` in smoke mode, else `full`.
fn pick<T>(smoke: bool, full: T, quick: T) -> T {
    if smoke {
        quick
    } else {
        full
    }
}

/// The running backends and proxies of cases a and b.
pub struct Setup<'a> {
    pub layout: &'a Layout,
    pub backends: &'a Backends,
    pub proxies: Vec<Proxy>,
}

impl Setup<'_> {
    /// The running proxy for `target` (`None` for direct).
    pub fn proxy(&self, target: Target) -> Option<&Proxy> {
        self.proxies.iter().find(|p| p.target() == target)
    }

    /// Where HTTP requests for `target` go.
    pub fn addr(&self, target: Target) -> anyhow::Result<SocketAddr> {
        match self.proxy(target) {
            Some(p) => p.addr(&self.layout.ports, false),
            None if target == Target::Direct => Ok(self.backends.direct(&self.layout.ports)),
            None => bail!("{} is not running", target.label()),
        }
    }

    /// One `GET /` through every target, so a broken setup fails here
    /// with a clear message rather than as a table of errors.
    async fn check(&self) -> anyhow::Result<()> {
        for t in Target::ALL {
            let addr = self.addr(t)?;
            let mut stream = tokio::net::TcpStream::connect(addr)
                .await
                .with_context(|| format!("{}: connecting to {addr}", t.label()))?;
            wire::get(&mut stream, &mut Vec::new())
                .await
                .with_context(|| {
                    format!(
                        "{}: GET / at {addr} (logs in {})",
                        t.label(),
                        self.layout.dir.display()
                    )
                })?;
        }
        Ok(())
    }
}

/// CPUs of the load generator and of the server side: CPU 0 and CPU 1,
/// or both on CPU 0 on a one-CPU machine.
fn cpus() -> (String, String) {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        ("0".into(), "1".into())
    } else {
        ("0".into(), "0".into())
    }
}

/// Runs the cases of `p` with configs and logs in `dir`.
pub async fn run(p: &Params, dir: &Path) -> anyhow::Result<Report> {
    let clock = Instant::now();
    let started = sluice_clock::now();
    let (load_cpus, server_cpus) = cpus();
    let ports = Ports {
        http_backends: [free_port(), free_port()],
        ws_backends: [free_port(), free_port()],
        haproxy_http: free_port(),
        haproxy_ws: free_port(),
        nginx_http: free_port(),
        nginx_ws: free_port(),
    };
    let layout = Layout {
        load_cpus: load_cpus.clone(),
        server_cpus: server_cpus.clone(),
        sluice: p.sluice.clone(),
        dir: dir.to_path_buf(),
        ports,
        sizing: Sizing {
            fd_limit: p.fd_hard,
            upstream_keepalive: p
                .conns
                .iter()
                .copied()
                .max()
                .unwrap_or(64)
                .max(p.rate_conns),
        },
    };
    let mut report = Report {
        started,
        machine: Machine::probe(&p.sluice),
        versions: versions(),
        load_cpus,
        server_cpus,
        throughput: None,
        latency: None,
        idle: Vec::new(),
        drain: None,
        propagation: None,
        total: Duration::ZERO,
    };
    if p.idle_n < p.idle_requested || p.drain_n < p.drain_requested {
        crate::say(&format!(
            "open-files hard limit {}: a proxy holds 2 descriptors per connection, so held connections are capped at ({} − {FD_RESERVE}) / 2 = {} (idle N = {}, drain N = {}; 100,000 tunnels do not fit)",
            p.fd_hard, p.fd_hard, p.conn_cap, p.idle_n, p.drain_n
        ));
    }
    let wants = |c: Case| p.cases.contains(&c);

    let backends = Backends::start(&layout)?;
    if wants(Case::Throughput) || wants(Case::FixedRate) {
        let mut proxies = Vec::new();
        for t in Target::PROXIES {
            proxies.push(Proxy::start(&layout, t, false, "main").await?);
        }
        let setup = Setup {
            layout: &layout,
            backends: &backends,
            proxies,
        };
        setup.check().await?;
        if wants(Case::Throughput) {
            report.throughput = Some(throughput::run(p, &setup).await?);
        }
        if wants(Case::FixedRate) {
            report.latency = Some(latency::run(p, &setup, report.throughput.as_ref()).await?);
        }
    }
    if wants(Case::Idle) {
        report.idle = idle::run(p, &layout).await?;
    }
    if wants(Case::Drain) {
        report.drain = Some(drain::run(p, &layout).await?);
    }
    drop(backends);
    if wants(Case::Propagation) {
        report.propagation = Some(propagation::run(&p.sluice, p.removals).await?);
    }
    report.total = clock.elapsed();
    Ok(report)
}

/// The peers' and tools' versions (first line of what they print).
fn versions() -> Versions {
    let first_line = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .ok()
            .and_then(|o| {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                text.lines().next().map(short_version)
            })
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| format!("{program}: version unknown"))
    };
    Versions {
        haproxy: first_line("haproxy", "-v"),
        nginx: first_line("nginx", "-v"),
        wrk: first_line("wrk", "-v"),
        rustc: first_line("rustc", "--version"),
    }
}

/// A version line without its decoration: `HAProxy version 2.6.12 … -
/// https://…` → `HAProxy 2.6.12 …`, `nginx version: nginx/1.22.1` →
/// `nginx/1.22.1`, `wrk 4.1.0 [epoll] Copyright …` → `wrk 4.1.0 [epoll]`.
fn short_version(line: &str) -> String {
    let line = line.trim();
    let line = line.strip_prefix("nginx version: ").unwrap_or(line);
    let line = line.split(" - http").next().unwrap_or(line);
    let line = line.split(" Copyright").next().unwrap_or(line);
    line.replacen("HAProxy version ", "HAProxy ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        assert_eq!(
            short_version("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"),
            "HAProxy 2.6.12-1+deb12u4 2026/10/17"
        );
        assert_eq!(short_version("nginx version: nginx/1.22.1"), "nginx/1.22.1");
        assert_eq!(
            short_version("wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"),
            "wrk debian/4.1.0-3+b2 [epoll]"
        );
        assert_eq!(
            short_version("rustc 1.95.0 (59807616e 2026-04-14)"),
            "rustc 1.95.0 (59807616e 2026-04-14)"
        );
    }
}
