//! Case i, keep-alive throughput on a contended CPU: `wrk -t1 -c<conns>`
//! against every target twice per repetition, once with the server CPU to
//! itself and once while a CPU-bound process (`sluice-bench spin`, pinned
//! to the server CPU like the backend and the proxy) competes for it. The
//! figure is contended req/s ÷ uncontended req/s: how much of its
//! throughput a target keeps when it must share its core. Which of the
//! two runs goes first alternates with the repetition, and the targets are
//! rotated as in case a.

use std::time::Duration;

use crate::params::Params;
use crate::procs::Daemon;
use crate::progress;
use crate::quiet::{wait_quiet, Quiet};
use crate::stack::{Setup, Target};
use crate::stats::median;
use crate::throughput::contended_note;
use crate::wrk::{self, WrkResult};

/// How long the spinner runs before a contended run starts, so the
/// scheduler has seen it busy.
const SPIN_LEAD: Duration = Duration::from_millis(500);

/// One repetition's pair of runs against one target.
#[derive(Clone, Debug)]
pub struct Pair {
    pub rep: usize,
    pub target: Target,
    pub alone: WrkResult,
    pub shared: WrkResult,
    /// The quiet check before the uncontended run.
    pub quiet: Quiet,
}

impl Pair {
    /// Contended ÷ uncontended req/s.
    pub fn ratio(&self) -> f64 {
        self.shared.rps / self.alone.rps
    }
}

/// Medians over the repetitions of one target.
#[derive(Clone, Debug)]
pub struct Row {
    pub target: Target,
    pub alone_rps: f64,
    pub shared_rps: f64,
    /// Median of the per-repetition ratios.
    pub ratio: f64,
    pub alone_p99_us: f64,
    pub shared_p99_us: f64,
    pub errors: u64,
    pub runs: usize,
    /// Uncontended runs that started on a busy machine.
    pub busy: usize,
}

/// Every pair, in the order they ran.
#[derive(Clone, Debug, Default)]
pub struct ContendedResult {
    pub conns: usize,
    pub pairs: Vec<Pair>,
}

impl ContendedResult {
    /// One row per target, in [`Target::ALL`] order.
    pub fn rows(&self) -> Vec<Row> {
        Target::ALL
            .iter()
            .filter_map(|&t| {
                let pairs: Vec<&Pair> = self.pairs.iter().filter(|p| p.target == t).collect();
                if pairs.is_empty() {
                    return None;
                }
                let med = |f: &dyn Fn(&Pair) -> f64| {
                    median(&pairs.iter().map(|p| f(p)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
                };
                Some(Row {
                    target: t,
                    alone_rps: med(&|p| p.alone.rps),
                    shared_rps: med(&|p| p.shared.rps),
                    ratio: med(&|p| p.ratio()),
                    alone_p99_us: med(&|p| p.alone.p99_us),
                    shared_p99_us: med(&|p| p.shared.p99_us),
                    errors: pairs.iter().map(|p| p.alone.errors + p.shared.errors).sum(),
                    runs: pairs.len(),
                    busy: pairs.iter().filter(|p| p.quiet.contended).count(),
                })
            })
            .collect()
    }

    pub fn row(&self, target: Target) -> Option<Row> {
        self.rows().into_iter().find(|r| r.target == target)
    }
}

/// Runs case i against the running stack, at the fewest connections of
/// case a.
pub async fn run(p: &Params, s: &Setup<'_>) -> anyhow::Result<ContendedResult> {
    let conns = p.conns.iter().copied().min().unwrap_or(64);
    let mut result = ContendedResult {
        conns,
        pairs: Vec::new(),
    };
    let total = p.reps * Target::ALL.len();
    for rep in 1..=p.reps {
        for target in Target::rotation(rep - 1) {
            let url = format!("http://{}/", s.addr(target)?);
            let quiet = wait_quiet(p.quiet_threshold, p.quiet_wait).await;
            let (alone, shared) = if rep % 2 == 1 {
                let alone = measure(p, s, &url, conns, rep, target, false).await?;
                (alone, measure(p, s, &url, conns, rep, target, true).await?)
            } else {
                let shared = measure(p, s, &url, conns, rep, target, true).await?;
                wait_quiet(p.quiet_threshold, p.quiet_wait).await;
                (
                    measure(p, s, &url, conns, rep, target, false).await?,
                    shared,
                )
            };
            let pair = Pair {
                rep,
                target,
                alone,
                shared,
                quiet,
            };
            progress::say(&format!(
                "contended {}/{total}: rep {rep}, {conns} conns, {}: {:.0} req/s alone, {:.0} req/s sharing its CPU ({:.2}×){}",
                result.pairs.len() + 1,
                target.label(),
                pair.alone.rps,
                pair.shared.rps,
                pair.ratio(),
                contended_note(&quiet)
            ));
            result.pairs.push(pair);
        }
    }
    Ok(result)
}

/// One wrk run against `url`, with the spinners running when `shared`.
async fn measure(
    p: &Params,
    s: &Setup<'_>,
    url: &str,
    conns: usize,
    rep: usize,
    target: Target,
    shared: bool,
) -> anyhow::Result<WrkResult> {
    let kind = if shared { "shared" } else { "alone" };
    let log = s.layout.dir.join(format!(
        "wrk-{kind}-{}-c{conns}-rep{rep}.txt",
        target.slug()
    ));
    let spinners = if shared {
        let spinners = spin(s)?;
        tokio::time::sleep(SPIN_LEAD).await;
        spinners
    } else {
        Vec::new()
    };
    let result = wrk::run(&s.layout.load_cpus, conns, p.duration, url, &log).await;
    drop(spinners);
    result
}

/// Starts one spinner per server CPU, each pinned to its CPU; they stop
/// when the returned daemons are dropped.
fn spin(s: &Setup<'_>) -> anyhow::Result<Vec<Daemon>> {
    let exe = std::env::current_exe()?;
    cpu_list(&s.layout.server_cpus)
        .into_iter()
        .map(|cpu| {
            Daemon::spawn(
                &format!("spin-cpu{cpu}"),
                &cpu.to_string(),
                &exe,
                &["spin".to_string()],
                &s.layout.dir,
            )
        })
        .collect()
}

/// The CPUs of a `taskset -c` list (`1`, `0,2`, `2-3`); unparsable parts
/// are skipped.
pub fn cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

/// The `sluice-bench spin` subcommand: burns CPU until it is stopped, or
/// until the process that started it is gone (so a benchmark killed
/// without cleanup leaves no spinner behind).
pub fn spin_main() -> anyhow::Result<()> {
    let parent = rustix::process::getppid();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    loop {
        for _ in 0..1_000_000 {
            x = std::hint::black_box(x.rotate_left(5) ^ x.wrapping_mul(31));
        }
        if rustix::process::getppid() != parent {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("1"), vec![1]);
        assert_eq!(cpu_list("0,2"), vec![0, 2]);
        assert_eq!(cpu_list("2-4"), vec![2, 3, 4]);
        assert_eq!(cpu_list("x"), Vec::<usize>::new());
    }

    fn wrk(rps: f64) -> WrkResult {
        WrkResult {
            requests: rps as u64,
            rps,
            p50_us: 100.0,
            p99_us: 200.0,
            errors: 0,
        }
    }

    #[test]
    fn rows_take_the_median_of_paired_ratios() {
        let pair = |rep, alone, shared| Pair {
            rep,
            target: Target::Sluice,
            alone: wrk(alone),
            shared: wrk(shared),
            quiet: Quiet::default(),
        };
        let r = ContendedResult {
            conns: 64,
            pairs: vec![
                pair(1, 100.0, 50.0),
                pair(2, 200.0, 160.0),
                pair(3, 100.0, 60.0),
            ],
        };
        let row = r.row(Target::Sluice).expect("a row for sluice");
        assert!((row.ratio - 0.6).abs() < 1e-9);
        assert_eq!(row.alone_rps, 100.0);
        assert_eq!(row.runs, 3);
        assert!(r.row(Target::Nginx).is_none());
    }
}
