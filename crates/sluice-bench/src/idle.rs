//! Case c, idle memory: for each proxy and each kind of connection, a
//! fresh proxy; the `hold` client opens and closes a few hundred
//! connections (warm-up), the proxy's RSS (`VmRSS` of it and its
//! descendants) is read, then N connections are opened — one exchange
//! each — and held, and the RSS is read again, and once more after
//! `steady`, when the memory freed while the N were opened (the allocator
//! keeps freed pages a few seconds before giving them back) has gone. The
//! growth divided by N is the memory one idle connection costs the proxy;
//! the target is judged on the steady reading, and both are reported. Then the connections are
//! closed and, a while later, the RSS is read a third time: what the proxy
//! kept of the load after it was gone.

use std::time::Duration;

use crate::hold::{unix_micros, Holder, Mode};
use crate::params::Params;
use crate::procfs;
use crate::progress;
use crate::stack::{Layout, Proxy, Target};

/// One proxy, one kind of connection.
#[derive(Clone, Debug)]
pub struct Row {
    pub target: Target,
    pub mode: Mode,
    pub n: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// RSS `steady` later, the N still held.
    pub rss_steady_kib: u64,
    /// RSS a while after the N were closed.
    pub rss_closed_kib: u64,
    /// Proxy → backend connections open while the N were held.
    pub backend_conns: usize,
    /// Connections still open when the RSS had been read.
    pub alive: usize,
    /// How long opening the N took.
    pub open_time: Duration,
}

impl Row {
    /// RSS growth per held connection, KiB, just after they opened.
    pub fn kib_per_conn(&self) -> f64 {
        self.per_conn(self.rss_after_kib)
    }

    /// RSS growth per held connection, KiB, once steady.
    pub fn steady_kib_per_conn(&self) -> f64 {
        self.per_conn(self.rss_steady_kib)
    }

    fn per_conn(&self, rss_kib: u64) -> f64 {
        (rss_kib as f64 - self.rss_before_kib as f64) / self.n.max(1) as f64
    }
}

/// Runs case c: keep-alive HTTP first, then WebSocket, each through
/// sluice, HAProxy and nginx.
pub async fn run(p: &Params, layout: &Layout) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for mode in [Mode::Http, Mode::Ws] {
        for target in Target::PROXIES {
            let ws = mode == Mode::Ws;
            let slug = if ws { "ws" } else { "http" };
            let proxy = Proxy::start(layout, target, ws, &format!("idle-{slug}")).await?;
            let addr = proxy.addr(&layout.ports, ws)?;
            let log = layout
                .dir
                .join(format!("hold-idle-{}-{slug}.log", target.slug()));
            let mut holder =
                Holder::start(&layout.load_cpus, addr, mode, p.idle_n, p.idle_warmup, &log).await?;
            tokio::time::sleep(p.settle).await;
            let rss_before_kib = procfs::rss_kib(proxy.pid());
            let open_time = holder.open().await?;
            tokio::time::sleep(p.settle).await;
            let rss_after_kib = procfs::rss_kib(proxy.pid());
            tokio::time::sleep(p.steady).await;
            let rss_steady_kib = procfs::rss_kib(proxy.pid());
            let backend_ports = if ws {
                layout.ports.ws_backends
            } else {
                layout.ports.http_backends
            };
            let backend_conns = procfs::established_to(&backend_ports);
            // The client reports and exits: every held connection closes.
            let report = holder.report(unix_micros() / 1000).await?;
            tokio::time::sleep(p.after_close).await;
            let rss_closed_kib = procfs::rss_kib(proxy.pid());
            let row = Row {
                target,
                mode,
                n: p.idle_n,
                rss_before_kib,
                rss_after_kib,
                rss_steady_kib,
                rss_closed_kib,
                backend_conns,
                alive: report.alive,
                open_time,
            };
            progress::say(&format!(
                "idle {} through {}: {} held ({} still open), RSS {} → {} KiB, {:.2} KiB per connection, {:.2} once steady, {} backend connections; {} KiB after they closed",
                mode.label(),
                target.label(),
                row.n,
                row.alive,
                row.rss_before_kib,
                row.rss_after_kib,
                row.kib_per_conn(),
                row.steady_kib_per_conn(),
                row.backend_conns,
                row.rss_closed_kib
            ));
            rows.push(row);
            drop(proxy);
        }
    }
    Ok(rows)
}
