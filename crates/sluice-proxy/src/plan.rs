//! The state applier's decision, apart from its actions: [`plan`] compares
//! the state the data plane runs with a new one and returns the
//! [`Change`]s that take it there, in the order they must run. Pure: no
//! actor, socket or clock. The `StateApplier` (applier.rs) executes them.
//!
//! Cost: what changed, not the state's size. Consecutive states share every
//! group and backend the commands between them did not touch (the model's
//! maps are persistent), and [`imbl::OrdMap::diff`] skips what is shared:
//! adding a backend to a group of 100,000 walks one path of its tree. The
//! routes are rebuilt only for the groups and ports that changed
//! ([`Change::RebuildRoutes`]).
//!
//! Order: backends start, stop or get a fresh incarnation; the routes are
//! rebuilt; drains start (after the routes no longer name their backend,
//! R1); removed listeners drain (their sockets close) before a newer
//! listener binds their port; draining listeners whose drain left the state
//! close what is left (C3).

use std::collections::BTreeSet;
use std::sync::Arc;

use imbl::ordmap::DiffItem;
use sluice_model::{Backend, BackendStatus, DrainId, Group, State, UnixMillis};

use crate::published::BackendKey;

/// One step from the running state to a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A backend joined: start its runtime and actor.
    StartBackend { key: BackendKey },
    /// A backend left the state: stop it (its drain, if any, is over).
    StopBackend { key: BackendKey },
    /// A backend that drained is active again, or drains anew: its old
    /// incarnation stops and a fresh one starts.
    ReplaceBackend { key: BackendKey },
    /// Swap in a routing snapshot whose routes over these groups, and of
    /// these ports' listeners, are built from the new state (the others
    /// are kept).
    RebuildRoutes {
        groups: BTreeSet<Arc<str>>,
        ports: BTreeSet<u16>,
    },
    /// Tell a backend its drain began.
    StartDrain {
        key: BackendKey,
        drain: DrainId,
        deadline: UnixMillis,
    },
    /// A running listener left the state (or a newer one replaces it on its
    /// port): close its socket and drain its connections until `deadline`
    /// (none: close what is left at once).
    DrainListener {
        port: u16,
        generation: u64,
        drain: Option<DrainId>,
        deadline: UnixMillis,
    },
    /// A removed listener's drain left the state: its deadline came.
    CloseListener { port: u16, generation: u64 },
    /// A listener of the new state to bind.
    BindListener { port: u16, generation: u64 },
}

/// The changes that take a data plane running `old` to `new`.
pub(crate) fn plan(old: &State, new: &State) -> Vec<Change> {
    let mut steps = Steps::default();
    for item in old.groups.diff(&new.groups) {
        let (was, is) = match item {
            DiffItem::Add(_, g) => (None, Some(g)),
            DiffItem::Update {
                old: (_, o),
                new: (_, n),
            } => (Some(o), Some(n)),
            DiffItem::Remove(_, g) => (Some(g), None),
        };
        plan_group(was, is, new, &mut steps);
    }
    let ports: BTreeSet<u16> = old
        .listeners
        .keys()
        .chain(new.listeners.keys())
        .copied()
        .chain(old.listener_drains.values().map(|d| d.port))
        .chain(new.listener_drains.values().map(|d| d.port))
        .collect();
    for port in ports {
        plan_port(port, old, new, &mut steps);
    }
    steps.into_changes()
}

/// The changes, sorted into the order they run in.
#[derive(Default)]
struct Steps {
    backends: Vec<Change>,
    /// Groups and ports whose routes change.
    route_groups: BTreeSet<Arc<str>>,
    route_ports: BTreeSet<u16>,
    drains: Vec<Change>,
    listener_drains: Vec<Change>,
    closes: Vec<Change>,
    binds: Vec<Change>,
}

impl Steps {
    fn into_changes(self) -> Vec<Change> {
        let mut all = self.backends;
        if !self.route_groups.is_empty() || !self.route_ports.is_empty() {
            all.push(Change::RebuildRoutes {
                groups: self.route_groups,
                ports: self.route_ports,
            });
        }
        all.extend(self.drains);
        all.extend(self.listener_drains);
        all.extend(self.closes);
        all.extend(self.binds);
        all
    }
}

/// A backend's place in a state: absent, active (`Some(None)`), or
/// draining.
fn drain_of(status: &BackendStatus) -> Option<DrainId> {
    match status {
        BackendStatus::Active => None,
        BackendStatus::Draining { drain } => Some(*drain),
    }
}

/// One group's backends and their drains; `old` and `new` differ.
fn plan_group(old: Option<&Group>, new: Option<&Group>, new_state: &State, steps: &mut Steps) {
    let Some(name) = new.or(old).map(|g| g.name.as_str()) else {
        return;
    };
    let group: Arc<str> = Arc::from(name);
    // Weights, maintenance, health and slow start all shape the routes
    // (and what is probed); a backend that takes no work in either state
    // shapes nothing.
    if !same_settings(old, new) {
        steps.route_groups.insert(group.clone());
    }
    let none = imbl::OrdMap::new();
    let had_backends = old.map_or(&none, |g| &g.backends);
    let has_backends = new.map_or(&none, |g| &g.backends);
    for item in had_backends.diff(has_backends) {
        let (addr, had, want) = match item {
            DiffItem::Add(addr, b) => (addr, None, Some(b)),
            DiffItem::Update {
                old: (addr, o),
                new: (_, n),
            } => (addr, Some(o), Some(n)),
            DiffItem::Remove(addr, b) => (addr, Some(b), None),
        };
        if had.is_some_and(takes_work) || want.is_some_and(takes_work) {
            steps.route_groups.insert(group.clone());
        }
        plan_backend(&group, addr, had, want, new_state, steps);
    }
}

/// Whether two versions of a group agree on everything but their
/// backends.
fn same_settings(old: Option<&Group>, new: Option<&Group>) -> bool {
    match (old, new) {
        (Some(o), Some(n)) => {
            o.name == n.name
                && o.drain == n.drain
                && o.health == n.health
                && o.health_revision == n.health_revision
                && o.slow_start_ms == n.slow_start_ms
                && o.deleting == n.deleting
        }
        _ => false,
    }
}

/// Whether a backend may take new work (is routed to, probed, ramped):
/// active, of weight > 0, not in maintenance.
fn takes_work(b: &Backend) -> bool {
    b.status == BackendStatus::Active && b.weight > 0 && !b.maintenance
}

/// One backend that was added, changed or removed.
fn plan_backend(
    group: &Arc<str>,
    addr: &str,
    had: Option<&Backend>,
    want: Option<&Backend>,
    new_state: &State,
    steps: &mut Steps,
) {
    let key: BackendKey = (group.clone(), Arc::from(addr));
    let had = had.map(|b| drain_of(&b.status));
    let want = want.map(|b| drain_of(&b.status));
    let (fresh, want) = match (had, want) {
        (None, None) => return,
        (Some(_), None) => {
            steps.backends.push(Change::StopBackend { key });
            return;
        }
        (None, Some(want)) => {
            steps
                .backends
                .push(Change::StartBackend { key: key.clone() });
            (true, want)
        }
        (Some(had), Some(want)) => {
            // A backend active again after a drain, or in a new drain,
            // gets a fresh incarnation.
            let stale = had.is_some() && had != want;
            if stale {
                steps
                    .backends
                    .push(Change::ReplaceBackend { key: key.clone() });
            }
            (stale || had.is_none(), want)
        }
    };
    if let (true, Some(drain)) = (fresh, want) {
        let deadline = new_state.drains.get(&drain).map_or(0, |d| d.deadline);
        steps.drains.push(Change::StartDrain {
            key,
            drain,
            deadline,
        });
    }
}

/// One port: its listener, and the drains of listeners removed from it.
fn plan_port(port: u16, old: &State, new: &State, steps: &mut Steps) {
    let old_listener = old.listeners.get(&port);
    let new_listener = new.listeners.get(&port);
    let drains_on = |s: &State| -> BTreeSet<(u64, DrainId)> {
        s.listener_drains
            .values()
            .filter(|d| d.port == port)
            .map(|d| (d.generation, d.id))
            .collect()
    };
    let (old_drains, new_drains) = (drains_on(old), drains_on(new));
    if old_listener == new_listener && old_drains == new_drains {
        return;
    }
    // A listener's group and request timeout, and a removed one's own
    // route while it drains, are in the routes.
    steps.route_ports.insert(port);
    let old_generation = old_listener.map(|l| l.generation);
    let new_generation = new_listener.map(|l| l.generation);
    if let Some(generation) = old_generation.filter(|g| new_generation != Some(*g)) {
        // No drain in the state: it left without one, or its drain already
        // expired (C3): it closes at once.
        let (drain, deadline) = new
            .listener_drains
            .values()
            .find(|d| d.port == port && d.generation == generation)
            .map_or((None, 0), |d| (Some(d.id), d.deadline));
        steps.listener_drains.push(Change::DrainListener {
            port,
            generation,
            drain,
            deadline,
        });
    }
    for (generation, _) in &old_drains {
        let still = new_drains.iter().any(|(g, _)| g == generation);
        if !still {
            steps.closes.push(Change::CloseListener {
                port,
                generation: *generation,
            });
        }
    }
    if let Some(generation) = new_generation.filter(|g| old_generation != Some(*g)) {
        steps.binds.push(Change::BindListener { port, generation });
    }
}
