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

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_model::{Command, DrainPolicy};

    const T0: UnixMillis = 1_000_000;

    fn apply(s: &mut State, c: Command) {
        s.apply(&c).unwrap();
    }

    fn add(s: &mut State, addr: &str, at: UnixMillis) {
        apply(
            s,
            Command::AddBackend {
                group: "web".into(),
                addr: addr.into(),
                weight: 100,
                at,
            },
        );
    }

    fn state_of(s: &State, addr: &str, now: UnixMillis) -> RoutingState {
        let g = &s.groups["web"];
        routing_state(g, &g.backends[addr], now)
    }

    #[test]
    fn each_state_as_routing_sees_it() {
        let mut s = State::with_nodes([1, 2]);
        apply(
            &mut s,
            Command::CreateGroup {
                name: "web".into(),
                drain: DrainPolicy::default(),
                slow_start_ms: Some(60_000),
            },
        );
        for a in ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"] {
            add(&mut s, a, T0);
        }
        // Added later, beside backends at full weight: it ramps.
        add(&mut s, "10.0.0.4:80", T0 + 120_000);
        apply(
            &mut s,
            Command::SetBackend {
                group: "web".into(),
                addr: "10.0.0.2:80".into(),
                weight: None,
                maintenance: Some(true),
                at: T0 + 125_000,
            },
        );
        apply(
            &mut s,
            Command::RemoveBackend {
                group: "web".into(),
                addr: "10.0.0.3:80".into(),
                at: T0 + 130_000,
            },
        );
        let now = T0 + 150_000;
        assert_eq!(state_of(&s, "10.0.0.1:80", now), RoutingState::Active);
        assert_eq!(state_of(&s, "10.0.0.2:80", now), RoutingState::Maintenance);
        assert_eq!(state_of(&s, "10.0.0.3:80", now), RoutingState::Draining);
        assert_eq!(state_of(&s, "10.0.0.4:80", now), RoutingState::SlowStart);
        // Its ramp over, it is active.
        assert_eq!(
            state_of(&s, "10.0.0.4:80", T0 + 200_000),
            RoutingState::Active
        );
        // Agreed unhealthy (health checks are on by default).
        if let Some(b) = s
            .groups
            .get_mut("web")
            .and_then(|g| g.backends.get_mut("10.0.0.1:80"))
        {
            b.health.healthy = false;
        }
        assert_eq!(state_of(&s, "10.0.0.1:80", now), RoutingState::Unhealthy);
    }
}
