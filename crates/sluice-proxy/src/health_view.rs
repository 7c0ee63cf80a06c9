//! What this node sees of a backend's health: its last probe (shown by the
//! admin views) and the view it reports for the replicated health. Plain
//! data, shared by the probe tasks, the applier and the events they raise.

use sluice_model::UnixMillis;

/// A node's view of one backend, as reported to the replicated state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The group.
    pub group: String,
    /// `host:port`.
    pub backend: String,
    /// Health-check revision of the group the view was formed under.
    pub revision: u64,
    /// The view after the thresholds.
    pub healthy: bool,
    /// Whether a check passed under `revision`.
    pub passed: bool,
    /// The last probe's outcome (`200`, `timeout after 5s`, ...).
    pub detail: String,
}

/// This node's last probe of a backend (for the admin views).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHealth {
    /// The view after the thresholds.
    pub healthy: bool,
    /// The last probe's outcome.
    pub detail: String,
    /// Whether the last probe passed.
    pub last_passed: bool,
    /// When it ended.
    pub at: UnixMillis,
}
