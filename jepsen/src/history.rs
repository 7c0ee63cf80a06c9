//! What a run recorded: the clients' operations, the nemesis' faults, the
//! drain workload's tunnels and backend hits, and each node's final view.
//! The runner writes it (`history.json` in the output directory); the
//! checkers read it and nothing else, so a checker can be tested on a
//! history written by hand.
//!
//! Times are microseconds since the Unix epoch on the host's clock, which
//! the clients, the in-process backends and the nemesis share. Drain
//! deadlines are Unix milliseconds as the leader stamped them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, host clock.
pub type Micros = i64;

/// A node of the cluster under test, 1..=3 (its `node.id`).
pub type NodeId = u64;

/// Everything one run recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// When the workload started and when the nemesis healed everything.
    pub started: Micros,
    /// When every fault was healed (convergence is measured from here).
    pub healed: Micros,
    /// When the run ended (after convergence and collection).
    pub ended: Micros,
    /// Client operations on the admin API (register and set workloads).
    pub ops: Vec<Op>,
    /// Faults the nemesis injected, in start order.
    pub faults: Vec<Fault>,
    /// The drain workload's record.
    pub drains: DrainRecord,
    /// Each node's view after heal, for durability and convergence.
    pub finals: Vec<NodeFinal>,
    /// Lines of the node logs that name a panic or an unexpected error.
    pub log_findings: Vec<LogFinding>,
}

/// One client operation: invoked at `invoke`, completed (or given up on) at
/// `complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Unique in the history.
    pub id: u64,
    /// The client (a logical process: one operation at a time).
    pub process: u32,
    /// The node the request was sent to.
    pub node: NodeId,
    pub invoke: Micros,
    pub complete: Micros,
    pub kind: OpKind,
    pub outcome: Outcome,
}

/// What an operation asked for. `key` is a backend address (`host:port`),
/// unique to the workload that uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpKind {
    /// Register: `POST /v1/groups/{register group}/backends` with a weight.
    Add { key: String, weight: u8 },
    /// Register: `DELETE .../backends/{key}` (starts a drain).
    Remove { key: String },
    /// Register: `PATCH .../backends/{key}` with a weight.
    Reweight { key: String, weight: u8 },
    /// Register: `GET .../backends/{key}?consistent=true`.
    Read { key: String },
    /// Set: `POST /v1/groups/{set group}/backends`, each key added once.
    SetAdd { key: String },
}

impl OpKind {
    /// The backend address the operation is about.
    pub fn key(&self) -> &str {
        match self {
            OpKind::Add { key, .. }
            | OpKind::Remove { key }
            | OpKind::Reweight { key, .. }
            | OpKind::Read { key }
            | OpKind::SetAdd { key } => key,
        }
    }
}

/// How an operation ended, in Jepsen's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// It happened; `value` is what the answer showed.
    Ok { value: Observed },
    /// It definitely did not happen: the connection was refused, or the
    /// API answered a 4xx refusal (`code` is the error code; a refusal by
    /// the state machine is an answer about the state, see [`Observed`]).
    Fail { reason: String },
    /// It may or may not have happened: a timeout, a reset after sending,
    /// a 5xx. Counts as maybe-applied, at any time after `invoke`.
    Info { reason: String },
}

/// What an answer said about the key, as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Observed {
    /// The backend is in the group and takes work with this weight.
    Active { weight: u8 },
    /// The backend drains (after a removal).
    Draining,
    /// The backend is not in the group (`404 backend_not_found`).
    Absent,
    /// The state machine refused the command for a reason that says the
    /// backend drains (`409 backend_draining`).
    RefusedDraining,
}

/// One fault the nemesis injected, and when it was healed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// `kill`, `pause`, `partition`, `restart-all`, `membership`, `clock`.
    pub kind: String,
    /// What exactly, for the report ("leader 2 isolated from 1, 3").
    pub detail: String,
    /// The nodes it acted on.
    pub nodes: Vec<NodeId>,
    pub start: Micros,
    /// When it was healed; `None` if it never was (a bug of the run).
    pub end: Option<Micros>,
    /// For `clock`: the offset in milliseconds the node ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
}

/// The drain workload: tunnels and slow requests through every node to
/// backends the run removes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrainRecord {
    /// Tolerance the checker allows on each side of a deadline, in ms.
    pub tolerance_ms: i64,
    /// The removals the workload made.
    pub removals: Vec<Removal>,
    /// Every WebSocket tunnel the clients opened.
    pub tunnels: Vec<Tunnel>,
    /// Every slow request the clients sent.
    pub requests: Vec<SlowRequest>,
    /// Each node's reports of a drain's deadline (polled), in poll order.
    pub deadlines_seen: Vec<DeadlineSeen>,
    /// Requests that reached a backend, with the revision of the state the
    /// routing node routed by (the test build's `x-sluice-revision`).
    pub backend_hits: Vec<BackendHit>,
    /// Each node's applied index, polled (`GET /v1/cluster/applied`)
    /// every poll interval while it answers: the first poll at or past a
    /// removal's log index bounds when that node applied it (or came back).
    pub applied_seen: Vec<AppliedSeen>,
}

/// A node answered that it routes by `index` at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedSeen {
    pub node: NodeId,
    pub index: u64,
    pub at: Micros,
}

/// A backend removal by the drain workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removal {
    /// The backend (`host:port`).
    pub backend: String,
    pub node: NodeId,
    pub invoke: Micros,
    pub complete: Micros,
    /// Deadline in the answer (Unix ms), if it answered.
    pub deadline_ms: Option<i64>,
    /// Log index of the removal (`x-sluice-log-index`), if it answered.
    pub log_index: Option<u64>,
    /// Revision of the state right after the removal (`x-sluice-revision`:
    /// the count of commands applied, the same on every node), if it
    /// answered. A node routing by this revision or a later one has
    /// applied the removal.
    pub revision: Option<u64>,
    /// Whether the removal was acknowledged, refused, or indeterminate.
    pub outcome: Outcome,
}

/// A WebSocket tunnel through `node` to `backend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tunnel {
    pub id: u64,
    pub node: NodeId,
    pub backend: String,
    pub opened: Micros,
    /// When the client saw it end; `None` if still open at the end.
    pub closed: Option<Micros>,
    pub end: TunnelEnd,
}

/// How a tunnel ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TunnelEnd {
    /// A Close frame with this code (1001: going away, the drain's close).
    Close { code: u16 },
    /// The TCP connection ended without a closing handshake.
    Reset,
    /// Still open when the run ended.
    Open,
    /// The client closed it itself (end of run).
    ClientClosed,
}

/// A slow request through `node` to `backend`: the backend answers after a
/// delay longer than a drain, so the deadline decides its fate (R3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowRequest {
    pub id: u64,
    pub node: NodeId,
    pub backend: String,
    pub sent: Micros,
    pub answered: Option<Micros>,
    /// The status, or `None` if the connection failed.
    pub status: Option<u16>,
    /// `x-sluice-error` of the answer, if any.
    pub sluice_error: Option<String>,
}

/// A node reported `backend`'s drain with this deadline at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineSeen {
    pub node: NodeId,
    pub backend: String,
    pub drain: u64,
    pub deadline_ms: i64,
    pub at: Micros,
}

/// A request that reached a backend of the drain workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendHit {
    pub backend: String,
    /// The routing node (`x-sluice-node`).
    pub node: NodeId,
    /// Revision of the state the node routed by (`x-sluice-revision`).
    pub revision: u64,
    pub at: Micros,
}

/// A node's view after heal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFinal {
    pub node: NodeId,
    /// When this view was read.
    pub at: Micros,
    /// `GET /v1/cluster/applied`.
    pub applied_index: u64,
    /// Backends of the set group on this node (local read), sorted.
    pub set_members: Vec<String>,
    /// Backend address → observed state for the register group (local read).
    pub register: BTreeMap<String, Observed>,
    /// The node's whole replicated state (`GET /v1/state`), as JSON text.
    pub state: String,
    /// When this node first showed the same state and applied index as
    /// every other node after heal (`None`: never within the bound).
    pub converged_at: Option<Micros>,
}

/// A log line that names a panic or an unexpected error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFinding {
    pub node: NodeId,
    pub line: String,
}
