//! Scale: what a write, a removal's propagation, memory and disk cost as
//! one group grows to many backends.
//!
//! Setup: group `scale` with health checks off and the propagation rig of
//! phase 1 ([`Rig`]: two demo backends, a listener, B added and removed in
//! each round). It is then filled, size after size, with backends of
//! weight 0 at addresses nothing listens on (`10.9.x.y:p`): state entries
//! that take no work, so the probes still meet only the demo backends.
//!
//! At each size N of the list (ascending):
//! 1. fill: `concurrency` writers add backends (`POST …/backends`, through
//!    all nodes round robin) until the group holds N of them (besides the
//!    rig's two); adds/s and the adds' latencies are taken over the last
//!    `window` adds, i.e. at about size N;
//! 2. wait until every node applied the same index;
//! 3. `removals` rounds of phase 1 in this group: `DELETE` of B returned
//!    (or sent) → the last node stops routing to B;
//! 4. per node: RSS (`VmRSS`, peak `VmHWM`), the data directory, and the
//!    snapshots the node logged (`snapshot built` with `index`, `size` and,
//!    when the node logs it, `took_ms`) since the previous size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use serde_json::json;

use super::disk::{self, DiskGuard, DiskUsage};
use super::nodes::BenchCluster;
use super::propagation::{PropagationResult, Rig};
use super::throughput::AddressSeq;
use crate::procfs;
use crate::shutdown::AbortOnDrop;

/// The group the phase fills.
pub const GROUP: &str = "scale";
/// Failed adds after which a fill gives up (each is retried meanwhile).
const MAX_ERRORS: u64 = 100;
/// How often [`settle`] polls.
const SETTLE_POLL: Duration = Duration::from_millis(10);

/// What the phase does.
#[derive(Clone, Debug)]
pub struct ScaleParams {
    /// Backends in the group at each step, ascending.
    pub sizes: Vec<u64>,
    /// Adds (the last of each fill) over which adds/s is measured.
    pub window: u64,
    /// Propagation rounds at each size.
    pub removals: usize,
    /// Concurrent writers of the fill.
    pub concurrency: usize,
    /// Longest wait for the nodes to agree on an index after a fill.
    pub settle_limit: Duration,
}

/// The phase's figures: one step per size reached.
#[derive(Debug, Default)]
pub struct ScaleResult {
    /// Writers of the fills.
    pub concurrency: usize,
    pub steps: Vec<ScaleStep>,
    /// Why the phase stopped before its last size, if it did.
    pub stopped: Option<String>,
}

/// The figures at one size.
#[derive(Debug, Default)]
pub struct ScaleStep {
    /// Backends of weight 0 in the group (the rig's two not counted).
    pub size: u64,
    pub fill: Fill,
    /// From the fill's end until every node applied the same index (to
    /// the poll's resolution, 10 ms).
    pub settle: Duration,
    /// The log index every node applied then.
    pub index: u64,
    pub propagation: PropagationResult,
    /// Per node.
    pub nodes: Vec<NodeAtSize>,
}

/// What one fill did.
#[derive(Debug, Default)]
pub struct Fill {
    /// Adds acknowledged (2xx).
    pub adds: u64,
    /// Adds that failed (and were retried).
    pub errors: u64,
    /// The first few failures, described.
    pub error_samples: Vec<String>,
    /// First add sent → last add acknowledged.
    pub elapsed: Duration,
    /// Adds in the measuring window (the last ones of the fill).
    pub window: u64,
    /// Time the window's adds took: from the acknowledgement before the
    /// window's first to the last one (from the fill's start when the fill
    /// is no longer than the window).
    pub window_elapsed: Duration,
    /// Latency of each add of the window.
    pub window_latencies: Vec<Duration>,
}

impl Fill {
    /// Adds per second over the window.
    pub fn rate(&self) -> f64 {
        crate::stats::per_second(self.window, self.window_elapsed)
    }
}

/// One node at one size.
#[derive(Clone, Debug, Default)]
pub struct NodeAtSize {
    pub node: u64,
    pub rss: u64,
    pub rss_peak: u64,
    pub disk: DiskUsage,
    /// Snapshots the node logged building since the previous size.
    pub snapshots: Vec<SnapshotBuilt>,
}

/// One `snapshot built` line of a node's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotBuilt {
    /// Last log index the snapshot holds.
    pub index: u64,
    /// Encoded size in bytes.
    pub size: u64,
    /// Time to build it, when the node logs it.
    pub took_ms: Option<u64>,
}

/// Runs the phase (module docs). A size that cannot be reached ends the
/// phase with the sizes before it measured and the reason in
/// [`ScaleResult::stopped`].
pub async fn run(
    cluster: &BenchCluster,
    params: &ScaleParams,
    addrs: &Arc<AddressSeq>,
    guard: &Arc<DiskGuard>,
) -> anyhow::Result<ScaleResult> {
    let rig = Rig::start(cluster, GROUP, false)
        .await
        .context("setting up group `scale`")?;
    let mut result = ScaleResult {
        concurrency: params.concurrency,
        ..ScaleResult::default()
    };
    let mut held = 0;
    let mut last_index = vec![0; cluster.nodes.len()];
    for &size in &params.sizes {
        eprintln!(
            "  filling `{GROUP}` from {held} to {size} backends with {} writers",
            params.concurrency
        );
        let path = format!("/v1/groups/{GROUP}/backends");
        let fill = fill(
            cluster,
            &path,
            size - held,
            params.window,
            params.concurrency,
            addrs,
            guard,
        )
        .await?;
        held += fill.adds;
        eprintln!(
            "  {size} backends: {} adds in {:.1} s; the last {} at {:.0}/s ({} errors)",
            fill.adds,
            fill.elapsed.as_secs_f64(),
            fill.window,
            fill.rate(),
            fill.errors
        );
        if held < size {
            result.stopped = Some(match guard.tripped() {
                Some(why) => format!("at {held} of {size} backends: {why}"),
                None => format!(
                    "at {held} of {size} backends: {} adds failed ({})",
                    fill.errors,
                    fill.error_samples.join("; ")
                ),
            });
            break;
        }
        let filled = Instant::now();
        let (index, settled) = settle(cluster, params.settle_limit).await?;
        let settle = settled.saturating_duration_since(filled);
        let propagation = rig
            .rounds(cluster, params.removals)
            .await
            .with_context(|| format!("propagation at {size} backends"))?;
        let nodes = measure(cluster, &mut last_index).await?;
        result.steps.push(ScaleStep {
            size,
            fill,
            settle,
            index,
            propagation,
            nodes,
        });
    }
    Ok(result)
}

/// Adds `count` backends of weight 0 at `path` with `concurrency`
/// writers, through all nodes round robin; a failed add is retried with a
/// new address, up to [`MAX_ERRORS`] failures per writer.
async fn fill(
    cluster: &BenchCluster,
    path: &str,
    count: u64,
    window: u64,
    concurrency: usize,
    addrs: &Arc<AddressSeq>,
    guard: &Arc<DiskGuard>,
) -> anyhow::Result<Fill> {
    let _watching = guard.watch();
    let urls = Arc::new(cluster.admin_urls());
    let left = Arc::new(AtomicU64::new(count));
    let done = Arc::new(AtomicU64::new(0));
    let next_target = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let admin = cluster.admin.clone();
        let (urls, left, done, next_target) = (
            urls.clone(),
            left.clone(),
            done.clone(),
            next_target.clone(),
        );
        let (addrs, guard, path) = (addrs.clone(), guard.clone(), path.to_string());
        tasks.spawn(async move {
            let mut mine = Writer::default();
            while guard.tripped().is_none() && mine.errors < MAX_ERRORS {
                if left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                let i = next_target.fetch_add(1, Ordering::Relaxed) as usize;
                let url = &urls[i % urls.len()];
                let body = json!({"addr": addrs.next(), "weight": 0});
                let sent = Instant::now();
                let outcome = admin.call(Method::POST, url, &path, Some(&body)).await;
                let acked = Instant::now();
                let failure = match outcome {
                    Ok(a) if a.status.is_success() => None,
                    Ok(a) => Some(format!("POST {url}{path}: {} {}", a.status, a.text())),
                    Err(e) => Some(format!("{e:#}")),
                };
                match failure {
                    None => {
                        mine.acked.push((acked, acked - sent));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(why) => {
                        left.fetch_add(1, Ordering::Relaxed);
                        mine.errors += 1;
                        if mine.samples.len() < 3 {
                            mine.samples.push(why);
                        }
                    }
                }
            }
            mine
        });
    }
    let _reporter = {
        let done = done.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let now = done.load(Ordering::Relaxed);
                eprintln!(
                    "  {now} of {count} adds after {:.0} s ({} in the last 10 s)",
                    start.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
            }
        }))
    };
    let mut acked = Vec::new();
    let mut fill = Fill::default();
    while let Some(joined) = tasks.join_next().await {
        let mine = joined.map_err(|e| anyhow!("a fill writer panicked: {e}"))?;
        acked.extend(mine.acked);
        fill.errors += mine.errors;
        for s in mine.samples {
            if fill.error_samples.len() < 5 {
                fill.error_samples.push(s);
            }
        }
    }
    acked.sort_unstable_by_key(|(at, _)| *at);
    fill.adds = acked.len() as u64;
    let Some(&(end, _)) = acked.last() else {
        return Ok(fill);
    };
    fill.elapsed = end - start;
    let n = acked.len();
    let w = usize::try_from(window).unwrap_or(usize::MAX).max(1);
    let (from, first) = if n > w {
        (acked[n - 1 - w].0, n - w)
    } else {
        (start, 0)
    };
    fill.window = (n - first) as u64;
    fill.window_elapsed = end - from;
    fill.window_latencies = acked[first..].iter().map(|(_, l)| *l).collect();
    Ok(fill)
}

/// One fill writer's tally.
#[derive(Default)]
struct Writer {
    /// When each add was acknowledged, and its latency.
    acked: Vec<(Instant, Duration)>,
    errors: u64,
    samples: Vec<String>,
}

/// Waits until every node applied the same index, twice in a row (the
/// fill adds no drain, so nothing trails it but the apply itself);
/// returns that index and when every node was first seen on it.
async fn settle(cluster: &BenchCluster, within: Duration) -> anyhow::Result<(u64, Instant)> {
    let start = Instant::now();
    let mut seen: Option<(u64, Instant)> = None;
    loop {
        let applied = cluster.applied_all().await?;
        let now = Instant::now();
        if applied.windows(2).all(|w| w[0] == w[1]) {
            match seen {
                Some((index, at)) if index == applied[0] => return Ok((index, at)),
                _ => seen = Some((applied[0], now)),
            }
        } else {
            seen = None;
        }
        if start.elapsed() >= within {
            bail!("the nodes did not agree on an applied index within {within:?}: {applied:?}");
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// Every node's memory, data directory, and the snapshots it logged past
/// `last_index` (which moves to the last of them).
async fn measure(
    cluster: &BenchCluster,
    last_index: &mut [u64],
) -> anyhow::Result<Vec<NodeAtSize>> {
    let mut nodes = Vec::new();
    for (i, (n, (node, dir))) in cluster.nodes.iter().zip(cluster.data_dirs()).enumerate() {
        let pid = n
            .pid()
            .ok_or_else(|| anyhow!("node {node} is not running"))?;
        let snapshots: Vec<SnapshotBuilt> = n
            .log()
            .lines()
            .filter_map(snapshot_built)
            .filter(|s| s.index > last_index[i])
            .collect();
        if let Some(last) = snapshots.last() {
            last_index[i] = last.index;
        }
        nodes.push(NodeAtSize {
            node,
            rss: procfs::status_bytes(pid, "VmRSS")?,
            rss_peak: procfs::status_bytes(pid, "VmHWM")?,
            disk: disk::usage(&dir).await?,
            snapshots,
        });
    }
    Ok(nodes)
}

/// A `snapshot built` line of a node's log, in the text format
/// (`… snapshot built index=1000 size=2345 took_ms=3`) or the JSON one
/// (`…"message":"snapshot built","index":1000,…`).
pub fn snapshot_built(line: &str) -> Option<SnapshotBuilt> {
    let (_, fields) = line.split_once("snapshot built")?;
    Some(SnapshotBuilt {
        index: field(fields, "index")?,
        size: field(fields, "size")?,
        took_ms: field(fields, "took_ms"),
    })
}

/// The number after `name=` or `"name":` in `fields`.
fn field(fields: &str, name: &str) -> Option<u64> {
    let text = [format!(" {name}="), format!("\"{name}\":")]
        .iter()
        .find_map(|key| fields.split_once(key.as_str()).map(|(_, rest)| rest))?;
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lines_in_both_formats() {
        let text = "2026-12-02T06:40:00.123Z  INFO node=2 sluice_raft::state_machine: snapshot built index=12000 size=345678 took_ms=41";
        assert_eq!(
            snapshot_built(text),
            Some(SnapshotBuilt {
                index: 12000,
                size: 345678,
                took_ms: Some(41)
            })
        );
        let json = r#"{"time":"2026-12-02T06:40:00.123Z","level":"INFO","node":2,"target":"sluice_raft::state_machine","message":"snapshot built","index":12000,"size":345678}"#;
        assert_eq!(
            snapshot_built(json),
            Some(SnapshotBuilt {
                index: 12000,
                size: 345678,
                took_ms: None
            })
        );
    }

    #[test]
    fn other_lines_and_span_fields_are_not_snapshots() {
        assert_eq!(snapshot_built("INFO applied index=5 size=3"), None);
        // A span's index before the message is not the snapshot's.
        let line = "INFO node=1 apply{index=7}: sluice_raft::state_machine: snapshot built index=9 size=10";
        assert_eq!(snapshot_built(line).map(|s| s.index), Some(9));
    }
}
