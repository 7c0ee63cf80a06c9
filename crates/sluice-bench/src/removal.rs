//! Case f, a removal under load (sluice only): wrk's keep-alive load
//! through a fresh node whose group holds both HTTP backends, one of them
//! removed (`DELETE`, the README's `sluice backend remove`) halfway
//! through the run. The figures are what the end-to-end test
//! `nothing_finished_is_lost_under_load` leaves out on purpose: how many
//! requests were answered per second across the removal and its drain,
//! next to wrk's errors (R11: a removal fails no request) and the
//! removal call's latency.

use std::time::{Duration, Instant};

use crate::params::Params;
use crate::progress;
use crate::sluice_node::SluiceNode;
use crate::stack::Layout;
use crate::wrk::{self, WrkResult};

/// wrk's connections, as in the end-to-end test.
pub const CONNS: usize = 64;

/// What the case measured.
#[derive(Clone, Debug)]
pub struct RemovalResult {
    /// The group's drain timeout.
    pub drain_timeout: Duration,
    /// The run's length; the removal was sent at half of it.
    pub duration: Duration,
    /// The `DELETE` call's latency.
    pub remove_call: Duration,
    /// wrk's figures over the whole run.
    pub wrk: WrkResult,
}

/// Runs case f.
pub async fn run(p: &Params, layout: &Layout) -> anyhow::Result<RemovalResult> {
    let [kept, removed] = layout.ports.http_backends;
    let node = SluiceNode::start(
        &layout.sluice,
        &layout.server_cpus,
        "sluice-removal",
        &layout.dir,
    )?;
    node.group("removal", p.drain_timeout, &[kept, removed])
        .await?;
    let addr = node.listener("removal").await?;
    progress::say(&format!(
        "removal: wrk with {CONNS} connections through sluice for {:?}; 127.0.0.1:{removed} removed halfway",
        p.duration
    ));
    let url = format!("http://{addr}/");
    let log = layout.dir.join("wrk-removal.log");
    let load = wrk::run(&layout.load_cpus, CONNS, p.duration, &url, &log);
    let removal = async {
        tokio::time::sleep(p.duration / 2).await;
        let sent = Instant::now();
        node.remove_backend("removal", removed).await?;
        anyhow::Ok(sent.elapsed())
    };
    let (wrk, remove_call) = tokio::join!(load, removal);
    let result = RemovalResult {
        drain_timeout: p.drain_timeout,
        duration: p.duration,
        remove_call: remove_call?,
        wrk: wrk?,
    };
    progress::say(&format!(
        "removal: {} requests, {:.0} req/s, {} errors; the DELETE took {:.1} ms",
        result.wrk.requests,
        result.wrk.rps,
        result.wrk.errors,
        result.remove_call.as_secs_f64() * 1e3
    ));
    Ok(result)
}
