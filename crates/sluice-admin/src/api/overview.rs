//! The bodies behind the dashboard: `GET /v1/local` (one node's own live
//! view, which members read from each other) and `GET /v1/overview` (the
//! whole cluster as the answering node gathered it from every member's
//! local view).

use serde::{Deserialize, Serialize};
use sluice_model::{DrainId, NodeId, UnixMillis};
use sluice_raft::MemberHolds;

use super::LocalProbeView;

/// How one node's data plane treats a backend, by that node's own copy of
/// the replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingState {
    /// Takes new work at its full weight.
    Active,
    /// Takes new work, ramping up to its weight (R10).
    SlowStart,
    /// Agreed unhealthy by the cluster: no new work.
    Unhealthy,
    /// In maintenance: no new work, its connections kept.
    Maintenance,
    /// Drains: no new work, closed at the drain's deadline.
    Draining,
}

/// `GET /v1/local`: what one node runs and holds now, from itself alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalView {
    /// The node.
    pub node: NodeId,
    /// Its clock when it answered (Unix ms).
    pub now_ms: UnixMillis,
    /// The log index its data plane runs.
    pub applied: u64,
    /// What it holds: client connections, requests in flight, tunnels.
    pub holds: MemberHolds,
    /// Its own drain (N1) as its data plane runs it, if it drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_drain: Option<LocalOwnDrain>,
    /// Every backend of its state, group by group.
    pub backends: Vec<LocalBackendView>,
}

/// A node's own drain as its data plane runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalOwnDrain {
    /// The replicated drain, or `None` for a stop the node began on its
    /// own word (C4).
    pub drain: Option<DrainId>,
    /// When it closes what it still holds.
    pub deadline_ms: UnixMillis,
    /// It holds nothing any more.
    pub finished: bool,
}

/// One backend as one node routes to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalBackendView {
    /// Group.
    pub group: String,
    /// `host:port`.
    pub addr: String,
    /// How this node routes to it.
    pub state: RoutingState,
    /// The drain it is in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainId>,
    /// This node reported it has no work left on it for that drain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain_finished: bool,
    /// Requests in flight to it through this node.
    pub in_flight: u64,
    /// WebSocket tunnels to it through this node.
    pub tunnels: u64,
    /// This node's last probe of it, if it probes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<LocalProbeView>,
}

/// `GET /v1/overview`: the cluster as the answering node sees it, with each
/// member's local view (asked in parallel, within half a second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// The answering node.
    pub node: NodeId,
    /// Its clock when it answered (Unix ms): a client corrects its own
    /// clock by it before counting down to a deadline.
    pub now_ms: UnixMillis,
    /// The leader it knows, if any.
    pub leader: Option<NodeId>,
    /// The Raft term.
    pub term: u64,
    /// The state's revision it runs.
    pub revision: u64,
    /// Every member, by id.
    pub members: Vec<OverviewMember>,
    /// Every group with its backends and each member's view of them.
    pub groups: Vec<OverviewGroup>,
    /// Every drain under way: backends', listeners' and nodes' own.
    pub drains: Vec<OverviewDrain>,
}

/// One member in the overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewMember {
    /// Node id.
    pub node: NodeId,
    /// Admin URL.
    pub addr: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    /// Whether it answered just now.
    pub reachable: bool,
    /// The log index its data plane runs (`null`: unreachable).
    pub applied: Option<u64>,
    /// Its clock minus the answering node's, in ms, as far as one request
    /// can tell (`null`: unreachable).
    pub clock_skew_ms: Option<i64>,
    /// What it holds (`null`: unreachable).
    pub holds: Option<MemberHolds>,
    /// Its own drain's id, if it drains by the replicated state.
    pub drain: Option<DrainId>,
}

/// A group in the overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewGroup {
    /// Name.
    pub name: String,
    /// Drain on/off.
    pub drain_enabled: bool,
    /// Drain timeout in ms.
    pub drain_timeout_ms: u64,
    /// Health checks on/off.
    pub health_checks: bool,
    /// Ports of the listeners that forward to it.
    pub listeners: Vec<u16>,
    /// Its backends.
    pub backends: Vec<OverviewBackend>,
}

/// A backend in the overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewBackend {
    /// `host:port`.
    pub addr: String,
    /// Weight 0..=100.
    pub weight: u8,
    /// How the answering node routes to it.
    pub state: RoutingState,
    /// Its drain, while it drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainId>,
    /// Each member's view, by node id.
    pub nodes: Vec<OverviewBackendOnNode>,
}

/// A backend as one member routes to it and probes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewBackendOnNode {
    /// Node id.
    pub node: NodeId,
    /// Whether the member answered; the fields below are `null` when not,
    /// or when it does not know the backend (yet, or any more).
    pub reachable: bool,
    /// How it routes to it.
    pub state: Option<RoutingState>,
    /// Requests in flight to it through that member.
    pub in_flight: Option<u64>,
    /// Tunnels to it through that member.
    pub tunnels: Option<u64>,
    /// That member's last probe of it.
    pub probe: Option<LocalProbeView>,
}

/// What a drain is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainKind {
    /// A backend removed, or failing its health checks.
    Backend,
    /// A removed listener.
    Listener,
    /// A node draining itself (N1).
    Node,
}

/// A drain under way in the overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewDrain {
    /// Id (one sequence for every kind).
    pub id: DrainId,
    /// What drains.
    pub kind: DrainKind,
    /// What it is of, for people: `web 10.0.0.11:8080`, `listener :80`,
    /// `node 2`.
    pub subject: String,
    /// Why: `removed`, `health_check_failed`, `operator`, `stopping`.
    pub cause: String,
    /// When it started (Unix ms).
    pub started_at_ms: UnixMillis,
    /// When every node closes what is left (Unix ms).
    pub deadline_ms: UnixMillis,
    /// Time left when the answer was made (0 after the deadline).
    pub remaining_ms: u64,
    /// What each member still holds for it: every member for a backend's
    /// drain, the node itself for a node's; empty for a listener's (its
    /// connections are not counted apart).
    pub nodes: Vec<OverviewDrainOnNode>,
}

/// What one member holds for a drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewDrainOnNode {
    /// Node id.
    pub node: NodeId,
    /// Whether the member answered (the counts are `null` when not).
    pub reachable: bool,
    /// Its report is logged: it holds nothing for the drain any more.
    pub finished: bool,
    /// Requests it still holds for the drain.
    pub requests: Option<u64>,
    /// Tunnels it still holds for the drain.
    pub tunnels: Option<u64>,
    /// Client connections it still holds (node drains only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
}
