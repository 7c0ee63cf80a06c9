//! The runner: starts the docker cluster, drives the workloads and the
//! nemesis, heals, collects each node's final view and hands the history to
//! the checkers.
//!
//! One run, in order: [`docker`] starts the project and [`admin`] forms the
//! cluster; [`register`], [`set`] and [`drain`] record into one
//! [`Recorder`] while [`nemesis`] injects faults ([`net`] cuts the Raft
//! network); at `--time` everything stops, the nemesis heals, and
//! [`collect`] waits for convergence and reads the finals and the logs.

pub mod admin;
pub mod backends;
pub mod clients;
pub mod collect;
pub mod docker;
pub mod drain;
pub mod nemesis;
pub mod net;
pub mod register;
pub mod run;
pub mod set;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sluice_jepsen::check::Validity;
use sluice_jepsen::history::{History, Micros, NodeId};
use tokio::sync::watch;

/// The nodes of the cluster under test.
pub const NODES: [NodeId; 3] = [1, 2, 3];

/// Everything a run is told (the command line, resolved).
#[derive(Debug, Clone)]
pub struct Config {
    pub time: Duration,
    pub nemesis: Vec<nemesis::FaultKind>,
    pub seed: u64,
    pub out: PathBuf,
    pub image: String,
    pub project: String,
    pub compose_file: PathBuf,
    pub token: String,
    /// Host ports of the nodes' admin APIs, node 1..=3.
    pub admin_ports: [u16; 3],
    /// Host ports of the nodes' listener :8080, node 1..=3.
    pub listener_ports: [u16; 3],
    pub warmup: Duration,
    pub convergence_bound: Duration,
    pub linearizability_timeout: Duration,
    pub tolerance_ms: i64,
    pub drain_timeout_ms: u64,
    pub register_drain_timeout_ms: u64,
    pub register_clients: u32,
    pub set_clients: u32,
    /// How long one key pool of the register workload lives.
    pub key_pool_period: Duration,
}

/// Host Unix time in microseconds: the history's clock, shared by the
/// clients, the backends and the nemesis. Not `sluice_clock`, which the
/// test build lets a node shift.
#[allow(clippy::disallowed_methods)] // the harness's one reading of the host clock
pub fn now() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A small seeded generator (splitmix64): each task draws from its own
/// stream, so one task's choices do not depend on another's timing.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of `stream` under `seed`.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// A uniform duration in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    /// One of `xs` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        let i = usize::try_from(self.next_u64() % xs.len().max(1) as u64).unwrap_or(0);
        xs[i.min(xs.len().saturating_sub(1))]
    }

    /// A node, uniformly.
    pub fn node(&mut self) -> NodeId {
        self.pick(&NODES)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// The history under construction, shared by every task of the run.
#[derive(Debug, Default)]
pub struct Recorder {
    history: Mutex<History>,
    next_id: AtomicU64,
}

impl Recorder {
    /// A fresh id, unique in the run (ops, tunnels and requests).
    pub fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` on the history.
    pub fn with<R>(&self, f: impl FnOnce(&mut History) -> R) -> R {
        let mut h = match self.history.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut h)
    }

    /// A copy of the history as it stands.
    pub fn snapshot(&self) -> History {
        self.with(|h| h.clone())
    }
}

/// The run's stop signal: set once, when `--time` is up (or on Ctrl-C).
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A stop signal and its trigger.
    pub fn new() -> (watch::Sender<bool>, Stop) {
        let (tx, rx) = watch::channel(false);
        (tx, Stop(rx))
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the stop is set.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }

    /// Sleeps `d`; false if the stop came first.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        if self.is_set() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.is_set(),
            _ = self.wait() => false,
        }
    }
}

/// Runs the whole test and answers the exit status: 0 valid, 1 invalid,
/// 2 unknown or failed. The project is torn down whatever happens
/// (an error, Ctrl-C, SIGTERM).
pub async fn main(config: Config) -> u8 {
    let docker = match docker::Docker::new(&config).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sluice-jepsen: {e:#}");
            return 2;
        }
    };
    let result = tokio::select! {
        r = run::run(&config, &docker) => r,
        s = run::interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    progress("tearing down (compose down --volumes)");
    // A container the daemon was still starting (an interrupted fault)
    // can keep the network busy for a moment: try again.
    for attempt in 1..=3 {
        match docker.down().await {
            Ok(()) => break,
            Err(e) if attempt == 3 => eprintln!("sluice-jepsen: teardown failed: {e:#}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_secs(2)).await,
        }
    }
    exit_status(result.context("the run failed"))
}

/// 0 valid, 1 invalid, 2 unknown or an error (said on stderr).
pub fn exit_status(result: anyhow::Result<Validity>) -> u8 {
    match result {
        Ok(Validity::Valid) => 0,
        Ok(Validity::Invalid) => 1,
        Ok(Validity::Unknown) => 2,
        Err(e) => {
            eprintln!("sluice-jepsen: {e:#}");
            2
        }
    }
}

/// A progress line on stderr, with the time of day.
pub fn progress(what: &str) {
    let secs = now() / 1_000_000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    eprintln!("[{h:02}:{m:02}:{s:02}] {what}");
}
