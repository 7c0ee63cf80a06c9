//! Footprint: `writes` commands (add/remove pairs in group `tput`, through
//! all nodes round robin, as fast as the cluster takes them), then wait
//! until every node runs the same, settled applied index (no drain
//! pending; see [`BenchCluster::wait_settled`]), then per node:
//!
//! - the size of its data directory: the sum of the lengths of every file
//!   under it (apparent size) and the space actually allocated (`du`,
//!   512-byte blocks), before the writes, once 10% of them completed, and
//!   at the end;
//! - its resident memory (`VmRSS` of `/proc/<pid>/status`) before and after,
//!   and the peak (`VmHWM`).
//!
//! Snapshots are taken every `snapshot_every` entries (default 1000) and
//! the log is purged behind them, so the directory should stop growing
//! with the number of writes once the state itself stops growing (every
//! pair leaves the group as it found it).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use super::disk::{self, DiskGuard, DiskUsage};
use super::nodes::BenchCluster;
use super::throughput::{drive, AddressSeq, Progress, Until, Workload, WorkloadResult};
use crate::procfs;
use crate::shutdown::AbortOnDrop;

/// One node's figures.
#[derive(Clone, Debug, Default)]
pub struct NodeFootprint {
    pub node: u64,
    pub disk_before: DiskUsage,
    /// `None` when the workload stopped before 10% of it.
    pub disk_at_10pct: Option<DiskUsage>,
    pub disk_after: DiskUsage,
    pub rss_before: u64,
    pub rss_after: u64,
    pub rss_peak: u64,
}

/// What the footprint phase measured.
#[derive(Debug, Default)]
pub struct FootprintResult {
    /// The write workload itself (its `final_index` is the index every
    /// node settled on).
    pub workload: WorkloadResult,
    /// Per node.
    pub nodes: Vec<NodeFootprint>,
}

/// Runs the phase (module docs).
pub async fn run(
    cluster: &BenchCluster,
    writes: u64,
    concurrency: usize,
    addrs: &Arc<AddressSeq>,
    guard: &Arc<DiskGuard>,
    settle_limit: Duration,
) -> anyhow::Result<FootprintResult> {
    let dirs: Vec<_> = cluster.data_dirs().into_iter().map(|(_, d)| d).collect();
    let pids: Vec<u32> = cluster
        .nodes
        .iter()
        .map(|n| {
            n.pid()
                .ok_or_else(|| anyhow!("node {} is not running", n.node_id()))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut nodes: Vec<NodeFootprint> = Vec::new();
    for (i, n) in cluster.nodes.iter().enumerate() {
        nodes.push(NodeFootprint {
            node: n.node_id(),
            disk_before: disk::usage(&dirs[i]).await?,
            rss_before: procfs::status_bytes(pids[i], "VmRSS")?,
            ..NodeFootprint::default()
        });
    }

    let progress = Arc::new(Progress::default());
    let tenth = (writes / 10).max(1);
    let sampler = {
        let progress = progress.clone();
        let dirs = dirs.clone();
        AbortOnDrop(tokio::spawn(async move {
            while progress.done.load(Ordering::Relaxed) < tenth {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut sizes = Vec::new();
            for d in &dirs {
                sizes.push(disk::usage(d).await?);
            }
            anyhow::Ok(sizes)
        }))
    };
    let workload = drive(
        cluster,
        Workload {
            label: "all nodes, round robin".to_string(),
            urls: cluster.admin_urls(),
            concurrency,
            until: Until::Commands(writes),
            addrs: addrs.clone(),
            progress: progress.clone(),
            guard: guard.clone(),
            settle_limit,
        },
    )
    .await?;
    // The workload may have been stopped (disk guard) before 10% of it.
    let at_10pct = if progress.done.load(Ordering::Relaxed) >= tenth {
        let mut sampler = sampler;
        (&mut sampler.0)
            .await
            .map_err(|e| anyhow!("the disk sampler panicked: {e}"))??
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; dirs.len()]
    };
    for (i, node) in nodes.iter_mut().enumerate() {
        node.disk_at_10pct = at_10pct[i];
        node.disk_after = disk::usage(&dirs[i]).await?;
        node.rss_after = procfs::status_bytes(pids[i], "VmRSS")?;
        node.rss_peak = procfs::status_bytes(pids[i], "VmHWM")?;
    }
    Ok(FootprintResult { workload, nodes })
}
