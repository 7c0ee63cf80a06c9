//! What a cluster benchmark run does: the phases' sizes and limits, as
//! resolved from the `sluice-cluster-bench` command line.

use std::path::PathBuf;
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct Params {
    /// The `sluice` binary (absolute).
    pub sluice: PathBuf,
    /// The binary as the command line named it (what the report shows: no
    /// machine-specific absolute path in published results).
    pub sluice_as_given: PathBuf,
    /// Removal rounds of the propagation phase.
    pub removals: usize,
    /// Commands of the footprint phase.
    pub writes: u64,
    /// Concurrent writers of the throughput and footprint phases.
    pub concurrency: usize,
    /// Duration of each throughput run.
    pub throughput_for: Duration,
    /// Longest wait for the cluster to settle after a workload.
    pub settle_limit: Duration,
    /// A workload stops once a node's data directory is larger (bytes).
    pub disk_limit: u64,
    /// Whether to run the footprint phase.
    pub footprint: bool,
    /// Backends in group `scale` at each step of the scale phase,
    /// ascending (empty: the phase is skipped).
    pub scale: Vec<u64>,
    /// Adds (the last of each fill) over which the scale phase measures
    /// adds/s.
    pub scale_window: u64,
    /// Propagation rounds at each size of the scale phase.
    pub scale_removals: usize,
    /// Run the scale phase alone (phases 1 to 3 skipped).
    pub scale_only: bool,
    /// Smoke mode (only changes the defaults above; noted in the report).
    pub quick: bool,
}
