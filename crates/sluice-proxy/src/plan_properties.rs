//! Properties of [`crate::plan`] over random command sequences applied with
//! [`State::apply`]: a plan takes the running picture from one state to the
//! next exactly, starts each drain once, does nothing between equal states,
//! and drains a replaced listener before its port is bound again. The plan
//! of two states that share structure (consecutive states do) is the plan
//! of the same states copied apart, and its route rebuild names every group
//! whose routes changed and none that did not change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use sluice_model::{BackendStatus, Command, DrainId, DrainPolicy, Group, State};

use crate::plan::{plan, Change};
use crate::published::BackendKey;

const GROUPS: [&str; 2] = ["a", "b"];
const ADDRS: [&str; 3] = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"];
const PORTS: [u16; 2] = [8001, 8002];

/// What a data plane runs, as a plan's changes see it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Picture {
    /// Running backends and the drain each was told of.
    backends: BTreeMap<BackendKey, Option<DrainId>>,
    /// Listener generation per port.
    listeners: BTreeMap<u16, u64>,
    /// Removed listeners draining under a drain of the state.
    draining: BTreeSet<(u16, u64)>,
}

impl Picture {
    /// What a data plane running `s` runs.
    fn of(s: &State) -> Picture {
        let mut p = Picture::default();
        for g in s.groups.values() {
            for b in g.backends.values() {
                let drain = match b.status {
                    BackendStatus::Active => None,
                    BackendStatus::Draining { drain } => Some(drain),
                };
                p.backends.insert(
                    (Arc::from(g.name.as_str()), Arc::from(b.addr.as_str())),
                    drain,
                );
            }
        }
        p.listeners = s
            .listeners
            .values()
            .map(|l| (l.port, l.generation))
            .collect();
        p.draining = s
            .listener_drains
            .values()
            .map(|d| (d.port, d.generation))
            .collect();
        p
    }

    /// Does one change; panics on one that makes no sense here.
    fn apply(&mut self, c: &Change) {
        match c {
            Change::StartBackend { key } => {
                assert!(self.backends.insert(key.clone(), None).is_none(), "{c:?}");
            }
            Change::StopBackend { key } => {
                assert!(self.backends.remove(key).is_some(), "{c:?}");
            }
            Change::ReplaceBackend { key } => {
                let old = self.backends.insert(key.clone(), None);
                assert!(matches!(old, Some(Some(_))), "{c:?} over {old:?}");
            }
            Change::RebuildRoutes { .. } => {}
            Change::StartDrain { key, drain, .. } => {
                let told = self
                    .backends
                    .get_mut(key)
                    .expect("drain of a running backend");
                assert_eq!(*told, None, "{c:?}");
                *told = Some(*drain);
            }
            Change::DrainListener {
                port,
                generation,
                drain,
                ..
            } => {
                assert_eq!(self.listeners.remove(port), Some(*generation), "{c:?}");
                if drain.is_some() {
                    self.draining.insert((*port, *generation));
                }
            }
            Change::CloseListener { port, generation } => {
                assert!(self.draining.remove(&(*port, *generation)), "{c:?}");
            }
            Change::BindListener { port, generation } => {
                assert!(self.listeners.insert(*port, *generation).is_none(), "{c:?}");
            }
        }
    }
}

fn group() -> impl Strategy<Value = String> {
    prop::sample::select(&GROUPS[..]).prop_map(String::from)
}

fn addr() -> impl Strategy<Value = String> {
    prop::sample::select(&ADDRS[..]).prop_map(String::from)
}

fn port() -> impl Strategy<Value = u16> {
    prop::sample::select(&PORTS[..])
}

/// A command without its time stamp (the sequence stamps them in order).
fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (group(), any::<bool>(), 0u64..3).prop_map(|(name, enabled, s)| Command::CreateGroup {
            name,
            drain: DrainPolicy {
                enabled,
                timeout_ms: s * 1_000,
            },
            slow_start_ms: None,
        }),
        (group(), any::<bool>()).prop_map(|(name, on)| Command::UpdateGroup {
            name,
            drain_enabled: Some(on),
            drain_timeout_ms: None,
            health: Default::default(),
            slow_start_ms: None,
        }),
        (group(), addr(), 0u8..=100).prop_map(|(group, addr, weight)| Command::AddBackend {
            group,
            addr,
            weight,
            at: 0,
        }),
        (group(), addr()).prop_map(|(group, addr)| Command::RemoveBackend { group, addr, at: 0 }),
        (group(), addr(), any::<bool>()).prop_map(|(group, addr, m)| Command::SetBackend {
            group,
            addr,
            weight: None,
            maintenance: Some(m),
            at: 0,
        }),
        (port(), group()).prop_map(|(port, group)| Command::AddListener {
            port,
            group,
            request_timeout_ms: 5_000,
            tls: vec![],
        }),
        (port(), group()).prop_map(|(port, group)| Command::UpdateListener {
            port,
            group: Some(group),
            request_timeout_ms: None,
            tls: None,
        }),
        port().prop_map(|port| Command::RemoveListener { port, at: 0 }),
        (group(), any::<bool>()).prop_map(|(name, force)| Command::DeleteGroup {
            name,
            force,
            at: 0
        }),
        (1u64..8).prop_map(|d| Command::DrainFinished {
            drain: DrainId(d),
            node: 1,
            at: 0,
        }),
    ]
}

/// Each step a command with its time stamp, 500 ms after the last.
fn stamped(c: Command, at: u64) -> Command {
    match c {
        Command::AddBackend {
            group,
            addr,
            weight,
            ..
        } => Command::AddBackend {
            group,
            addr,
            weight,
            at,
        },
        Command::RemoveBackend { group, addr, .. } => Command::RemoveBackend { group, addr, at },
        Command::SetBackend {
            group,
            addr,
            weight,
            maintenance,
            ..
        } => Command::SetBackend {
            group,
            addr,
            weight,
            maintenance,
            at,
        },
        Command::RemoveListener { port, .. } => Command::RemoveListener { port, at },
        Command::DeleteGroup { name, force, .. } => Command::DeleteGroup { name, force, at },
        Command::DrainFinished { drain, node, .. } => Command::DrainFinished { drain, node, at },
        other => other,
    }
}

/// The states a sequence of commands passes through (refused commands
/// leave the state as it was, and are kept as a step).
fn states(commands: Vec<Command>) -> Vec<State> {
    states_from(State::with_nodes([1]), commands)
}

/// [`states`] from `s`.
fn states_from(mut s: State, commands: Vec<Command>) -> Vec<State> {
    let mut all = vec![s.clone()];
    for (i, c) in commands.into_iter().enumerate() {
        let _ = s.apply(&stamped(c, 1_000_000 + 500 * i as u64));
        all.push(s.clone());
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_plan_takes_the_picture_of_one_state_to_the_next(
        commands in prop::collection::vec(command(), 1..40)
    ) {
        let states = states(commands);
        let mut picture = Picture::default();
        let mut last = State::default();
        for s in &states {
            for c in plan(&last, s) {
                picture.apply(&c);
            }
            prop_assert_eq!(&picture, &Picture::of(s));
            last = s.clone();
        }
    }

    #[test]
    fn each_drain_of_a_backend_starts_exactly_once(
        commands in prop::collection::vec(command(), 1..40)
    ) {
        let states = states(commands);
        let mut started: BTreeMap<(BackendKey, DrainId), usize> = BTreeMap::new();
        let mut seen: BTreeSet<(BackendKey, DrainId)> = BTreeSet::new();
        let mut last = State::default();
        for s in &states {
            for c in plan(&last, s) {
                if let Change::StartDrain { key, drain, .. } = c {
                    *started.entry((key, drain)).or_default() += 1;
                }
            }
            for g in s.groups.values() {
                for b in g.backends.values() {
                    if let BackendStatus::Draining { drain } = b.status {
                        seen.insert(((Arc::from(g.name.as_str()), Arc::from(b.addr.as_str())), drain));
                    }
                }
            }
            last = s.clone();
        }
        prop_assert!(started.values().all(|n| *n == 1), "{:?}", started);
        let started: BTreeSet<_> = started.into_keys().collect();
        prop_assert_eq!(started, seen);
    }

    #[test]
    fn equal_states_need_no_change(commands in prop::collection::vec(command(), 0..30)) {
        for s in states(commands) {
            prop_assert_eq!(plan(&s, &s), Vec::new());
            // A later revision of the same content changes nothing either.
            let mut later = s.clone();
            later.revision += 1;
            prop_assert_eq!(plan(&s, &later), Vec::new());
        }
    }

    #[test]
    fn a_replaced_listener_drains_before_its_port_is_bound_again(
        commands in prop::collection::vec(command(), 1..40)
    ) {
        let states = states(commands);
        for pair in states.windows(2) {
            let changes = plan(&pair[0], &pair[1]);
            for (i, c) in changes.iter().enumerate() {
                let Change::BindListener { port, .. } = c else { continue };
                if let Some(old) = pair[0].listeners.get(port) {
                    let drained = changes[..i].iter().any(|d| matches!(d,
                        Change::DrainListener { port: p, generation, .. }
                            if p == port && *generation == old.generation));
                    prop_assert!(drained, "{:?}", changes);
                }
            }
        }
    }

    #[test]
    fn a_plan_over_shared_states_is_the_plan_over_copies(
        commands in prop::collection::vec(command(), 1..30)
    ) {
        // Group `a` holds 500 more backends, so its tree is deep enough
        // for whole nodes to be shared between states.
        let states = states_from(large_group(), commands);
        for pair in states.windows(2) {
            let shared = plan(&pair[0], &pair[1]);
            let apart = plan(&copied(&pair[0]), &copied(&pair[1]));
            prop_assert_eq!(&shared, &apart);
            let rebuilt: BTreeSet<Arc<str>> = shared
                .iter()
                .filter_map(|c| match c {
                    Change::RebuildRoutes { groups, .. } => Some(groups.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            for name in GROUPS {
                let (old, new) = (pair[0].groups.get(name), pair[1].groups.get(name));
                let routes = |s: &State| {
                    s.groups.get(name).map(|g| {
                        let mut r: Vec<(String, u8)> =
                            g.routable().map(|b| (b.addr.clone(), b.weight)).collect();
                        r.sort();
                        (r, g.health.clone(), g.slow_start_ms)
                    })
                };
                if routes(&pair[0]) != routes(&pair[1]) {
                    prop_assert!(rebuilt.contains(name), "group {}: {:?}", name, shared);
                }
                if old == new {
                    prop_assert!(!rebuilt.contains(name), "group {}: {:?}", name, shared);
                }
            }
        }
    }
}

/// A state whose group `a` holds 500 backends besides the ones the
/// commands use.
fn large_group() -> State {
    let mut s = State::with_nodes([1]);
    let create = Command::CreateGroup {
        name: "a".into(),
        drain: DrainPolicy::default(),
        slow_start_ms: None,
    };
    s.apply(&create).unwrap();
    for i in 0..500 {
        let add = Command::AddBackend {
            group: "a".into(),
            addr: format!("10.1.{}.{}:80", i / 200, i % 200),
            weight: 100,
            at: 1,
        };
        s.apply(&add).unwrap();
    }
    s
}

/// `s` rebuilt entry by entry: equal, sharing nothing with `s`.
fn copied(s: &State) -> State {
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let backends = g
                .backends
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect();
            (
                name.clone(),
                Group {
                    backends,
                    ..g.clone()
                },
            )
        })
        .collect();
    let copy = State {
        groups,
        drains: s.drains.iter().map(|(k, v)| (*k, v.clone())).collect(),
        ..s.clone()
    };
    assert!(!copy.groups.ptr_eq(&s.groups) || s.groups.is_empty());
    copy
}
