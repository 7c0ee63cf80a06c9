//! Property tests: random command sequences keep the drain invariants.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_model::{
    BackendStatus, Command, DrainId, DrainPolicy, HealthCheckUpdate, NodeDrainReason, State,
    UnixMillis, RAMP_SCALE,
};

const GROUPS: [&str; 2] = ["web", "api"];
const ADDRS: [&str; 3] = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"];
const NODES: [u64; 3] = [1, 2, 3];
/// Slow-start windows, some outside 30..=900 s (refused), 0 (off in updates).
const WINDOWS: [u64; 5] = [0, 10_000, 30_000, 60_000, 901_000];

fn command() -> impl Strategy<Value = Command> {
    let group = prop::sample::select(&GROUPS[..]).prop_map(String::from);
    let addr = prop::sample::select(&ADDRS[..]).prop_map(String::from);
    prop_oneof![
        (
            group.clone(),
            any::<bool>(),
            0u64..5_000,
            proptest::option::of(prop::sample::select(&WINDOWS[..]))
        )
            .prop_map(|(name, enabled, timeout_ms, slow_start_ms)| {
                Command::CreateGroup {
                    name,
                    drain: DrainPolicy {
                        enabled,
                        timeout_ms,
                    },
                    slow_start_ms,
                }
            }),
        (
            group.clone(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(0u64..5_000),
            proptest::option::of(prop::sample::select(&["/health", "/other"][..])),
            proptest::option::of(any::<bool>()),
            proptest::option::of(prop::sample::select(&WINDOWS[..])),
        )
            .prop_map(
                |(name, drain_enabled, drain_timeout_ms, path, enabled, slow_start_ms)| {
                    Command::UpdateGroup {
                        name,
                        drain_enabled,
                        drain_timeout_ms,
                        health: HealthCheckUpdate {
                            path: path.map(String::from),
                            enabled,
                            ..Default::default()
                        },
                        slow_start_ms,
                    }
                }
            ),
        (
            group.clone(),
            addr.clone(),
            prop::sample::select(&NODES[..]),
            0u64..4,
            any::<bool>(),
            any::<bool>(),
            0u64..100_000
        )
            .prop_map(|(group, backend, node, revision, healthy, passed, at)| {
                Command::HealthReport {
                    group,
                    backend,
                    node,
                    revision,
                    healthy,
                    passed,
                    detail: String::new(),
                    at,
                }
            }),
        (group.clone(), addr.clone(), 0u8..=100, 0u64..100_000).prop_map(
            |(group, addr, weight, at)| Command::AddBackend {
                group,
                addr,
                weight,
                at,
            }
        ),
        (group.clone(), addr.clone(), 0u64..100_000)
            .prop_map(|(group, addr, at)| Command::RemoveBackend { group, addr, at }),
        (1u64..8, prop::sample::select(&NODES[..]), 0u64..100_000).prop_map(|(d, node, at)| {
            Command::DrainFinished {
                drain: DrainId(d),
                node,
                at,
            }
        }),
        (
            group.clone(),
            addr.clone(),
            proptest::option::of(0u8..=100),
            proptest::option::of(any::<bool>()),
            0u64..100_000
        )
            .prop_map(
                |(group, addr, weight, maintenance, at)| Command::SetBackend {
                    group,
                    addr,
                    weight,
                    maintenance,
                    at,
                }
            ),
        (group.clone(), any::<bool>(), 0u64..100_000)
            .prop_map(|(name, force, at)| { Command::DeleteGroup { name, force, at } }),
        (prop::sample::select(&PORTS[..]), group.clone()).prop_map(|(port, group)| {
            Command::AddListener {
                port,
                group,
                request_timeout_ms: 1_000,
                tls: vec![],
            }
        }),
        (
            prop::sample::select(&PORTS[..]),
            proptest::option::of(group)
        )
            .prop_map(|(port, group)| Command::UpdateListener {
                port,
                group,
                request_timeout_ms: None,
                tls: None,
            }),
        (prop::sample::select(&PORTS[..]), 0u64..100_000)
            .prop_map(|(port, at)| Command::RemoveListener { port, at }),
        (
            1u64..=4,
            0u64..5_000,
            proptest::option::of(0u64..3),
            0u64..100_000
        )
            .prop_map(|(node, timeout_ms, stopping, at)| Command::DrainNode {
                node,
                timeout_ms,
                reason: match stopping {
                    Some(_) => NodeDrainReason::Stopping,
                    None => NodeDrainReason::Operator,
                },
                incarnation: stopping,
                at,
            }),
        (1u64..=4).prop_map(|node| Command::UndrainNode { node }),
        (1u64..=4, 0u64..3)
            .prop_map(|(node, incarnation)| Command::NodeRestarted { node, incarnation }),
        (1u64..=4, 1u64..20).prop_map(|(node, d)| Command::NodeDrainFinished {
            node,
            drain: DrainId(d)
        }),
    ]
}

/// Listener ports the sequences use.
const PORTS: [u16; 2] = [8080, 8081];

fn check_invariants(s: &State) {
    for g in s.groups.values() {
        for b in g.backends.values() {
            if let BackendStatus::Draining { drain } = b.status {
                let d = s
                    .drains
                    .get(&drain)
                    .expect("a draining backend has a drain");
                assert_eq!((&d.group, &d.backend), (&g.name, &b.addr));
                // R1: a draining backend never takes new work.
                assert!(g.routable().all(|r| r.addr != b.addr));
            }
        }
    }
    let mut ids: Vec<DrainId> = s.drains.keys().copied().collect();
    for (node, d) in &s.node_drains {
        // Only members drain; a node drain's id is one of its own.
        assert!(s.nodes.contains(node), "node {node} is not a member");
        // A later stop may bring the deadline earlier (even before the
        // start, stamped by a leader whose clock is behind), never later.
        assert!(d.deadline <= d.started + 3_600_000);
        assert!(d.drain.0 < s.next_drain);
        assert_eq!(
            d.incarnation.is_some(),
            d.reason == NodeDrainReason::Stopping
        );
        ids.push(d.drain);
    }
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "drain ids are unique");
    for d in s.drains.values() {
        let b = &s.groups[&d.group].backends[&d.backend];
        assert_eq!(b.status, BackendStatus::Draining { drain: d.id });
        assert!(d.deadline >= d.started_at);
    }
    for l in s.listeners.values() {
        // A listener always forwards to a group that takes work.
        let g = s.groups.get(&l.group).expect("a listener's group exists");
        assert!(!g.deleting, "a listener forwards to a group being deleted");
    }
    for g in s.groups.values() {
        // A group being deleted still has backends draining out.
        if g.deleting {
            assert!(!g.backends.is_empty());
            assert!(g
                .backends
                .values()
                .all(|b| matches!(b.status, BackendStatus::Draining { .. })));
        }
        // Maintenance never routes.
        assert!(g.routable().all(|b| !b.maintenance));
    }
    for g in s.groups.values() {
        let candidates = g
            .backends
            .values()
            .filter(|b| b.status == BackendStatus::Active && b.weight > 0 && !b.maintenance)
            .count();
        let routable: Vec<_> = g.routable().collect();
        // Fail open: health never leaves a group with takers but no route.
        assert_eq!(routable.is_empty(), candidates == 0);
        // An unhealthy backend takes new work only when no healthy one can.
        if g.health.enabled && routable.iter().any(|b| b.health.healthy) {
            assert!(routable.iter().all(|b| b.health.healthy));
        }
        if let Some(ms) = g.slow_start_ms {
            assert!((30_000..=900_000).contains(&ms));
        }
        for b in g.backends.values() {
            if let Some(r) = b.ramp {
                assert!(r.until > r.from && b.weight > 0);
            }
        }
    }
}

/// R10 at one state, for times `now` and `later`: the weighted backends are
/// the routable ones, each between 1 and its full weight; off means full;
/// a backend below full has a ramped backend beside it; and once some
/// backend is ramped, no effective weight goes down as time passes.
fn check_slow_start(s: &State, now: UnixMillis, later: UnixMillis) {
    for g in s.groups.values() {
        let routable: Vec<&str> = g.routable().map(|b| b.addr.as_str()).collect();
        let at_now = g.weighted_with(now, |_| false);
        let at_later = g.weighted_with(later, |_| false);
        let addrs: Vec<&str> = at_now.iter().map(|(b, _)| b.addr.as_str()).collect();
        assert_eq!(addrs, routable);
        let anchored = at_now
            .iter()
            .any(|(b, w)| *w == u32::from(b.weight) * RAMP_SCALE && b.ramped_at(now));
        for ((b, w), (_, w_later)) in at_now.iter().zip(&at_later) {
            let full = u32::from(b.weight) * RAMP_SCALE;
            assert!((1..=full).contains(w), "{w} of {full}");
            if g.slow_start_ms.is_none() || b.ramped_at(now) {
                assert_eq!(*w, full);
            }
            if *w < full {
                assert!(anchored);
                let r = b.ramp.expect("below full only while ramping");
                assert!(now < r.until);
            }
            if anchored {
                assert!(w_later >= w, "{w} then {w_later}");
            }
            if b.ramp.is_some_and(|r| later >= r.until) {
                assert_eq!(*w_later, full);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_commands_keep_drain_invariants(cmds in prop::collection::vec(command(), 1..80)) {
        let mut s = State::with_nodes(NODES);
        let mut deadlines: BTreeMap<DrainId, UnixMillis> = BTreeMap::new();
        for c in &cmds {
            let before = s.clone();
            if s.apply(c).is_err() {
                // A refused command changes nothing.
                prop_assert_eq!(&before, &s);
            }
            check_invariants(&s);
            for d in s.drains.values() {
                // R7: once fixed, a deadline never moves.
                let first = *deadlines.entry(d.id).or_insert(d.deadline);
                prop_assert_eq!(first, d.deadline);
            }
            for d in s.node_drains.values() {
                // A node drain's deadline only ever comes earlier (a stop
                // during an operator's drain).
                let first = *deadlines.entry(d.drain).or_insert(d.deadline);
                prop_assert!(d.deadline <= first);
            }
        }
    }

    #[test]
    fn health_flips_need_a_majority_and_stale_reports_do_nothing(
        cmds in prop::collection::vec(command(), 1..80)
    ) {
        let mut s = State::with_nodes(NODES);
        for c in &cmds {
            let before = s.clone();
            let r = s.apply(c);
            if let (Command::HealthReport { group, backend, revision, healthy, .. }, Ok(_)) = (c, &r) {
                let g0 = &before.groups[group];
                let (b0, b1) = (&g0.backends[backend], &s.groups[group].backends[backend]);
                if *revision != g0.health_revision || !g0.health.enabled {
                    prop_assert_eq!(&b0.health, &b1.health);
                    prop_assert_eq!(b0.status, b1.status);
                }
                if b0.health.healthy != b1.health.healthy {
                    // The report that flips it agrees with the new view, and
                    // at least two of three members do under this revision.
                    prop_assert_eq!(*healthy, b1.health.healthy);
                    let agree = b1.health.reports.values()
                        .filter(|r| r.revision == *revision && r.healthy == *healthy)
                        .count();
                    prop_assert!(agree >= 2);
                }
                if let BackendStatus::Draining { drain } = b1.status {
                    if b0.status == BackendStatus::Active {
                        // R6 drains only on a flip to unhealthy of a backend
                        // that passed under this revision (R8).
                        prop_assert!(b0.health.healthy && !b1.health.healthy);
                        prop_assert!(b1.health.proven);
                        prop_assert!(g0.drain.enabled);
                        prop_assert_eq!(s.drains[&drain].deadline, s.drains[&drain].started_at + g0.drain.timeout_ms);
                    }
                }
            }
        }
    }

    #[test]
    fn slow_start_weights_ramp_up_and_never_starve(
        cmds in prop::collection::vec(command(), 1..80),
        now in 0u64..200_000,
        wait in 0u64..100_000,
    ) {
        let mut s = State::with_nodes(NODES);
        for c in &cmds {
            let before = s.clone();
            let applied = s.apply(c);
            check_slow_start(&s, now, now + wait);
            if let (Command::AddBackend { group, addr, at, .. }, Ok(_)) = (c, &applied) {
                let g0 = &before.groups[group];
                let g1 = &s.groups[group];
                let b1 = &g1.backends[addr];
                let new = !g0.backends.contains_key(addr);
                if new {
                    // A new backend ramps exactly when the group slow-starts
                    // and another healthy, active, ramped backend is there.
                    let anchor = g0.backends.values().any(|o| {
                        o.status == BackendStatus::Active
                            && o.weight > 0
                            && !o.maintenance
                            && (!g0.health.enabled || o.health.healthy)
                            && o.ramped_at(*at)
                    });
                    let window = g1.slow_start_ms.filter(|_| b1.weight > 0 && anchor);
                    prop_assert_eq!(b1.ramp.map(|r| (r.from, r.until - r.from)), window.map(|w| (*at, w)));
                }
            }
        }
    }

    #[test]
    fn apply_is_deterministic(cmds in prop::collection::vec(command(), 1..60)) {
        let mut a = State::with_nodes(NODES);
        let mut b = State::with_nodes(NODES);
        for c in &cmds {
            let ra = a.apply(c);
            let rb = b.apply(c);
            prop_assert_eq!(ra, rb);
        }
        prop_assert_eq!(&a, &b);
        let json = serde_json::to_string(&a).unwrap();
        let back: State = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&a, &back);
    }
}
