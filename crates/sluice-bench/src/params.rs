//! The side-by-side benchmark's command line and the parameters resolved
//! from it: which cases run, and with what sizes (full or `--smoke`
//! defaults, the open-files cap).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::procfs;

/// The cases, by their letter in the report (f runs before e, which needs
/// everything else stopped).
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
    /// f. a removal under load (sluice)
    Removal,
    /// g. TLS: keep-alive HTTPS, new handshakes, HTTP/2 (h2load)
    Tls,
    /// h. access log on vs off (sluice keep-alive throughput)
    AccessLog,
    /// i. keep-alive throughput with a CPU-bound process on the proxy's CPU
    Contended,
}

/// Descriptors kept free for everything but held connections.
pub const FD_RESERVE: u64 = 1000;

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
    /// Repetitions of cases a, b and i [default: 3; smoke 1].
    #[arg(long)]
    reps: Option<usize>,
    /// wrk connection counts [default: 64,256; smoke 64]; case i uses the
    /// fewest.
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
    /// Further pause before the steady RSS reading of the held
    /// connections (case c).
    pub steady: Duration,
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
                    Case::Removal,
                    Case::Tls,
                    Case::AccessLog,
                    Case::Contended,
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
            steady: pick(smoke, Duration::from_secs(12), Duration::from_millis(300)),
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
