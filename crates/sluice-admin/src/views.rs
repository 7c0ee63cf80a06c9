//! Building the API's views from the replicated state and this node's live
//! figures.

use sluice_model::{
    AfterDrain, Backend, BackendStatus, Cert, DrainCause, Group, Listener, ListenerDrain, State,
};
use sluice_proxy::DataPlane;

use crate::api::{
    BackendState, BackendView, CertView, DrainView, GroupView, HealthView, ListenerNodeView,
    ListenerView, LocalProbeView, NodeDrainView, NodeHealthView, RampView,
};

pub(crate) fn group_view(state: &State, g: &Group, dp: &DataPlane, now: u64) -> GroupView {
    GroupView {
        name: g.name.clone(),
        drain_enabled: g.drain.enabled,
        drain_timeout_ms: g.drain.timeout_ms,
        health: g.health.clone(),
        health_revision: g.health_revision,
        slow_start_ms: g.slow_start_ms,
        backends: g
            .backends
            .values()
            .map(|b| backend_view(state, g, b, dp, now))
            .collect(),
        deleting: g.deleting,
        pending_nodes: Vec::new(),
    }
}

pub(crate) fn backend_view(
    state: &State,
    g: &Group,
    b: &Backend,
    dp: &DataPlane,
    now: u64,
) -> BackendView {
    let stats = dp.backend_stats(&g.name, &b.addr);
    let drain = match b.status {
        BackendStatus::Active => None,
        BackendStatus::Draining { drain } => state.drains.get(&drain).map(|d| DrainView {
            id: d.id,
            cause: crate::views::drain_cause_name(d.cause).into(),
            started_at_ms: d.started_at,
            deadline_ms: d.deadline,
            remaining_ms: d.deadline.saturating_sub(now),
            then: match d.after {
                AfterDrain::Remove => "remove".into(),
                AfterDrain::Reactivate { .. } => "reactivate".into(),
            },
            nodes: state
                .nodes
                .iter()
                .map(|n| NodeDrainView {
                    node: *n,
                    finished: d.finished.contains(n),
                })
                .collect(),
        }),
    };
    BackendView {
        group: g.name.clone(),
        addr: b.addr.clone(),
        weight: b.weight,
        state: if drain.is_some() {
            BackendState::Draining
        } else if b.maintenance {
            BackendState::Maintenance
        } else {
            BackendState::Active
        },
        in_flight: stats.in_flight,
        tunnels: stats.tunnels,
        drain,
        health: health_view(state, g, b, dp),
        ramp: ramp_view(g, b, now),
        pending_nodes: Vec::new(),
    }
}

/// The ramp as routing sees it by the whole group.
fn ramp_view(g: &Group, b: &Backend, now: u64) -> Option<RampView> {
    let r = b.ramp?;
    let fraction = g.ramp_of(b, now)?;
    Some(ramp_at(r, fraction, now))
}

/// A backend's ramp as the backend's own ramp says, for a write's answer:
/// its excerpt holds the backend alone, not the group that anchors the
/// ramp (the leader gave it one only beside a ramped backend, R10).
pub(crate) fn own_ramp_view(b: &Backend, now: u64) -> Option<RampView> {
    let r = b.ramp.filter(|r| now < r.until)?;
    let full = u32::from(b.weight) * sluice_model::RAMP_SCALE;
    (full > 0).then(|| ramp_at(r, f64::from(r.scale(full, now)) / f64::from(full), now))
}

fn ramp_at(r: sluice_model::Ramp, fraction: f64, now: u64) -> RampView {
    RampView {
        percent: (fraction * 100.0) as u8,
        from_ms: r.from,
        remaining_ms: r.until.saturating_sub(now),
    }
}

fn health_view(state: &State, g: &Group, b: &Backend, dp: &DataPlane) -> HealthView {
    let h = &b.health;
    let status = if !g.health.enabled || b.weight == 0 {
        "unchecked"
    } else if h.healthy {
        "healthy"
    } else {
        "unhealthy"
    };
    HealthView {
        status: status.into(),
        since_ms: h.since,
        proven: h.proven,
        nodes: state
            .nodes
            .iter()
            .map(|n| {
                let r = h.reports.get(n);
                NodeHealthView {
                    node: *n,
                    healthy: r
                        .filter(|r| r.revision == g.health_revision)
                        .map(|r| r.healthy),
                    detail: r.map(|r| r.detail.clone()).unwrap_or_default(),
                    at_ms: r.map(|r| r.at).unwrap_or(0),
                }
            })
            .collect(),
        local: dp.local_health(&g.name, &b.addr).map(|l| LocalProbeView {
            healthy: l.healthy,
            passed: l.last_passed,
            detail: l.detail,
            at_ms: l.at,
        }),
    }
}

/// A listener with each member's bind as reported (`unknown` until then).
pub(crate) fn listener_view(state: &State, l: &Listener, dp: &DataPlane) -> ListenerView {
    let status = dp.listener_status(l.port);
    ListenerView {
        port: l.port,
        group: l.group.clone(),
        request_timeout_ms: l.request_timeout_ms,
        bind: status.as_ref().map(|s| s.bind.clone()).unwrap_or_default(),
        status: status.map(|s| s.status).unwrap_or_else(|| "pending".into()),
        state: "active".into(),
        tls: l.tls.clone(),
        drain_deadline_ms: None,
        nodes: state
            .nodes
            .iter()
            .map(|n| match l.nodes.get(n) {
                Some(b) if b.bound => ListenerNodeView {
                    node: *n,
                    status: "listening".into(),
                    detail: String::new(),
                },
                Some(b) => ListenerNodeView {
                    node: *n,
                    status: "failed".into(),
                    detail: b.detail.clone(),
                },
                None => ListenerNodeView {
                    node: *n,
                    status: "unknown".into(),
                    detail: String::new(),
                },
            })
            .collect(),
        pending_nodes: Vec::new(),
    }
}

/// A removed listener, draining until its deadline.
pub(crate) fn draining_listener_view(d: &ListenerDrain) -> ListenerView {
    ListenerView {
        port: d.port,
        group: d.group.clone(),
        request_timeout_ms: d.request_timeout_ms,
        bind: String::new(),
        status: "closed".into(),
        state: "draining".into(),
        tls: Vec::new(),
        drain_deadline_ms: Some(d.deadline),
        nodes: Vec::new(),
        pending_nodes: Vec::new(),
    }
}

/// A certificate: what its leaf says and the listeners that use it.
pub(crate) fn cert_view(state: &State, c: &Cert) -> CertView {
    CertView {
        name: c.name.clone(),
        subject: c.info.subject.clone(),
        sans: c.info.sans.clone(),
        issuer: c.info.issuer.clone(),
        not_before_ms: c.info.not_before,
        not_after_ms: c.info.not_after,
        fingerprint_sha256: c.info.fingerprint_sha256.clone(),
        chain_len: c.info.chain_len,
        version: c.version,
        listeners: state.listeners_using(&c.name),
        pending_nodes: Vec::new(),
    }
}

/// How the API names why a backend drains.
pub(crate) fn drain_cause_name(cause: DrainCause) -> &'static str {
    match cause {
        DrainCause::Removed => "removed",
        DrainCause::HealthCheckFailed => "health_check_failed",
    }
}
