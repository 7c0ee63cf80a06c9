//! Disk usage of a node's data directory, and a guard that stops a
//! workload when a node's directory outgrows a limit.
//!
//! Why the guard: under a sustained burst of removals the data directories
//! can grow by gigabytes within minutes (the report shows it); the
//! benchmark shares the host's disk with everything else, so it stops
//! writing, and stops waiting, once any node passes `--disk-limit-mib`,
//! and reports that it did.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::format::bytes;
use crate::shutdown::AbortOnDrop;

/// How often the guard measures.
const GUARD_EVERY: Duration = Duration::from_secs(1);

/// Bytes under a directory.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskUsage {
    /// Sum of file lengths.
    pub apparent: u64,
    /// Blocks allocated × 512.
    pub allocated: u64,
}

impl DiskUsage {
    /// The larger of the two figures.
    pub fn largest(&self) -> u64 {
        self.apparent.max(self.allocated)
    }
}

/// Walks `dir` (off the async runtime) and sums its files. Files that
/// vanish during the walk (sled rotates segments and blobs) are skipped.
pub async fn usage(dir: &Path) -> anyhow::Result<DiskUsage> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || walk(&dir))
        .await
        .map_err(|e| anyhow!("the disk walk panicked: {e}"))?
}

fn walk(dir: &Path) -> anyhow::Result<DiskUsage> {
    use std::os::unix::fs::MetadataExt;
    let mut total = DiskUsage::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(total),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("stat {}", entry.path().display())),
        };
        if meta.is_dir() {
            let sub = walk(&entry.path())?;
            total.apparent += sub.apparent;
            total.allocated += sub.allocated;
        } else {
            total.apparent += meta.len();
            total.allocated += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// Trips once any node's data directory is larger than `limit`.
pub struct DiskGuard {
    dirs: Vec<(u64, PathBuf)>,
    limit: u64,
    tripped: Mutex<Option<String>>,
}

impl DiskGuard {
    /// A guard over the data directories `dirs` (node id, directory), as
    /// [`BenchCluster::data_dirs`](super::nodes::BenchCluster::data_dirs)
    /// lists them.
    pub fn new(dirs: Vec<(u64, PathBuf)>, limit: u64) -> Arc<DiskGuard> {
        Arc::new(DiskGuard {
            dirs,
            limit,
            tripped: Mutex::new(None),
        })
    }

    /// Why it tripped, once it has.
    pub fn tripped(&self) -> Option<String> {
        self.tripped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Measures every second until the returned handle is dropped.
    pub fn watch(self: &Arc<Self>) -> AbortOnDrop<()> {
        let guard = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            while guard.tripped().is_none() {
                for (node, dir) in &guard.dirs {
                    // A failed walk is not worth stopping for; try again.
                    let Ok(used) = usage(dir).await else { continue };
                    if used.largest() > guard.limit {
                        let why = format!(
                            "node {node}'s data directory reached {} (limit {}, --disk-limit-mib)",
                            bytes(used.largest()),
                            bytes(guard.limit)
                        );
                        eprintln!("  stopping: {why}");
                        *guard.tripped.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                        break;
                    }
                }
                tokio::time::sleep(GUARD_EVERY).await;
            }
        }))
    }
}
