//! The admin API's JSON bodies, shared by the server and the CLI client.
//!
//! Routes (JSON over HTTP; writes need `Authorization: Bearer <token>`):
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/` | | the dashboard: one HTML page, no token, no external asset; it polls `/v1/overview` every second |
//! | GET | `/livez`, `/readyz` | | `200 ok` (no token); `/readyz` is 503 `draining` while the node drains itself, 503 `raft_stopped` once its Raft core stopped |
//! | GET | `/metrics` | | Prometheus text |
//! | GET | `/v1/groups` | | `[GroupView]` |
//! | POST | `/v1/groups` | [`CreateGroup`] | `201 GroupView` |
//! | GET | `/v1/groups/{group}` | | `GroupView` |
//! | PATCH | `/v1/groups/{group}` | [`UpdateGroup`] | `GroupView` |
//! | GET | `/v1/groups/{group}/backends[?limit=N][&after=ADDR]` | | `[BackendView]`, by address; with `limit` (1..=10000, default 1000) or `after`, one [`BackendPage`] of the backends after `ADDR` |
//! | POST | `/v1/groups/{group}/backends` | [`AddBackend`] | `BackendView` |
//! | GET | `/v1/groups/{group}/backends/{addr}` | | `BackendView` |
//! | DELETE | `/v1/groups/{group}/backends/{addr}` | | `BackendView` (draining or removed) |
//! | DELETE | `/v1/groups/{group}[?force=true]` | | `DeletedGroup` (409 `group_in_use` without force while used) |
//! | PATCH | `/v1/groups/{group}/backends/{addr}` | [`SetBackend`] | `BackendView` |
//! | GET | `/v1/listeners` | | `[ListenerView]` |
//! | POST | `/v1/listeners` | [`AddListener`] | `201 ListenerView` (each node's bind in `nodes`) |
//! | PATCH | `/v1/listeners/{port}` | [`UpdateListener`] | `ListenerView` |
//! | DELETE | `/v1/listeners/{port}` | | `202 ListenerView` (draining) |
//! | GET | `/v1/certs` | | `[CertView]` |
//! | POST | `/v1/certs` | [`AddCert`] | `201 CertView` (a name stored already is replaced); `400` with `field` `cert` or `key` and a code (`invalid_certificate`, `invalid_key`, `key_mismatch`, `certificate_expired`, `certificate_not_yet_valid`) when the chain or key cannot be served, nothing stored |
//! | GET | `/v1/certs/{name}` | | `CertView` |
//! | PUT | `/v1/certs/{name}` | [`UpdateCert`] | `CertView` (404 `cert_not_found` when absent; refused input as for POST) |
//! | DELETE | `/v1/certs/{name}` | | `RemovedCert` (409 `cert_in_use` naming the listeners' ports) |
//! | GET | `/v1/state` | | the whole replicated `State`, certificates' keys left out (`key_pem` empty) |
//! | GET | `/v1/overview` | | [`Overview`]: members, leader and term, groups with each member's view of every backend, every drain with what each member still holds (members asked in parallel, 500 ms each; one that does not answer is `reachable: false`) |
//! | GET | `/v1/local` | | [`LocalView`]: this node alone — what it holds, its own drain, each backend as it routes to it (state, in flight, tunnels, its last probe) |
//! | GET | `/v1/nodes` | | [`NodeList`]: each member, its own drain, what it holds |
//! | POST | `/v1/nodes/{node}/drain` | [`DrainNode`] | `202 NodeView` (draining; N1) |
//! | POST | `/v1/nodes/{node}/undrain` | | `NodeView` (409 `node_not_draining`) |
//! | POST | `/v1/cluster/init` | | `ClusterStatus` (this node alone) |
//! | POST | `/v1/cluster/join` | [`JoinNode`] | `NodeIdentity` of the new voter |
//! | GET | `/v1/cluster/status` | | `ClusterStatus` |
//! | DELETE | `/v1/cluster/nodes/{node}` | | `ClusterStatus` |
//! | GET | `/v1/cluster/self`, `/v1/cluster/applied` | | who this node is; the log index its data plane runs |
//! | POST | `/raft/append`, `/raft/vote`, `/raft/snapshot`, `/raft/write` | bincode | Raft RPCs and forwarded writes (token; served by `sluice_raft::rpc_server`, merged on this port, as is `/v1/cluster/self`) |
//! | GET, PUT | `/v1/debug/faults` | `{"drop_raft_to": [2, 3], "hold_entries_to": [4]}` | the same, as now in force: this node's Raft RPCs (append, vote, snapshot) to the `drop_raft_to` ids are dropped, and to the `hold_entries_to` ids only those carrying entries or a snapshot (heartbeats go: they lag, knowing their leader); `[]` heals (token; tests only: `404 no_such_route` unless the node runs with `[debug] fault_injection = true`) |
//!
//! Reads answer from the node's own state; add `?consistent=true` for a
//! linearizable read (confirmed by, or forwarded to, the leader). Writes on
//! a follower are forwarded to the leader. A write's answer is what the
//! leader applied (N2), whichever node was asked; when some member's data
//! plane had not applied it yet when the answer was made, the answer is
//! `202` and names them in `pending_nodes`. A committed write's answer
//! carries `x-sluice-log-index` (its log entry) and `x-sluice-revision`
//! (the count of commands applied right after it; a node whose state has
//! this revision or a later one has applied the write). Request bodies with an unknown
//! field are refused (`400 unknown_field`), and so are updates that name
//! nothing to change (`400 nothing_to_update`).
//!
//! No answer carries a certificate's private key: certificates show as
//! [`CertView`] (what the leaf says), and `/v1/state` blanks the keys.
//!
//! `{addr}` is `host:port`, percent-encoded where needed (`[::1]:80`).
//! Every error is `{"error": {"code", "message", "field"}}` ([`ErrorBody`]).

use serde::{Deserialize, Serialize};
use sluice_model::{
    DrainId, HealthCheck, HealthCheckUpdate, NodeDrainReason, NodeId, SecretPem, UnixMillis,
};
use sluice_raft::MemberHolds;

mod overview;
pub use overview::{
    DrainKind, LocalBackendView, LocalOwnDrain, LocalView, Overview, OverviewBackend,
    OverviewBackendOnNode, OverviewDrain, OverviewDrainOnNode, OverviewGroup, OverviewMember,
    RoutingState,
};

/// Body of `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Group name.
    pub name: String,
    /// Drain on/off (default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_enabled: Option<bool>,
    /// Drain timeout in ms, 0..=3_600_000 (default 300_000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout_ms: Option<u64>,
    /// Slow-start window in ms, 30_000..=900_000 (default off, R10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start_ms: Option<u64>,
}

/// Body of `PATCH /v1/groups/{group}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    /// Drain on/off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_enabled: Option<bool>,
    /// Drain timeout in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout_ms: Option<u64>,
    /// Health-check changes (a real change starts a new revision, R8).
    #[serde(default)]
    pub health: HealthCheckUpdate,
    /// Slow-start window in ms; 0 turns slow start off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start_ms: Option<u64>,
}

/// Body of `POST /v1/groups/{group}/backends`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBackend {
    /// `host:port`.
    pub addr: String,
    /// 0..=100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// Body of `POST /v1/listeners`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddListener {
    /// TCP port, 1..=65535.
    pub port: u32,
    /// Group it forwards to.
    pub group: String,
    /// Request timeout in ms, 1_000..=600_000 (default 60_000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// Certificates (by name) it terminates TLS with; none: plain TCP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<String>,
}

/// Body of `PATCH /v1/groups/{group}/backends/{addr}`: at least one field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBackend {
    /// 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Maintenance on (no new work, connections kept) or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
}

/// Body of `PATCH /v1/listeners/{port}`: at least one field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateListener {
    /// Group it forwards to from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Request timeout in ms, 1_000..=600_000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// Certificates it terminates TLS with from now on; empty: plain TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Vec<String>>,
}

/// Answer of `DELETE /v1/groups/{group}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedGroup {
    /// The group.
    pub name: String,
    /// `deleted`, or `deleting` while the backends it had drain (`force`).
    pub state: String,
    /// Its backends, draining (with `force`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendView>,
    /// Its listeners, draining (with `force`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerView>,
    /// Members whose data plane had not applied the write yet (see the
    /// module docs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_nodes: Vec<NodeId>,
}

/// A group as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// Drain on/off.
    pub drain_enabled: bool,
    /// Drain timeout in ms.
    pub drain_timeout_ms: u64,
    /// Health check.
    pub health: HealthCheck,
    /// Health-check configuration revision (R8).
    pub health_revision: u64,
    /// Slow-start window in ms (R10), absent when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start_ms: Option<u64>,
    /// Its backends.
    pub backends: Vec<BackendView>,
    /// Being deleted (`force`): its backends drain, then it goes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    /// On a write's answer: members whose data plane had not applied the
    /// write yet (the answer is then `202`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_nodes: Vec<NodeId>,
}

/// Whether a backend takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// Takes new work.
    Active,
    /// Drains: no new work, closed at the deadline.
    Draining,
    /// In maintenance: no new work, its connections kept.
    Maintenance,
    /// Gone from the group (answer of a removal that completed at once).
    Removed,
}

/// A backend as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    /// Group.
    pub group: String,
    /// `host:port`.
    pub addr: String,
    /// Weight 0..=100.
    pub weight: u8,
    /// Active, draining or removed.
    pub state: BackendState,
    /// Requests in flight to it through the answering node.
    pub in_flight: u64,
    /// Open WebSocket tunnels to it through the answering node.
    pub tunnels: u64,
    /// The drain, while it drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainView>,
    /// Replicated health and each node's view.
    pub health: HealthView,
    /// Its slow-start ramp, while it ramps (R10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampView>,
    /// On a write's answer: members whose data plane had not applied the
    /// write yet (the answer is then `202`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_nodes: Vec<NodeId>,
}

/// Most backends one page of `GET /v1/groups/{group}/backends` holds.
pub const BACKEND_PAGE_MAX: usize = 10_000;
/// Backends in a page when `after` is given without `limit`.
pub const BACKEND_PAGE_DEFAULT: usize = 1_000;

/// One page of a group's backends, ordered by address: the answer of
/// `GET /v1/groups/{group}/backends` with `limit` or `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendPage {
    /// Up to `limit` backends whose address sorts after `after`.
    pub backends: Vec<BackendView>,
    /// The `after` of the next page (the last address of this one);
    /// absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// A backend's slow-start ramp as routing sees it by the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RampView {
    /// Share of its weight it gets now, 0..=100.
    pub percent: u8,
    /// When the ramp started (leader's clock).
    pub from_ms: UnixMillis,
    /// Time until it reaches its full weight.
    pub remaining_ms: u64,
}

/// A backend's health as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    /// `healthy`, `unhealthy`, or `unchecked` (checks off, or weight 0).
    pub status: String,
    /// When the cluster last agreed a change (0: never).
    pub since_ms: UnixMillis,
    /// Passed a check under the current revision (a failure drains, R8).
    pub proven: bool,
    /// Each node's last logged view.
    pub nodes: Vec<NodeHealthView>,
    /// The answering node's last probe, if it probes the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalProbeView>,
}

/// One node's logged view of a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHealthView {
    /// Node id.
    pub node: NodeId,
    /// Its view; `None` when it has not reported under this revision.
    pub healthy: Option<bool>,
    /// Its last probe's outcome when it reported.
    pub detail: String,
    /// When the report was logged.
    pub at_ms: UnixMillis,
}

/// The answering node's last probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalProbeView {
    /// This node's view after the thresholds.
    pub healthy: bool,
    /// Whether the last probe passed.
    pub passed: bool,
    /// Its outcome: a status code or the error.
    pub detail: String,
    /// When it ended.
    pub at_ms: UnixMillis,
}

/// A drain as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainView {
    /// Id.
    pub id: DrainId,
    /// Why (`removed`, `health_check_failed`).
    pub cause: String,
    /// When it started.
    pub started_at_ms: UnixMillis,
    /// When what is left is closed, on every node.
    pub deadline_ms: UnixMillis,
    /// Time left until the deadline when this answer was made (0 after it).
    pub remaining_ms: u64,
    /// What follows: `remove` or `reactivate`.
    pub then: String,
    /// Each member node and whether it has finished.
    pub nodes: Vec<NodeDrainView>,
}

/// One node's part of a drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDrainView {
    /// Node id.
    pub node: NodeId,
    /// No work left on the backend there.
    pub finished: bool,
}

/// A listener as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerView {
    /// Port.
    pub port: u16,
    /// Group.
    pub group: String,
    /// Request timeout in ms.
    pub request_timeout_ms: u64,
    /// Address the answering node binds it on, e.g. `127.0.0.1:8080`.
    pub bind: String,
    /// `listening`, or why the answering node could not bind it.
    pub status: String,
    /// `active`, or `draining` once removed.
    pub state: String,
    /// Certificates it terminates TLS with (the first is the default);
    /// empty: plain TCP.
    #[serde(default)]
    pub tls: Vec<String>,
    /// When its connections are closed, while it drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_deadline_ms: Option<UnixMillis>,
    /// Each member's bind, as the member reported it.
    #[serde(default)]
    pub nodes: Vec<ListenerNodeView>,
    /// On a write's answer: members whose data plane had not applied the
    /// write yet (the answer is then `202`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_nodes: Vec<NodeId>,
}

/// One member's bind of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerNodeView {
    /// Node id.
    pub node: NodeId,
    /// `listening`, `failed`, or `unknown` (not reported yet).
    pub status: String,
    /// Why it failed (empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Body of `POST /v1/certs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCert {
    /// Its name, as listeners refer to it.
    pub name: String,
    /// The certificate chain as PEM, leaf first.
    pub chain_pem: String,
    /// The leaf's private key as PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: SecretPem,
}

/// Body of `PUT /v1/certs/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCert {
    /// The new chain as PEM, leaf first.
    pub chain_pem: String,
    /// Its private key as PEM.
    pub key_pem: SecretPem,
}

/// A certificate as the API shows it: what its leaf says, never its key
/// nor its PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertView {
    /// Name.
    pub name: String,
    /// The leaf's subject, e.g. `CN=www.example.com`.
    pub subject: String,
    /// Its DNS names and IP addresses.
    pub sans: Vec<String>,
    /// The leaf's issuer.
    pub issuer: String,
    /// Valid from.
    pub not_before_ms: UnixMillis,
    /// Valid until.
    pub not_after_ms: UnixMillis,
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fingerprint_sha256: String,
    /// Certificates in the chain, the leaf included.
    pub chain_len: usize,
    /// The state's revision when this chain was stored: a replacement has a
    /// higher one.
    pub version: u64,
    /// Ports of the listeners that terminate TLS with it.
    pub listeners: Vec<u16>,
    /// On a write's answer: members whose data plane had not applied the
    /// write yet (the answer is then `202`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_nodes: Vec<NodeId>,
}

/// Answer of `DELETE /v1/certs/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedCert {
    /// The certificate.
    pub name: String,
    /// `removed`.
    pub state: String,
    /// Members whose data plane had not applied the write yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_nodes: Vec<NodeId>,
}

/// Every error the API returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code, e.g. `out_of_range`, `unauthorized`, `group_not_found`.
    pub code: String,
    /// One readable sentence.
    pub message: String,
    /// The request field at fault, if one is.
    #[serde(default)]
    pub field: Option<String>,
}

/// Body of `POST /v1/cluster/join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinNode {
    /// Admin URL of the node to add, e.g. `http://127.0.0.2:7072`.
    pub addr: String,
}

/// Body of `POST /v1/nodes/{node}/drain`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainNode {
    /// Time from now to the deadline in ms, 0..=3_600_000 (default
    /// [`DEFAULT_NODE_DRAIN_TIMEOUT_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A node drain's timeout when none is given: 60 s.
pub const DEFAULT_NODE_DRAIN_TIMEOUT_MS: u64 = 60_000;

/// `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    /// Every member, by id.
    pub nodes: Vec<NodeView>,
}

/// One member node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Node id.
    pub node: NodeId,
    /// Admin URL.
    pub addr: String,
    /// Whether it answered just now.
    pub reachable: bool,
    /// Its own drain (N1), `null` when it takes clients.
    pub drain: Option<OwnDrainView>,
    /// What it holds, as it answered just now (`null`: unreachable).
    pub holds: Option<MemberHolds>,
    /// Members that did not apply the write yet (write answers only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_nodes: Vec<NodeId>,
}

/// A node's own drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnDrainView {
    /// Drain id.
    pub drain: DrainId,
    /// `operator` (`node drain`, until `node undrain`) or `stopping`
    /// (SIGTERM).
    pub reason: NodeDrainReason,
    /// When it started.
    pub started_ms: UnixMillis,
    /// When the node closes what it still holds.
    pub deadline_ms: UnixMillis,
    /// Time left until the deadline when this answer was made.
    pub remaining_ms: u64,
    /// Whether the node reported holding nothing any more.
    pub finished: bool,
}
