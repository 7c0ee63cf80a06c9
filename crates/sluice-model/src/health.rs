//! Health checks: a group's probe configuration, each backend's replicated
//! health and the per-node reports it is agreed from (C6).
//!
//! Every node probes every backend and reports its own view
//! ([`crate::Command::HealthReport`]) when it first probes under a
//! configuration revision, when its view flips, and when it first passes a
//! check under the revision. The replicated health flips when a majority of
//! the member nodes report the other view under the current revision; a
//! flip to unhealthy of a backend that has passed a check under this revision
//! starts an R6 drain when the group drains (R8 otherwise).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, UnixMillis};

/// Default probe path (the demo backend answers it).
pub const DEFAULT_HEALTH_PATH: &str = "/health";
/// Default time between probes (2 s).
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 2_000;
/// Default time a probe may take (5 s).
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 5_000;
/// Default consecutive passes to become healthy, and fails to become
/// unhealthy.
pub const DEFAULT_HEALTH_THRESHOLD: u8 = 3;

/// How a probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProbeMethod {
    /// `GET path`.
    #[default]
    Get,
    /// `HEAD path`.
    Head,
}

/// A group's active health check (on by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Off: every backend counts as healthy and none is probed.
    pub enabled: bool,
    /// `GET` or `HEAD`.
    pub method: ProbeMethod,
    /// Path and query probed, starting with `/`.
    pub path: String,
    /// Status classes that pass (2 for 2xx, ...), default 2xx and 3xx.
    pub status_classes: BTreeSet<u8>,
    /// Time between probe starts.
    pub interval_ms: u64,
    /// Time a probe may take; longer is a failure.
    pub timeout_ms: u64,
    /// Consecutive passes that make an unhealthy backend healthy.
    pub healthy_threshold: u8,
    /// Consecutive failures that make a healthy backend unhealthy.
    pub unhealthy_threshold: u8,
    /// Port probed instead of the backend's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `Host` header sent instead of the backend's `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            enabled: true,
            method: ProbeMethod::Get,
            path: DEFAULT_HEALTH_PATH.into(),
            status_classes: [2, 3].into_iter().collect(),
            interval_ms: DEFAULT_HEALTH_INTERVAL_MS,
            timeout_ms: DEFAULT_HEALTH_TIMEOUT_MS,
            healthy_threshold: DEFAULT_HEALTH_THRESHOLD,
            unhealthy_threshold: DEFAULT_HEALTH_THRESHOLD,
            port: None,
            host: None,
        }
    }
}

impl HealthCheck {
    /// Whether a probe answer with `status` passes.
    pub fn passes(&self, status: u16) -> bool {
        u8::try_from(status / 100).is_ok_and(|c| self.status_classes.contains(&c))
    }
}

/// A change to a group's health check; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckUpdate {
    /// On/off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `GET` or `HEAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ProbeMethod>,
    /// Path probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Passing status classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_classes: Option<BTreeSet<u8>>,
    /// Interval in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// Timeout in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Healthy threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u8>,
    /// Unhealthy threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u8>,
    /// Probe port: `Some(0)` means the backend's own port again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Host header: `Some("")` means the backend's `host:port` again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl HealthCheckUpdate {
    /// Whether it changes nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == HealthCheckUpdate::default()
    }

    /// `check` with this update applied (not validated).
    pub fn applied_to(&self, check: &HealthCheck) -> HealthCheck {
        let mut c = check.clone();
        if let Some(v) = self.enabled {
            c.enabled = v;
        }
        if let Some(v) = self.method {
            c.method = v;
        }
        if let Some(v) = &self.path {
            c.path = v.clone();
        }
        if let Some(v) = &self.status_classes {
            c.status_classes = v.clone();
        }
        if let Some(v) = self.interval_ms {
            c.interval_ms = v;
        }
        if let Some(v) = self.timeout_ms {
            c.timeout_ms = v;
        }
        if let Some(v) = self.healthy_threshold {
            c.healthy_threshold = v;
        }
        if let Some(v) = self.unhealthy_threshold {
            c.unhealthy_threshold = v;
        }
        if let Some(v) = self.port {
            c.port = (v != 0).then_some(v);
        }
        if let Some(v) = &self.host {
            c.host = (!v.is_empty()).then(|| v.clone());
        }
        c
    }
}

/// One node's last reported view of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// Health-check revision the view was formed under.
    pub revision: u64,
    /// The node's view (after its thresholds).
    pub healthy: bool,
    /// Whether the node has passed at least one check under `revision`.
    pub passed: bool,
    /// The last probe's outcome as the node saw it (`200`, `timeout`, ...).
    pub detail: String,
    /// When the report was logged (leader's clock).
    pub at: UnixMillis,
}

/// A backend's replicated health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendHealth {
    /// What the cluster agreed: a new backend starts healthy.
    pub healthy: bool,
    /// When `healthy` last flipped (0: never).
    pub since: UnixMillis,
    /// Whether some node passed a check under the group's current
    /// revision: a failure before that is the configuration's (R8).
    pub proven: bool,
    /// Each node's last report.
    pub reports: BTreeMap<NodeId, NodeHealth>,
}

impl Default for BackendHealth {
    fn default() -> Self {
        BackendHealth {
            healthy: true,
            since: 0,
            proven: false,
            reports: BTreeMap::new(),
        }
    }
}

impl BackendHealth {
    /// Records `node`'s report made under `revision` (the group's current
    /// one) and returns the new agreed health if a majority of `members`
    /// (the reporters themselves when there are none) now disagrees with
    /// the old one.
    pub(crate) fn record(
        &mut self,
        members: &BTreeSet<NodeId>,
        node: NodeId,
        report: NodeHealth,
    ) -> Option<bool> {
        let revision = report.revision;
        self.proven |= report.passed;
        self.reports.insert(node, report);
        let current = |n: &NodeId| self.reports.get(n).filter(|r| r.revision == revision);
        let voters: Vec<NodeId> = if members.is_empty() {
            self.reports.keys().copied().collect()
        } else {
            members.iter().copied().collect()
        };
        let majority = voters.len() / 2 + 1;
        let other = voters
            .iter()
            .filter_map(current)
            .filter(|r| r.healthy != self.healthy)
            .count();
        if other >= majority {
            self.healthy = !self.healthy;
            Some(self.healthy)
        } else {
            None
        }
    }
}
