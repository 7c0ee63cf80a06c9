//! Case h, what the access log costs: the keep-alive throughput of case a
//! (`wrk -t1 -c64`) through two fresh sluice nodes over the same backends,
//! one with its access log on (text lines on its standard output, which
//! the harness writes to a file) and one with it off, alternated within
//! each repetition; the median of the repetitions' on / off req/s is the
//! cost, and the
//! sluice process's CPU µs per request (its own threads, the writer's
//! included) says the same with less of the machine's noise.

use std::time::Duration;

use crate::params::Params;
use crate::procfs;
use crate::progress;
use crate::quiet::wait_quiet;
use crate::sluice_node::SluiceNode;
use crate::stack::Layout;
use crate::stats::{cpu_us_per_request, median};
use crate::wrk;

/// wrk's connections, as in case a's first level.
pub const CONNS: usize = 64;

/// The req/s of each run, with the log on and off.
#[derive(Clone, Debug, Default)]
pub struct AccessLogCost {
    pub on: Vec<f64>,
    pub off: Vec<f64>,
    /// The sluice process's CPU µs per request in each run, on and off.
    pub cpu_on: Vec<f64>,
    pub cpu_off: Vec<f64>,
    /// Requests logged in the run with the log on (lines in its log).
    pub lines: u64,
    pub errors: u64,
    pub duration: Duration,
}

impl AccessLogCost {
    /// Median req/s with the log on, off, and the median of each
    /// repetition's on / off (its two runs are next to each other in
    /// time, so they share the machine's conditions best).
    pub fn ratio(&self) -> Option<(f64, f64, f64)> {
        let on = median(&self.on)?;
        let off = median(&self.off)?;
        let paired: Vec<f64> = self.on.iter().zip(&self.off).map(|(a, b)| a / b).collect();
        Some((on, off, median(&paired)?))
    }

    /// Median CPU µs per request with the log on and off.
    pub fn cpu(&self) -> Option<(f64, f64)> {
        Some((median(&self.cpu_on)?, median(&self.cpu_off)?))
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
            let (addr, label, pid) = if logged {
                (on_addr, "on", on.pid())
            } else {
                (off_addr, "off", off.pid())
            };
            wait_quiet(p.quiet_threshold, p.quiet_wait).await;
            let log = layout.dir.join(format!("wrk-access-log-{label}-{rep}.txt"));
            let cpu_before = procfs::cpu_seconds_of(&[pid]);
            let url = format!("http://{addr}/");
            let r = wrk::run(&layout.load_cpus, CONNS, p.duration, &url, &log).await?;
            let cpu = cpu_us_per_request(procfs::cpu_seconds_of(&[pid]) - cpu_before, r.requests);
            progress::say(&format!(
                "access log {label}, rep {rep}: {:.0} req/s, {cpu:.2} CPU µs/request, {} errors",
                r.rps, r.errors
            ));
            cost.errors += r.errors;
            if logged {
                cost.on.push(r.rps);
                cost.cpu_on.push(cpu);
            } else {
                cost.off.push(r.rps);
                cost.cpu_off.push(cpu);
            }
        }
    }
    cost.lines = on.access_lines();
    if let (Some((on_rps, off_rps, ratio)), Some((cpu_on, cpu_off))) = (cost.ratio(), cost.cpu()) {
        progress::say(&format!(
            "access log cost: {on_rps:.0} req/s on vs {off_rps:.0} off ({ratio:.3}×); \
             {cpu_on:.2} vs {cpu_off:.2} CPU µs/request; {} lines written",
            cost.lines
        ));
    }
    Ok(cost)
}
