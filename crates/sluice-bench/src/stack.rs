//! The processes under test and who is measured for each target: the two
//! backends (nginx for HTTP, `sluice-bench ws-backend` for WebSocket) and
//! the three proxies, each started on the server CPU and stopped when
//! dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::peers::{self, Ports, Sizing};
use crate::procfs;
use crate::procs::Daemon;
use crate::sluice_node::SluiceNode;
use crate::wire;

/// What wrk and the generators are pointed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Straight at the nginx backend (the reference).
    Direct,
    Sluice,
    Haproxy,
    Nginx,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::Direct,
        Target::Sluice,
        Target::Haproxy,
        Target::Nginx,
    ];
    pub const PROXIES: [Target; 3] = [Target::Sluice, Target::Haproxy, Target::Nginx];

    pub fn label(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Sluice => "sluice",
            Target::Haproxy => "HAProxy",
            Target::Nginx => "nginx",
        }
    }

    /// Its name in file names.
    pub fn slug(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Sluice => "sluice",
            Target::Haproxy => "haproxy",
            Target::Nginx => "nginx",
        }
    }

    /// `ALL` rotated by `by`: the order of a repetition, so that no target
    /// always runs first (slow drift of the machine hits all alike).
    pub fn rotation(by: usize) -> Vec<Target> {
        (0..Self::ALL.len())
            .map(|k| Self::ALL[(k + by) % Self::ALL.len()])
            .collect()
    }
}

/// Where things run.
#[derive(Clone, Debug)]
pub struct Layout {
    /// CPUs of wrk and the generators (`taskset -c`).
    pub load_cpus: String,
    /// CPUs of the backends and the proxy.
    pub server_cpus: String,
    /// The sluice binary.
    pub sluice: PathBuf,
    /// Configs and logs.
    pub dir: PathBuf,
    pub ports: Ports,
    pub sizing: Sizing,
}

/// A proxy started for a case.
pub enum Proxy {
    Sluice {
        node: Box<SluiceNode>,
        http: SocketAddr,
        ws: Option<SocketAddr>,
    },
    Peer {
        target: Target,
        daemon: Daemon,
    },
}

impl Proxy {
    /// Starts `target` (one of [`Target::PROXIES`]) with its HTTP listener,
    /// and its WebSocket one when `ws`. `tag` names sluice's log.
    pub async fn start(
        layout: &Layout,
        target: Target,
        ws: bool,
        tag: &str,
    ) -> anyhow::Result<Proxy> {
        let p = &layout.ports;
        let cpus = &layout.server_cpus;
        match target {
            Target::Sluice => {
                let node =
                    SluiceNode::start(&layout.sluice, cpus, &format!("sluice-{tag}"), &layout.dir)?;
                node.group("http", Duration::from_secs(300), &p.http_backends)
                    .await?;
                let http = node.listener("http").await?;
                let ws = if ws {
                    node.group("ws", Duration::from_secs(300), &p.ws_backends)
                        .await?;
                    Some(node.listener("ws").await?)
                } else {
                    None
                };
                Ok(Proxy::Sluice {
                    node: Box::new(node),
                    http,
                    ws,
                })
            }
            Target::Haproxy => {
                let daemon = peers::start_haproxy(
                    &peers::haproxy_cfg(p, &layout.sizing),
                    &layout.dir,
                    cpus,
                    &[p.haproxy_http, p.haproxy_ws],
                )?;
                Ok(Proxy::Peer { target, daemon })
            }
            Target::Nginx => {
                let daemon = peers::start_nginx(
                    "nginx-proxy",
                    &peers::nginx_proxy_conf(p, &layout.sizing),
                    &layout.dir,
                    cpus,
                    &[p.nginx_http, p.nginx_ws],
                )?;
                Ok(Proxy::Peer { target, daemon })
            }
            Target::Direct => anyhow::bail!("direct is not a proxy"),
        }
    }

    pub fn target(&self) -> Target {
        match self {
            Proxy::Sluice { .. } => Target::Sluice,
            Proxy::Peer { target, .. } => *target,
        }
    }

    /// The proxy's main process.
    pub fn pid(&self) -> u32 {
        match self {
            Proxy::Sluice { node, .. } => node.pid(),
            Proxy::Peer { daemon, .. } => daemon.pid(),
        }
    }

    /// Its HTTP or WebSocket listener.
    pub fn addr(&self, ports: &Ports, ws: bool) -> anyhow::Result<SocketAddr> {
        let local = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Ok(match (self, ws) {
            (Proxy::Sluice { http, .. }, false) => *http,
            (Proxy::Sluice { ws, .. }, true) => {
                ws.context("sluice was started without WebSocket")?
            }
            (
                Proxy::Peer {
                    target: Target::Haproxy,
                    ..
                },
                false,
            ) => local(ports.haproxy_http),
            (
                Proxy::Peer {
                    target: Target::Haproxy,
                    ..
                },
                true,
            ) => local(ports.haproxy_ws),
            (Proxy::Peer { .. }, false) => local(ports.nginx_http),
            (Proxy::Peer { .. }, true) => local(ports.nginx_ws),
        })
    }
}

/// The backends, running for the whole benchmark.
pub struct Backends {
    pub http: Daemon,
    /// Held only to stop it when the backends are dropped.
    _ws: Daemon,
}

impl Backends {
    pub fn start(layout: &Layout) -> anyhow::Result<Backends> {
        let p = &layout.ports;
        let http = peers::start_nginx(
            "nginx-backend",
            &peers::nginx_backend_conf(p, &layout.sizing),
            &layout.dir,
            &layout.server_cpus,
            &p.http_backends,
        )?;
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut args = vec!["ws-backend".to_string()];
        for port in p.ws_backends {
            args.push(format!("--port={port}"));
        }
        let mut ws = Daemon::spawn("ws-backend", &layout.server_cpus, &exe, &args, &layout.dir)?;
        ws.wait_listening(&p.ws_backends)?;
        Ok(Backends { http, _ws: ws })
    }

    /// Address of the first nginx backend port (the direct target).
    pub fn direct(&self, ports: &Ports) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, ports.http_backends[0]))
    }
}

/// The processes whose CPU time counts for a run against `proxy` (or the
/// backend alone, direct): the nginx backend and the proxy, with all their
/// threads and descendants.
pub fn server_pids(backends: &Backends, proxy: Option<&Proxy>) -> Vec<u32> {
    let mut pids = procfs::tree(backends.http.pid());
    if let Some(p) = proxy {
        pids.extend(procfs::tree(p.pid()));
    }
    pids
}

/// The running backends and proxies of cases a, b and i.
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
    pub async fn check(&self) -> anyhow::Result<()> {
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
