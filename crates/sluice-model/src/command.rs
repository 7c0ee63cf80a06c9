//! Commands: every change to the cluster's state, as data.

use serde::{Deserialize, Serialize};

use crate::{Cert, DrainId, DrainPolicy, HealthCheckUpdate, NodeDrainReason, NodeId, UnixMillis};

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
        /// Certificates it terminates TLS with; empty: plain TCP.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tls: Vec<String>,
    },
    /// Change a listener's group or request timeout; requests already under
    /// way keep the settings they started with.
    UpdateListener {
        /// TCP port.
        port: u16,
        /// New group, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// New request timeout, if given (R9).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_timeout_ms: Option<u64>,
        /// New certificates, if given; empty: plain TCP from now on. New
        /// connections use them, established ones keep their session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<Vec<String>>,
    },
    /// Remove a listener: its port stops accepting at once and its
    /// connections drain like a backend's, closed at the group's deadline.
    RemoveListener {
        /// TCP port.
        port: u16,
        /// Stamped by the leader; the deadline is computed from it (C3).
        #[serde(default)]
        at: UnixMillis,
    },
    /// A node's attempt to bind a listener: reported when it first tries
    /// and whenever the outcome changes.
    ListenerReport {
        /// TCP port.
        port: u16,
        /// The listener's generation the attempt was made for; a report for
        /// an older listener on the same port is ignored.
        generation: u64,
        /// The node reporting.
        node: NodeId,
        /// Whether the port is bound there.
        bound: bool,
        /// `listening`, or why the bind failed.
        detail: String,
    },
    /// Delete a group. Refused while backends or listeners use it, unless
    /// `force`: then its listeners and backends drain first and the group
    /// goes when the last drain completes.
    DeleteGroup {
        /// The group.
        name: String,
        /// Drain what uses the group instead of refusing.
        #[serde(default)]
        force: bool,
        /// Stamped by the leader; drains started by `force` count from it.
        #[serde(default)]
        at: UnixMillis,
    },
    /// Change a backend's weight or maintenance state. A backend in
    /// maintenance takes no new work and keeps its connections.
    SetBackend {
        /// The group.
        group: String,
        /// `host:port`.
        addr: String,
        /// New weight 0..=100, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u8>,
        /// Maintenance on or off, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maintenance: Option<bool>,
        /// Stamped by the leader; a backend back from maintenance ramps
        /// from it (R10).
        #[serde(default)]
        at: UnixMillis,
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
    /// Drain a node (N1): it stops taking new clients and closes what it
    /// still holds at `at + timeout_ms`.
    DrainNode {
        /// The node.
        node: NodeId,
        /// Time from `at` to the deadline, 0..=3600 s.
        timeout_ms: u64,
        /// An operator's drain or the node's own stop.
        reason: NodeDrainReason,
        /// The stopping process (stopping drains only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incarnation: Option<u64>,
        /// Stamped by the leader; the deadline is computed from it (C3).
        #[serde(default)]
        at: UnixMillis,
    },
    /// End a node's drain: it takes new clients again.
    UndrainNode {
        /// The node.
        node: NodeId,
    },
    /// A node's process started: a stopping drain left by an earlier
    /// process of the node ends.
    NodeRestarted {
        /// The node.
        node: NodeId,
        /// The new process.
        incarnation: u64,
    },
    /// A draining node holds no client connection any more.
    NodeDrainFinished {
        /// The node.
        node: NodeId,
        /// Its drain.
        drain: DrainId,
    },
    /// Store a certificate, or replace the one of that name: every node
    /// serves it on its next handshakes; established sessions go on.
    AddCert {
        /// The certificate, key and what its leaf says.
        cert: Cert,
    },
    /// Replace a certificate that exists.
    UpdateCert {
        /// The certificate, key and what its leaf says.
        cert: Cert,
    },
    /// Remove a certificate; refused while a listener uses it.
    RemoveCert {
        /// Its name.
        name: String,
    },
    /// The set of nodes whose reports a drain waits for.
    SetNodes {
        /// Every member node.
        nodes: Vec<NodeId>,
    },
}

impl Command {
    /// The leader's time stamped on the command, for commands that carry one.
    pub fn stamped_at(&self) -> Option<UnixMillis> {
        match self {
            Command::AddBackend { at, .. }
            | Command::RemoveBackend { at, .. }
            | Command::SetBackend { at, .. }
            | Command::RemoveListener { at, .. }
            | Command::DeleteGroup { at, .. }
            | Command::DrainFinished { at, .. }
            | Command::DrainNode { at, .. }
            | Command::HealthReport { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// The leader's time, on the commands that carry one (see
    /// [`Command::stamped_at`]); others are left as they are.
    pub fn stamp(&mut self, now: UnixMillis) {
        match self {
            Command::AddBackend { at, .. }
            | Command::RemoveBackend { at, .. }
            | Command::SetBackend { at, .. }
            | Command::RemoveListener { at, .. }
            | Command::DeleteGroup { at, .. }
            | Command::DrainFinished { at, .. }
            | Command::DrainNode { at, .. }
            | Command::HealthReport { at, .. } => *at = now,
            _ => {}
        }
    }
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
