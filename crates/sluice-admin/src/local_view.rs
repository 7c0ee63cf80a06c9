//! This node's own live view ([`LocalView`], `GET /v1/local`): each
//! backend as its data plane routes to it, what it holds, its own drain.
//! Members read it from each other to build the overview (`overview.rs`);
//! it is built from this node's state and counters alone, never by asking
//! another node, so one slow member cannot slow another's answer.

use sluice_model::{Backend, BackendStatus, Group, NodeId, State, UnixMillis};
use sluice_proxy::DataPlane;

use crate::api::{LocalBackendView, LocalOwnDrain, LocalProbeView, LocalView, RoutingState};
use crate::cluster_routes::holds_of;
use crate::context::AdminContext;

/// This node's view now.
pub(crate) fn local_view(ctx: &AdminContext, now: UnixMillis) -> LocalView {
    let state = ctx.store.current();
    let state: &State = &state;
    let dp = ctx.store.data_plane();
    let me = ctx.node_id;
    LocalView {
        node: ctx.node_id,
        now_ms: now,
        applied: ctx.store.applied_index(),
        holds: holds_of(ctx),
        own_drain: dp.node_drain().map(|d| LocalOwnDrain {
            drain: d.drain,
            deadline_ms: d.deadline,
            finished: d.finished,
        }),
        backends: state
            .groups
            .values()
            .flat_map(|g| {
                g.backends
                    .values()
                    .map(move |b| local_backend(state, g, b, dp, me, now))
            })
            .collect(),
    }
}

fn local_backend(
    state: &State,
    g: &Group,
    b: &Backend,
    dp: &DataPlane,
    me: NodeId,
    now: UnixMillis,
) -> LocalBackendView {
    let stats = dp.backend_stats(&g.name, &b.addr);
    let drain = match b.status {
        BackendStatus::Draining { drain } => Some(drain),
        BackendStatus::Active => None,
    };
    LocalBackendView {
        group: g.name.clone(),
        addr: b.addr.clone(),
        state: routing_state(g, b, now),
        drain,
        drain_finished: drain
            .and_then(|id| state.drains.get(&id))
            .is_some_and(|d| d.finished.contains(&me)),
        in_flight: stats.in_flight,
        tunnels: stats.tunnels,
        probe: dp.local_health(&g.name, &b.addr).map(|l| LocalProbeView {
            healthy: l.healthy,
            passed: l.last_passed,
            detail: l.detail,
            at_ms: l.at,
        }),
    }
}

/// How routing treats `b` by this state at `now`: a drain first, then
/// maintenance, then the agreed health, then a ramp.
pub(crate) fn routing_state(g: &Group, b: &Backend, now: UnixMillis) -> RoutingState {
    if matches!(b.status, BackendStatus::Draining { .. }) {
        RoutingState::Draining
    } else if b.maintenance {
        RoutingState::Maintenance
    } else if g.health.enabled && !b.health.healthy {
        RoutingState::Unhealthy
    } else if g.ramp_of(b, now).is_some() {
        RoutingState::SlowStart
    } else {
        RoutingState::Active
    }
}
