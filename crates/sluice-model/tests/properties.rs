//! Property tests: random command sequences keep the drain invariants.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_model::{BackendStatus, Command, DrainId, DrainPolicy, State, UnixMillis};

const GROUPS: [&str; 2] = ["web", "api"];
const ADDRS: [&str; 3] = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"];
const NODES: [u64; 3] = [1, 2, 3];

fn command() -> impl Strategy<Value = Command> {
    let group = prop::sample::select(&GROUPS[..]).prop_map(String::from);
    let addr = prop::sample::select(&ADDRS[..]).prop_map(String::from);
    prop_oneof![
        (group.clone(), any::<bool>(), 0u64..5_000).prop_map(|(name, enabled, timeout_ms)| {
            Command::CreateGroup {
                name,
                drain: DrainPolicy {
                    enabled,
                    timeout_ms,
                },
            }
        }),
        (
            group.clone(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(0u64..5_000)
        )
            .prop_map(
                |(name, drain_enabled, drain_timeout_ms)| Command::UpdateGroup {
                    name,
                    drain_enabled,
                    drain_timeout_ms,
                }
            ),
        (group.clone(), addr.clone(), 0u8..=100).prop_map(|(group, addr, weight)| {
            Command::AddBackend {
                group,
                addr,
                weight,
            }
        }),
        (group.clone(), addr.clone(), 0u64..100_000)
            .prop_map(|(group, addr, at)| Command::RemoveBackend { group, addr, at }),
        (1u64..8, prop::sample::select(&NODES[..])).prop_map(|(d, node)| Command::DrainFinished {
            drain: DrainId(d),
            node,
        }),
    ]
}

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
    for d in s.drains.values() {
        let b = &s.groups[&d.group].backends[&d.backend];
        assert_eq!(b.status, BackendStatus::Draining { drain: d.id });
        assert!(d.deadline >= d.started_at);
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
