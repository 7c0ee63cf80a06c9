//! Case h, what the access log costs: the keep-alive throughput of case a
//! (`wrk -t1 -c64`) through two fresh sluice nodes over the same backends,
//! one with its access log on (text lines on its standard output, which
//! the harness writes to a file) and one with it off, alternated within
//! each repetition; the ratio of their median req/s is the cost.

use std::time::Duration;

use crate::params::Params;
use crate::progress;
use crate::quiet::wait_quiet;
use crate::sluice_node::SluiceNode;
use crate::stack::Layout;
use crate::stats::median;
use crate::wrk;

/// wrk's connections, as in case a's first level.
pub const CONNS: usize = 64;

/// The req/s of each run, with the log on and off.
#[derive(Clone, Debug, Default)]
pub struct AccessLogCost {
    pub on: Vec<f64>,
    pub off: Vec<f64>,
    /// Requests logged in the run with the log on (lines in its log).
    pub lines: u64,
    pub errors: u64,
    pub duration: Duration,
}

impl AccessLogCost {
    /// Median req/s with the log on, off, and on / off.
    pub fn ratio(&self) -> Option<(f64, f64, f64)> {
        let on = median(&self.on)?;
        let off = median(&self.off)?;
        Some((on, off, on / off))
    }
}

/// Runs case h against the backends `layout` names.
pub async fn run(p: &Params, layout: &Layout) -> anyhow::Result<AccessLogCost> {
    let cpus = &layout.server_cpus;
    let backends = &layout.ports.http_backends;
    let on = SluiceNode::start_with_access_log(
        &layout.sluice,
        cpus,
        "sluice-access-log-on",
        &layout.dir,
    )?;
    on.group("http", Duration::from_secs(300), backends).await?;
    let on_addr = on.listener("http").await?;
    let off = SluiceNode::start(&layout.sluice, cpus, "sluice-access-log-off", &layout.dir)?;
    off.group("http", Duration::from_secs(300), backends)
        .await?;
    let off_addr = off.listener("http").await?;
    let mut cost = AccessLogCost {
        duration: p.duration,
        ..AccessLogCost::default()
    };
    for rep in 1..=p.reps {
        // Alternated: neither side always runs first.
        let order = if rep % 2 == 1 {
            [true, false]
        } else {
            [false, true]
        };
        for logged in order {
            let (addr, label) = if logged {
                (on_addr, "on")
            } else {
                (off_addr, "off")
            };
            wait_quiet(p.quiet_threshold, p.quiet_wait).await;
            let log = layout.dir.join(format!("wrk-access-log-{label}-{rep}.txt"));
            let r = wrk::run(
                &layout.load_cpus,
                CONNS,
                p.duration,
                &format!("http://{addr}/"),
                &log,
            )
            .await?;
            progress::say(&format!(
                "access log {label}, rep {rep}: {:.0} req/s, {} errors",
                r.rps, r.errors
            ));
            cost.errors += r.errors;
            if logged {
                cost.on.push(r.rps);
            } else {
                cost.off.push(r.rps);
            }
        }
    }
    cost.lines = on.access_lines();
    if let Some((on_rps, off_rps, ratio)) = cost.ratio() {
        progress::say(&format!(
            "access log cost: {on_rps:.0} req/s on vs {off_rps:.0} off ({ratio:.3}×), {} lines written",
            cost.lines
        ));
    }
    Ok(cost)
}
