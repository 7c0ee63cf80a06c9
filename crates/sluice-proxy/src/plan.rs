//! The state applier's decision, apart from its actions: [`plan`] compares
//! the state the data plane runs with a new one and returns the
//! [`Change`]s that take it there, in the order they must run. Pure: no
//! actor, socket or clock. The `StateApplier` (applier.rs) executes them.
//!
//! The work is per group (its backends and their drains) and per port (its
//! listener and the drains of removed ones); [`plan_only`] restricts it to
//! given groups and ports, so a caller that knows what a command touched
//! need not walk the whole state.
//!
//! Order: backends start, stop or get a fresh incarnation; the routes are
//! rebuilt; drains start (after the routes no longer name their backend,
//! R1); removed listeners drain (their sockets close) before a newer
//! listener binds their port; draining listeners whose drain left the state
//! close what is left (C3).

use std::collections::BTreeSet;
use std::sync::Arc;

use sluice_model::{BackendStatus, DrainId, Group, State, UnixMillis};

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
    /// Swap in a routing snapshot built from the new state.
    RebuildRoutes,
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

/// Which groups and ports a plan looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The whole state.
    All,
    /// Only these groups (their backends) and ports (their listeners).
    /// Used by the property tests until the applier plans per command.
    #[cfg_attr(not(test), allow(dead_code))]
    Only {
        groups: &'a [&'a str],
        ports: &'a [u16],
    },
}

impl Scope<'_> {
    fn has_group(&self, name: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only { groups, .. } => groups.contains(&name),
        }
    }

    fn has_port(&self, port: u16) -> bool {
        match self {
            Scope::All => true,
            Scope::Only { ports, .. } => ports.contains(&port),
        }
    }
}

/// The changes that take a data plane running `old` to `new`.
pub(crate) fn plan(old: &State, new: &State) -> Vec<Change> {
    plan_only(old, new, Scope::All)
}

/// [`plan`] restricted to `scope`: what changed in other groups and ports
/// is left out.
pub(crate) fn plan_only(old: &State, new: &State, scope: Scope<'_>) -> Vec<Change> {
    let mut steps = Steps::default();
    let groups: BTreeSet<&String> = old.groups.keys().chain(new.groups.keys()).collect();
    for name in groups.into_iter().filter(|n| scope.has_group(n)) {
        plan_group(old.groups.get(name), new.groups.get(name), new, &mut steps);
    }
    let ports: BTreeSet<u16> = old
        .listeners
        .keys()
        .chain(new.listeners.keys())
        .copied()
        .chain(old.listener_drains.values().map(|d| d.port))
        .chain(new.listener_drains.values().map(|d| d.port))
        .collect();
    for port in ports.into_iter().filter(|p| scope.has_port(*p)) {
        plan_port(port, old, new, &mut steps);
    }
    steps.into_changes()
}

/// The changes, sorted into the order they run in.
#[derive(Default)]
struct Steps {
    backends: Vec<Change>,
    routes: bool,
    drains: Vec<Change>,
    listener_drains: Vec<Change>,
    closes: Vec<Change>,
    binds: Vec<Change>,
}

impl Steps {
    fn into_changes(self) -> Vec<Change> {
        let mut all = self.backends;
        if self.routes {
            all.push(Change::RebuildRoutes);
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

/// One group's backends and their drains.
fn plan_group(old: Option<&Group>, new: Option<&Group>, new_state: &State, steps: &mut Steps) {
    if old == new {
        return;
    }
    // Weights, maintenance, health and slow start all shape the routes.
    steps.routes = true;
    let Some(name) = new.or(old).map(|g| g.name.as_str()) else {
        return;
    };
    let group: Arc<str> = Arc::from(name);
    let addrs: BTreeSet<&String> = old
        .into_iter()
        .chain(new)
        .flat_map(|g| g.backends.keys())
        .collect();
    for addr in addrs {
        let key: BackendKey = (group.clone(), Arc::from(addr.as_str()));
        let had = old
            .and_then(|g| g.backends.get(addr))
            .map(|b| drain_of(&b.status));
        let want = new
            .and_then(|g| g.backends.get(addr))
            .map(|b| drain_of(&b.status));
        let (fresh, want) = match (had, want) {
            (None, None) => continue,
            (Some(_), None) => {
                steps.backends.push(Change::StopBackend { key });
                continue;
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
    steps.routes = true;
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
