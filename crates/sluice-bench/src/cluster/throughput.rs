//! Write throughput: `concurrency` tasks, each adding a backend to group
//! `tput` (`POST /v1/groups/tput/backends`) and removing it again
//! (`DELETE …/{addr}`), pair after pair, every pair on a new address
//! `10.9.x.y:p` that nothing ever connects to (`tput` has no listener).
//! Calls go to the given admin URLs round robin (all three nodes, or only
//! the leader). Each call is one client command; it returns once the
//! command is committed and every node routes by it, so `commands/s` is
//! end-to-end acknowledged writes.
//!
//! Every removal also makes each node report the (idle) backend's drain
//! finished, i.e. three more log entries written by the nodes themselves;
//! [`WorkloadResult::log_entries`] counts every entry the phase wrote.
//!
//! [`drive`] is shared with the footprint phase, which runs a fixed number
//! of commands instead of a fixed time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use reqwest::Method;
use serde_json::json;

use super::disk::DiskGuard;
use super::nodes::{BenchCluster, Settle};
use crate::admin::Admin;
use crate::procfs;
use crate::shutdown::AbortOnDrop;

/// The group the write workloads use.
pub const GROUP: &str = "tput";

/// Hands out distinct backend addresses for the whole run.
#[derive(Debug, Default)]
pub struct AddressSeq(AtomicU64);

impl AddressSeq {
    /// `10.9.x.y:p`, never the same twice in a run (2^16 hosts per port,
    /// ports from 80 up).
    pub fn next(&self) -> String {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let port = 80 + (n >> 16);
        format!("10.9.{}.{}:{port}", (n >> 8) & 0xff, n & 0xff)
    }
}

/// When a workload ends.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Pairs are started until this long after the start.
    Elapsed(Duration),
    /// Exactly this many commands (rounded up to whole pairs).
    Commands(u64),
}

/// What one workload did.
#[derive(Debug, Default)]
pub struct WorkloadResult {
    /// Who the calls went to (`all nodes` / `leader (node 2)`).
    pub targets: String,
    /// Concurrent tasks.
    pub concurrency: usize,
    /// Start of the first call to the end of the last.
    pub elapsed: Duration,
    /// Commands acknowledged with 2xx.
    pub ok: u64,
    /// Commands answered otherwise or failed in transport.
    pub errors: u64,
    /// The first few error descriptions.
    pub error_samples: Vec<String>,
    /// Latency of every acknowledged command.
    pub latencies: Vec<Duration>,
    /// Log entries the phase wrote (client commands and the nodes' drain
    /// reports), once the cluster settled.
    pub log_entries: u64,
    /// From the last call's return until every node had applied the last
    /// of those entries (the nodes' drain reports trail the removals);
    /// `None` when the cluster did not settle (see `unsettled`).
    pub settle: Option<Duration>,
    /// The applied index every node settled on (or the highest one seen,
    /// when it did not settle).
    pub final_index: u64,
    /// How far from settled the cluster was, if it did not settle.
    pub unsettled: Option<String>,
    /// Why the workload stopped before its end (the disk guard tripped).
    pub stopped_early: Option<String>,
    /// Once settled: backends left in group `tput` (every pair leaves the
    /// group as it found it, so this should be 0) and drains still pending
    /// in the replicated state (should be 0 too).
    pub leftover_backends: usize,
    pub pending_drains: usize,
    /// CPU used during the workload, in cores (CPU seconds / elapsed), per
    /// process: `node 1` .. `node 3` and `client` (this benchmark).
    pub cpu_cores: Vec<(String, f64)>,
}

/// Progress shared with an observer (the footprint phase samples the disk
/// when 10% of the commands are done).
#[derive(Debug, Default)]
pub struct Progress {
    /// Commands completed (either way).
    pub done: AtomicU64,
}

/// One run of the add/remove workload.
pub struct Workload {
    /// Who the calls go to, for the report (`all nodes, round robin`).
    pub label: String,
    /// Admin base URLs the calls go to, round robin.
    pub urls: Vec<String>,
    /// Concurrent writers.
    pub concurrency: usize,
    /// When to stop.
    pub until: Until,
    /// Backend addresses, shared by every run.
    pub addrs: Arc<AddressSeq>,
    /// Commands done so far, for an observer.
    pub progress: Arc<Progress>,
    /// Stops the run when a data directory grows too large.
    pub guard: Arc<DiskGuard>,
    /// How long to wait for the cluster to settle afterwards.
    pub settle_limit: Duration,
}

/// Runs the add/remove workload (module docs), waits until the cluster
/// settled, and returns the figures.
pub async fn drive(cluster: &BenchCluster, workload: Workload) -> anyhow::Result<WorkloadResult> {
    let Workload {
        label,
        urls,
        concurrency,
        until,
        addrs,
        progress,
        guard,
        settle_limit,
    } = workload;
    let _watching = guard.watch();
    let urls = Arc::new(urls);
    let next_target = Arc::new(AtomicU64::new(0));
    let pairs_left = Arc::new(AtomicU64::new(match until {
        Until::Commands(n) => n.div_ceil(2),
        Until::Elapsed(_) => u64::MAX,
    }));
    let applied_before = cluster.applied(cluster.leader().await?).await?;
    let cpu_before = cpu_snapshot(cluster)?;
    let start = Instant::now();
    let stop_at = match until {
        Until::Elapsed(d) => Some(start + d),
        Until::Commands(_) => None,
    };
    // A JoinSet aborts the writers if this returns early.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let admin = cluster.admin.clone();
        let urls = urls.clone();
        let next_target = next_target.clone();
        let pairs_left = pairs_left.clone();
        let addrs = addrs.clone();
        let progress = progress.clone();
        let guard = guard.clone();
        tasks.spawn(async move {
            let mut mine = TaskResult::default();
            loop {
                if stop_at.is_some_and(|t| Instant::now() >= t) || guard.tripped().is_some() {
                    break;
                }
                let claimed = pairs_left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                if claimed.is_err() {
                    break;
                }
                let addr = addrs.next();
                let pick = || {
                    let i = next_target.fetch_add(1, Ordering::Relaxed) as usize;
                    urls[i % urls.len()].clone()
                };
                let body = json!({"addr": addr, "weight": 100});
                let add_path = format!("/v1/groups/{GROUP}/backends");
                mine.call(&admin, Method::POST, &pick(), &add_path, Some(&body))
                    .await;
                progress.done.fetch_add(1, Ordering::Relaxed);
                let del_path = format!("/v1/groups/{GROUP}/backends/{addr}");
                mine.call(&admin, Method::DELETE, &pick(), &del_path, None)
                    .await;
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
            mine
        });
    }
    let reporter = {
        let progress = progress.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let done = progress.done.load(Ordering::Relaxed);
                eprintln!(
                    "  {done} commands after {:.0} s ({} in the last 10 s)",
                    start.elapsed().as_secs_f64(),
                    done - last
                );
                last = done;
            }
        }))
    };
    let mut result = WorkloadResult {
        targets: label,
        concurrency,
        ..WorkloadResult::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let mine = joined.map_err(|e| anyhow!("a workload task panicked: {e}"))?;
        result.ok += mine.ok;
        result.errors += mine.errors;
        result.latencies.extend(mine.latencies);
        for e in mine.error_samples {
            if result.error_samples.len() < 5 {
                result.error_samples.push(e);
            }
        }
    }
    let end = Instant::now();
    drop(reporter);
    result.stopped_early = guard.tripped();
    result.elapsed = end - start;
    let cpu_after = cpu_snapshot(cluster)?;
    result.cpu_cores = cpu_before
        .into_iter()
        .zip(cpu_after)
        .map(|((who, before), (_, after))| (who, (after - before) / result.elapsed.as_secs_f64()))
        .collect();
    match cluster
        .wait_settled(settle_limit, &guard)
        .await
        .context("waiting for the cluster to settle after the workload")?
    {
        Settle::Settled { index, at } => {
            result.final_index = index;
            result.settle = Some(at.saturating_duration_since(end));
        }
        Settle::Unsettled {
            why,
            applied,
            pending_drains,
        } => {
            result.final_index = applied.iter().copied().max().unwrap_or(0);
            result.unsettled = Some(format!(
                "{why}: applied {applied:?}, {pending_drains} drains pending"
            ));
        }
    }
    result.log_entries = result.final_index.saturating_sub(applied_before);
    (result.leftover_backends, result.pending_drains) = cluster.state_counts(GROUP).await?;
    Ok(result)
}

/// CPU seconds used so far by every node and by this process.
fn cpu_snapshot(cluster: &BenchCluster) -> anyhow::Result<Vec<(String, f64)>> {
    let mut all = Vec::new();
    for n in &cluster.nodes {
        let pid = n
            .pid()
            .ok_or_else(|| anyhow!("node {} is not running", n.node_id()))?;
        all.push((
            format!("node {}", n.node_id()),
            procfs::cpu_seconds(&pid.to_string())?,
        ));
    }
    all.push(("client".to_string(), procfs::cpu_seconds("self")?));
    Ok(all)
}

/// One task's tally.
#[derive(Default)]
struct TaskResult {
    ok: u64,
    errors: u64,
    error_samples: Vec<String>,
    latencies: Vec<Duration>,
}

impl TaskResult {
    async fn call(
        &mut self,
        admin: &Admin,
        method: Method,
        base: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) {
        let started = Instant::now();
        let outcome = admin.call(method.clone(), base, path, body).await;
        let took = started.elapsed();
        match outcome {
            Ok(a) if a.status.is_success() => {
                self.ok += 1;
                self.latencies.push(took);
            }
            Ok(a) => self.error(format!("{method} {base}{path}: {} {}", a.status, a.text())),
            Err(e) => self.error(format!("{e:#}")),
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }
}

/// Creates group `tput` (drain timeout 0 s: an idle removed backend leaves
/// as soon as every node reports it).
pub async fn create_group(cluster: &BenchCluster) -> anyhow::Result<()> {
    cluster
        .admin
        .post(
            &cluster.admin_url(0),
            "/v1/groups",
            &json!({"name": GROUP, "drain_timeout_ms": 0}),
        )
        .await
        .map(|_| ())
}
