//! The nouns of the model: groups, backends, listeners, drains and nodes'
//! own drains.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::health::{BackendHealth, HealthCheck};
use crate::ids::{DrainId, NodeId, UnixMillis};
use crate::ramp::Ramp;

/// How a group drains a backend that leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainPolicy {
    /// Off means removal is abrupt (R4).
    pub enabled: bool,
    /// Time from removal to the deadline at which what is left is closed (R3).
    pub timeout_ms: u64,
}

impl Default for DrainPolicy {
    fn default() -> Self {
        DrainPolicy {
            enabled: true,
            timeout_ms: crate::DEFAULT_DRAIN_TIMEOUT_MS,
        }
    }
}

impl DrainPolicy {
    /// The time a drain started at `at` must close at: `at` itself when
    /// draining is off (R4).
    pub fn deadline_from(&self, at: UnixMillis) -> UnixMillis {
        if self.enabled {
            at.saturating_add(self.timeout_ms)
        } else {
            at
        }
    }
}

/// A server group: the backends a listener spreads work over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Unique name (`[a-z0-9][a-z0-9_-]{0,62}`).
    pub name: String,
    /// Drain settings applied to removals started from now on.
    pub drain: DrainPolicy,
    /// Members by `host:port`, active or draining.
    pub backends: imbl::OrdMap<String, Backend>,
    /// Active health check.
    #[serde(default)]
    pub health: HealthCheck,
    /// Bumped whenever `health` changes (R8: failures before the first pass
    /// under the current revision are the configuration's).
    #[serde(default)]
    pub health_revision: u64,
    /// Slow-start window (R10); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start_ms: Option<u64>,
    /// Deleted with `force`: it takes no new backends or listeners and
    /// leaves the state when its last backend's drain completes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
}

impl Group {
    /// The backend at `addr`, or why there is none.
    pub(crate) fn backend_mut(&mut self, addr: &str) -> Result<&mut Backend, crate::ModelError> {
        let group = &self.name;
        self.backends
            .get_mut(addr)
            .ok_or_else(|| crate::ModelError::BackendNotFound {
                group: group.clone(),
                backend: addr.to_string(),
            })
    }

    /// Backends that may take new work by the replicated state alone.
    pub fn routable(&self) -> impl Iterator<Item = &Backend> {
        self.routable_with(|_| false).into_iter()
    }

    /// Backends that may take new work on a node whose own probes see the
    /// backends `locally_failing` says failing (C6). R1: a draining backend
    /// never appears; weight 0 takes no new work. Health (when the group
    /// checks it) leaves out a backend the cluster or this node sees
    /// failing — unless that leaves none, then all are used (fail open).
    pub fn routable_with(&self, locally_failing: impl Fn(&Backend) -> bool) -> Vec<&Backend> {
        let candidates: Vec<&Backend> = self
            .backends
            .values()
            .filter(|b| b.status == BackendStatus::Active && b.weight > 0 && !b.maintenance)
            .collect();
        if !self.health.enabled {
            return candidates;
        }
        let healthy: Vec<&Backend> = candidates
            .iter()
            .copied()
            .filter(|b| b.health.healthy && !locally_failing(b))
            .collect();
        if healthy.is_empty() {
            candidates
        } else {
            healthy
        }
    }
}

/// One backend of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// `host:port` it is reached at.
    pub addr: String,
    /// Relative share of new work, 0..=100.
    pub weight: u8,
    /// Whether it takes new work or is draining.
    pub status: BackendStatus,
    /// Replicated health and each node's reports.
    #[serde(default)]
    pub health: BackendHealth,
    /// The slow-start ramp it entered when it last became active (R10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// In maintenance: takes no new work, keeps its connections, is not
    /// health-checked and is never drained by a health failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance: bool,
}

/// Whether a backend takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BackendStatus {
    /// Takes new work.
    Active,
    /// Takes no new work; its connections close at the drain's deadline.
    Draining {
        /// The drain in progress.
        drain: DrainId,
    },
}

/// Why a drain started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainCause {
    /// The backend was removed from its group.
    Removed,
    /// The cluster agreed the backend fails its health checks (R6).
    HealthCheckFailed,
}

/// What becomes of a backend once its drain completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "then", rename_all = "snake_case")]
pub enum AfterDrain {
    /// It leaves the group.
    Remove,
    /// It was re-added during the drain (R5): it becomes active again.
    Reactivate {
        /// Weight it was re-added with.
        weight: u8,
    },
}

/// A drain in progress, replicated so that every node closes at one deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// Its id.
    pub id: DrainId,
    /// Group of the backend.
    pub group: String,
    /// The backend's `host:port`.
    pub backend: String,
    /// Why it drains.
    pub cause: DrainCause,
    /// When it started (stamped by the proposer).
    pub started_at: UnixMillis,
    /// When every node closes what is left (C3). Never moves (R7).
    pub deadline: UnixMillis,
    /// Nodes that have no work left on the backend.
    pub finished: BTreeSet<NodeId>,
    /// What happens when it completes.
    pub after: AfterDrain,
}

/// A listening port that forwards to one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// TCP port, bound on every node's data address.
    pub port: u16,
    /// Group it forwards to.
    pub group: String,
    /// Time a backend has to answer before the client gets 504 (R9).
    pub request_timeout_ms: u64,
    /// Tells this listener from an earlier one on the same port: the
    /// state's revision when it was added.
    #[serde(default)]
    pub generation: u64,
    /// Each node's last bind attempt.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<NodeId, BindStatus>,
    /// Certificates it terminates TLS with, by name (SNI picks among them;
    /// the first is for clients that send no name). Empty: plain TCP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<String>,
}

/// A node's last attempt to bind a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindStatus {
    /// Whether the port is bound there.
    pub bound: bool,
    /// `listening`, or why the bind failed.
    pub detail: String,
}

/// A removed listener whose connections are draining: every node closes
/// what is left on them at `deadline` (C3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerDrain {
    /// Its id (drains of backends and listeners share one sequence).
    pub id: DrainId,
    /// The port it listened on.
    pub port: u16,
    /// The listener's generation.
    pub generation: u64,
    /// The group it forwarded to.
    pub group: String,
    /// Its request timeout (requests under way keep it).
    pub request_timeout_ms: u64,
    /// When it was removed (stamped by the leader).
    pub started_at: UnixMillis,
    /// When every node closes what is left.
    pub deadline: UnixMillis,
}

/// Why a node drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeDrainReason {
    /// `node drain`: until `node undrain`.
    Operator,
    /// The node stops (SIGTERM or Ctrl-C).
    Stopping,
}

/// A node's drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDrain {
    /// Its id (one sequence with backend and listener drains).
    pub drain: DrainId,
    /// Why.
    pub reason: NodeDrainReason,
    /// The stopping process (stopping drains only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
    /// When it started (stamped by the leader).
    pub started: UnixMillis,
    /// When the node closes what it still holds.
    pub deadline: UnixMillis,
    /// Whether the node reported that it holds no client connection.
    pub finished: bool,
}

impl NodeDrain {
    /// Whether the node's process `incarnation` runs this drain: an
    /// operator's drain applies to every process, a stopping one only to
    /// the process that stops.
    pub fn applies_to(&self, incarnation: u64) -> bool {
        match self.reason {
            NodeDrainReason::Operator => true,
            NodeDrainReason::Stopping => self.incarnation == Some(incarnation),
        }
    }
}

/// A certificate and its private key, replicated like groups and listeners
/// so every node serves the same one. The key never leaves the state through
/// a view: [`SecretPem`] prints as its length only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// Its name, as listeners refer to it.
    pub name: String,
    /// The certificate chain as PEM, leaf first.
    pub chain_pem: String,
    /// The leaf's private key as PEM.
    pub key_pem: SecretPem,
    /// What the chain says, read once by the node that took the upload.
    pub info: CertInfo,
    /// The state's revision when this chain was stored: a replacement has a
    /// higher one.
    pub version: u64,
}

/// What an operator wants to know of a certificate, read from its leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// The leaf's subject, as a distinguished name.
    pub subject: String,
    /// Its subject alternative names (DNS names and IP addresses).
    pub sans: Vec<String>,
    /// Its issuer, as a distinguished name.
    pub issuer: String,
    /// Valid from (Unix ms).
    pub not_before: UnixMillis,
    /// Valid until (Unix ms).
    pub not_after: UnixMillis,
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fingerprint_sha256: String,
    /// Certificates in the chain, the leaf included.
    pub chain_len: usize,
}

/// A private key as PEM. Its `Debug` shows only its length, so a logged
/// command or state never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretPem(pub String);

impl std::fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretPem(<{} bytes>)", self.0.len())
    }
}
