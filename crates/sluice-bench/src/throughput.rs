//! Case a, keep-alive throughput and latency: `wrk -t1 -c<conns>` against
//! every target, the targets interleaved (rotated) within each repetition,
//! each run preceded by the quiet-machine check. Around every run the CPU
//! time of the server processes (nginx backend + proxy, all threads and
//! descendants) is read, giving CPU µs per request.

use std::net::SocketAddr;

use crate::params::Params;
use crate::procfs;
use crate::progress;
use crate::quiet::{wait_quiet, Quiet};
use crate::stack::Setup;
use crate::stack::{server_pids, Target};
use crate::stats::{cpu_us_per_request, median};
use crate::wrk::{self, WrkResult};

/// One wrk run.
#[derive(Clone, Debug)]
pub struct Run {
    pub rep: usize,
    pub conns: usize,
    pub target: Target,
    pub wrk: WrkResult,
    /// Server-side CPU µs per request.
    pub cpu_us: f64,
    pub quiet: Quiet,
}

/// Medians over the repetitions of one (conns, target).
#[derive(Clone, Debug)]
pub struct Row {
    pub conns: usize,
    pub target: Target,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us: f64,
    /// `cpu_us` minus direct's (`None` for direct itself).
    pub extra_cpu_us: Option<f64>,
    pub errors: u64,
    pub runs: usize,
    pub contended: usize,
}

/// Every run, in the order they ran.
#[derive(Clone, Debug, Default)]
pub struct ThroughputResult {
    pub runs: Vec<Run>,
}

impl ThroughputResult {
    /// One row per (conns, target), conns ascending, targets in
    /// [`Target::ALL`] order.
    pub fn rows(&self) -> Vec<Row> {
        let mut conns: Vec<usize> = self.runs.iter().map(|r| r.conns).collect();
        conns.sort_unstable();
        conns.dedup();
        let mut rows = Vec::new();
        for c in conns {
            let of = |t: Target| -> Vec<&Run> {
                self.runs
                    .iter()
                    .filter(|r| r.conns == c && r.target == t)
                    .collect()
            };
            let med = |runs: &[&Run], f: fn(&Run) -> f64| {
                median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
            };
            let direct_cpu = med(&of(Target::Direct), |r| r.cpu_us);
            for t in Target::ALL {
                let runs = of(t);
                if runs.is_empty() {
                    continue;
                }
                let cpu_us = med(&runs, |r| r.cpu_us);
                rows.push(Row {
                    conns: c,
                    target: t,
                    rps: med(&runs, |r| r.wrk.rps),
                    p50_us: med(&runs, |r| r.wrk.p50_us),
                    p99_us: med(&runs, |r| r.wrk.p99_us),
                    cpu_us,
                    extra_cpu_us: (t != Target::Direct).then_some(cpu_us - direct_cpu),
                    errors: runs.iter().map(|r| r.wrk.errors).sum(),
                    runs: runs.len(),
                    contended: runs.iter().filter(|r| r.quiet.contended).count(),
                });
            }
        }
        rows
    }

    /// The row of `target` at `conns`.
    pub fn row(&self, conns: usize, target: Target) -> Option<Row> {
        self.rows()
            .into_iter()
            .find(|r| r.conns == conns && r.target == target)
    }
}

/// Runs case a against the running stack.
pub async fn run(p: &Params, s: &Setup<'_>) -> anyhow::Result<ThroughputResult> {
    if !p.warmup.is_zero() {
        progress::say(&format!(
            "throughput: warm-up, {:?} of wrk -c64 per target",
            p.warmup
        ));
        for t in Target::ALL {
            let log = s.layout.dir.join(format!("wrk-warmup-{}.txt", t.slug()));
            wrk::run(&s.layout.load_cpus, 64, p.warmup, &url(s.addr(t)?), &log).await?;
        }
    }
    let mut result = ThroughputResult::default();
    let total = p.reps * p.conns.len() * Target::ALL.len();
    for rep in 1..=p.reps {
        for &conns in &p.conns {
            for target in Target::rotation(rep - 1) {
                let quiet = wait_quiet(p.quiet_threshold, p.quiet_wait).await;
                let pids = server_pids(s.backends, s.proxy(target));
                let cpu_before = procfs::cpu_seconds_of(&pids);
                let log = s
                    .layout
                    .dir
                    .join(format!("wrk-{}-c{conns}-rep{rep}.txt", target.slug()));
                let wrk = wrk::run(
                    &s.layout.load_cpus,
                    conns,
                    p.duration,
                    &url(s.addr(target)?),
                    &log,
                )
                .await?;
                let cpu = procfs::cpu_seconds_of(&pids) - cpu_before;
                let run = Run {
                    rep,
                    conns,
                    target,
                    cpu_us: cpu_us_per_request(cpu, wrk.requests),
                    wrk,
                    quiet,
                };
                progress::say(&format!(
                    "throughput {}/{total}: rep {rep}, {conns} conns, {}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {:.1} CPU µs/req, {} errors{}",
                    result.runs.len() + 1,
                    target.label(),
                    run.wrk.rps,
                    run.wrk.p50_us,
                    run.wrk.p99_us,
                    run.cpu_us,
                    run.wrk.errors,
                    contended_note(&quiet)
                ));
                result.runs.push(run);
            }
        }
    }
    Ok(result)
}

/// `http://<addr>/`.
fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

/// ` (contended: 37% busy before)` when the quiet check gave up.
pub fn contended_note(q: &Quiet) -> String {
    if q.contended {
        format!(
            " (contended: machine {:.0}% busy before the run, after waiting {:.1} s)",
            q.busy,
            q.waited.as_secs_f64()
        )
    } else {
        String::new()
    }
}
