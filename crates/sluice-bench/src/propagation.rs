//! Case e, cluster propagation: three local sluice nodes formed and
//! measured by the cluster benchmark's own code
//! ([`crate::cluster::nodes`], [`crate::cluster::propagation`]): `backend remove`
//! returns → the last node stops routing to that backend, over K removals.
//! The nodes are not pinned (they share both CPUs, as in
//! `sluice-cluster-bench`).

use std::path::Path;

use crate::cluster::nodes::BenchCluster;
use crate::cluster::propagation::{self, PropagationResult};
use crate::progress;
use anyhow::Context;

/// Forms the cluster, runs `removals` rounds, stops the cluster.
pub async fn run(sluice: &Path, removals: usize) -> anyhow::Result<PropagationResult> {
    progress::say("propagation: forming a three-node cluster");
    let nodes = BenchCluster::start_blocking(sluice).context("propagation: forming the cluster")?;
    let cluster = BenchCluster::formed(nodes, 4).await?;
    progress::say(&format!("propagation: {removals} removals"));
    let result = propagation::run(&cluster, removals)
        .await
        .context("propagation: removal rounds")?;
    drop(cluster);
    Ok(result)
}
