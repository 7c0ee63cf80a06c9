//! The side-by-side benchmark run: the cases in order — a, b and i against
//! one running stack, c, d and f on fresh proxies, e on a three-node
//! cluster once everything else is stopped — and the versions of what ran, for
//! the report. What to run is [`crate::params::Params`].

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_testkit::free_port;

use crate::machine::Machine;
use crate::params::{Case, Params, FD_RESERVE};
use crate::peers::{Ports, Sizing};
use crate::report::{Report, Versions};
use crate::stack::{Backends, Layout, Proxy, Setup, Target};
use crate::{
    access_log_cost, contended, drain, idle, latency, progress, propagation, removal, throughput,
    tls,
};

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
        contended: None,
        idle: Vec::new(),
        drain: None,
        removal: None,
        tls: None,
        access_log: None,
        propagation: None,
        total: Duration::ZERO,
    };
    if p.idle_n < p.idle_requested || p.drain_n < p.drain_requested {
        progress::say(&format!(
            "open-files hard limit {}: a proxy holds 2 descriptors per connection, so held connections are capped at ({} − {FD_RESERVE}) / 2 = {} (idle N = {}, drain N = {}; 100,000 tunnels do not fit)",
            p.fd_hard, p.fd_hard, p.conn_cap, p.idle_n, p.drain_n
        ));
    }
    let wants = |c: Case| p.cases.contains(&c);

    let backends = Backends::start(&layout)?;
    if wants(Case::Throughput) || wants(Case::FixedRate) || wants(Case::Contended) {
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
        if wants(Case::Contended) {
            report.contended = Some(contended::run(p, &setup).await?);
        }
    }
    if wants(Case::Idle) {
        report.idle = idle::run(p, &layout).await?;
    }
    if wants(Case::Drain) {
        report.drain = Some(drain::run(p, &layout).await?);
    }
    if wants(Case::Removal) {
        report.removal = Some(removal::run(p, &layout).await?);
    }
    if wants(Case::Tls) {
        report.tls = Some(tls::run(p, &layout).await?);
    }
    if wants(Case::AccessLog) {
        report.access_log = Some(access_log_cost::run(p, &layout).await?);
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
