//! Case b, fixed-rate latency: the open-loop generator
//! ([`crate::fixed_rate`]) at one rate every target sustains, against
//! every target, interleaved within each repetition like case a; the table
//! shows the medians over the repetitions of each percentile.

use crate::fixed_rate::{self, FixedRateResult};
use crate::format::thousands;
use crate::params::Params;
use crate::progress;
use crate::quiet::{wait_quiet, Quiet};
use crate::stack::Setup;
use crate::stack::Target;
use crate::stats::median;
use crate::throughput::{contended_note, ThroughputResult};

/// Share of the slowest target's keep-alive throughput (at the fewest
/// connections measured)
/// used as the fixed rate when none is given.
const AUTO_SHARE: f64 = 0.5;
/// The rate used when none is given, unless a target is too slow for it.
pub const DEFAULT_RATE: u32 = 5_000;

/// One run.
#[derive(Clone, Debug)]
pub struct Run {
    pub rep: usize,
    pub target: Target,
    pub result: FixedRateResult,
    pub quiet: Quiet,
}

/// Medians over the repetitions of one target (µs).
#[derive(Clone, Debug)]
pub struct Row {
    pub target: Target,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: u64,
    pub sent: u64,
    pub errors: u64,
    pub behind: u64,
    pub runs: usize,
    pub contended: usize,
}

/// The rate, how it was chosen, and every run.
#[derive(Clone, Debug, Default)]
pub struct LatencyResult {
    pub rate: u32,
    pub conns: usize,
    pub rate_reason: String,
    pub runs: Vec<Run>,
}

impl LatencyResult {
    pub fn rows(&self) -> Vec<Row> {
        Target::ALL
            .iter()
            .filter_map(|&t| {
                let runs: Vec<&Run> = self.runs.iter().filter(|r| r.target == t).collect();
                if runs.is_empty() {
                    return None;
                }
                let med = |f: fn(&FixedRateResult) -> u64| {
                    median(&runs.iter().map(|r| f(&r.result) as f64).collect::<Vec<_>>())
                        .unwrap_or(f64::NAN)
                };
                Some(Row {
                    target: t,
                    p50_us: med(|r| r.p50_us),
                    p99_us: med(|r| r.p99_us),
                    p999_us: med(|r| r.p999_us),
                    max_us: runs.iter().map(|r| r.result.max_us).max().unwrap_or(0),
                    sent: runs.iter().map(|r| r.result.sent).sum(),
                    errors: runs.iter().map(|r| r.result.errors).sum(),
                    behind: runs.iter().map(|r| r.result.behind).sum(),
                    runs: runs.len(),
                    contended: runs.iter().filter(|r| r.quiet.contended).count(),
                })
            })
            .collect()
    }

    pub fn row(&self, target: Target) -> Option<Row> {
        self.rows().into_iter().find(|r| r.target == target)
    }
}

/// The rate to use and why: `--rate` if given, else [`DEFAULT_RATE`]
/// lowered, if need be, to half the slowest target's keep-alive req/s
/// (rounded down to a hundred).
pub fn choose_rate(given: Option<u32>, throughput: Option<&ThroughputResult>) -> (u32, String) {
    if let Some(r) = given {
        return (r, "set with --rate".to_string());
    }
    // Rows come by connection count, ascending: use the lowest count's.
    let slowest = throughput.and_then(|t| {
        let rows = t.rows();
        let fewest = rows.first()?.conns;
        rows.iter()
            .filter(|r| r.conns == fewest)
            .map(|r| (r.rps, r.target))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    });
    match slowest {
        Some((rps, who)) if rps * AUTO_SHARE < f64::from(DEFAULT_RATE) => {
            let rate = ((rps * AUTO_SHARE / 100.0).floor() as u32 * 100).max(100);
            (
                rate,
                format!(
                    "half the slowest target's keep-alive throughput: {} did {} req/s closed-loop, \
                     below twice the default {}/s",
                    who.label(),
                    thousands(rps),
                    thousands(f64::from(DEFAULT_RATE))
                ),
            )
        }
        Some((rps, who)) => (
            DEFAULT_RATE,
            format!(
                "the default; every target sustains it: the slowest, {}, did {} req/s closed-loop",
                who.label(),
                thousands(rps)
            ),
        ),
        None => (DEFAULT_RATE, "the default".to_string()),
    }
}

/// Runs case b.
pub async fn run(
    p: &Params,
    s: &Setup<'_>,
    throughput: Option<&ThroughputResult>,
) -> anyhow::Result<LatencyResult> {
    let (rate, rate_reason) = choose_rate(p.rate, throughput);
    progress::say(&format!(
        "fixed rate: {rate} req/s over {} connections for {:?} per run ({rate_reason})",
        p.rate_conns, p.rate_duration
    ));
    let mut result = LatencyResult {
        rate,
        conns: p.rate_conns,
        rate_reason,
        runs: Vec::new(),
    };
    let total = p.reps * Target::ALL.len();
    for rep in 1..=p.reps {
        for target in Target::rotation(rep - 1) {
            let quiet = wait_quiet(p.quiet_threshold, p.quiet_wait).await;
            let log = s
                .layout
                .dir
                .join(format!("fixed-rate-{}-rep{rep}.log", target.slug()));
            let r = fixed_rate::run(
                &s.layout.load_cpus,
                s.addr(target)?,
                rate,
                p.rate_conns,
                p.rate_duration,
                &log,
            )
            .await?;
            progress::say(&format!(
                "fixed rate {}/{total}: rep {rep}, {}: p50 {} µs, p99 {} µs, p99.9 {} µs, {} errors{}",
                result.runs.len() + 1,
                target.label(),
                r.p50_us,
                r.p99_us,
                r.p999_us,
                r.errors,
                contended_note(&quiet)
            ));
            result.runs.push(Run {
                rep,
                target,
                result: r,
                quiet,
            });
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throughput::Run as WrkRun;
    use crate::wrk::WrkResult;

    fn throughput(rps: &[(Target, f64)]) -> ThroughputResult {
        ThroughputResult {
            runs: rps
                .iter()
                .map(|&(target, rps)| WrkRun {
                    rep: 1,
                    conns: 64,
                    target,
                    wrk: WrkResult {
                        rps,
                        ..Default::default()
                    },
                    cpu_us: 1.0,
                    quiet: Quiet::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn rate_choice() {
        assert_eq!(choose_rate(Some(123), None).0, 123);
        assert_eq!(choose_rate(None, None).0, DEFAULT_RATE);
        let fast = throughput(&[(Target::Direct, 40_000.0), (Target::Sluice, 20_000.0)]);
        assert_eq!(choose_rate(None, Some(&fast)).0, DEFAULT_RATE);
        let slow = throughput(&[(Target::Direct, 40_000.0), (Target::Nginx, 6_789.0)]);
        let (rate, why) = choose_rate(None, Some(&slow));
        assert_eq!(rate, 3_300);
        assert!(why.contains("nginx"), "{why}");
    }
}
