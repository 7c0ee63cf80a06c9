//! Commands: every change to the cluster's state, as data.

use serde::{Deserialize, Serialize};

use crate::{DrainId, DrainPolicy, HealthCheckUpdate, NodeId, UnixMillis};

/// One change to the state. Commands are what the log replicates; applying
/// the same commands in the same order gives the same state everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Create a server group.
    CreateGroup {
        /// Name of the new group.
        name: String,
        /// Its drain policy.
        drain: DrainPolicy,
        /// Slow-start window (R10), `None`: off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slow_start_ms: Option<u64>,
    },
    /// Change a group's settings. Drains in progress keep their deadline (R7).
    UpdateGroup {
        /// The group.
        name: String,
        /// New drain on/off, if given.
        drain_enabled: Option<bool>,
        /// New drain timeout, if given.
        drain_timeout_ms: Option<u64>,
        /// Health-check changes; any real change bumps the revision (R8).
        #[serde(default)]
        health: HealthCheckUpdate,
        /// New slow-start window, if given; `Some(0)` turns it off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slow_start_ms: Option<u64>,
    },
    /// Add a backend to a group, or change an active backend's weight.
    /// Adding a draining backend only changes what follows the drain (R5).
    AddBackend {
        /// The group.
        group: String,
        /// `host:port`.
        addr: String,
        /// 0..=100.
        weight: u8,
        /// Stamped by the leader; a slow-start ramp starts from it (R10).
        #[serde(default)]
        at: UnixMillis,
    },
    /// Remove a backend: it stops taking new work at once and drains (R1).
    RemoveBackend {
        /// The group.
        group: String,
        /// `host:port`.
        addr: String,
        /// When the proposer accepted the removal; the deadline is computed
        /// from it (C3).
        at: UnixMillis,
    },
    /// Add a listener.
    AddListener {
        /// TCP port.
        port: u16,
        /// Group it forwards to.
        group: String,
        /// Request timeout (R9).
        request_timeout_ms: u64,
    },
    /// A node has no work left on a draining backend.
    DrainFinished {
        /// The drain.
        drain: DrainId,
        /// The node reporting.
        node: NodeId,
        /// Stamped by the leader; a backend reactivated by this report
        /// ramps from it (R10).
        #[serde(default)]
        at: UnixMillis,
    },
    /// A node's view of a backend's health (C6): sent when the node first
    /// probes under a revision, when its view flips and when it first
    /// passes under the revision. A report under an older revision is
    /// ignored.
    HealthReport {
        /// The group.
        group: String,
        /// `host:port`.
        backend: String,
        /// The node reporting.
        node: NodeId,
        /// Health-check revision the view was formed under.
        revision: u64,
        /// The node's view.
        healthy: bool,
        /// Whether the node passed a check under `revision`.
        passed: bool,
        /// The last probe's outcome.
        detail: String,
        /// Stamped by the leader; a flip to unhealthy drains from it (R6).
        at: UnixMillis,
    },
    /// The set of nodes whose reports a drain waits for.
    SetNodes {
        /// Every member node.
        nodes: Vec<NodeId>,
    },
}

/// What applying a command did, for the caller's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Applied {
    /// The change was made (or was already in place).
    Done,
    /// A drain started, or an earlier one goes on (removing or re-adding a
    /// draining backend).
    Draining {
        /// The drain.
        drain: DrainId,
        /// Its deadline.
        deadline: UnixMillis,
        /// Whether this command started it.
        started: bool,
    },
    /// A drain completed: every node finished.
    DrainCompleted {
        /// The drain.
        drain: DrainId,
    },
}
