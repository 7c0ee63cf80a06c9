//! The `StateApplier` actor: takes each applied [`State`], diffs it against
//! what the data plane runs, swaps the routing snapshot, starts listeners and
//! backends, and tells backends whose drain began. It answers the caller only
//! once the new routes are in place, so an admin write that returned is
//! already routed by (R1: "right after the removal returns"). While a
//! slow-start ramp runs (R10) it rebuilds the routes every [`RAMP_TICK`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use sluice_model::{BackendStatus, DrainId, State};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::backend::{Backend, BackendArgs, BackendMessage, BackendRuntime};
use crate::data_plane::{DrainReporter, ListenerStatus, Shared};
use crate::health::{self, LocalHealth, ProbeSpec};
use crate::listener::{bind, Listener, ListenerArgs};
use crate::metrics::Metrics;
use crate::routing::{Route, RoutingTable, RAMP_TICK};
use crate::ProxySettings;

pub(crate) struct StateApplier;

pub(crate) struct ApplierArgs {
    pub settings: Arc<ProxySettings>,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub reporter: Arc<dyn DrainReporter>,
    pub shared: Arc<Shared>,
    pub listeners_sup: ActorCell,
    pub backends_sup: ActorCell,
}

type BackendKey = (Arc<str>, Arc<str>);

struct RunningBackend {
    runtime: Arc<BackendRuntime>,
    actor: ActorRef<BackendMessage>,
    drain: Option<DrainId>,
}

pub(crate) struct ApplierState {
    args: ApplierArgs,
    /// Revision of the state the data plane runs; an older one is ignored,
    /// so routing never goes back in time.
    revision: Option<u64>,
    listeners: HashMap<u16, ActorRef<()>>,
    backends: HashMap<BackendKey, RunningBackend>,
    /// The state the data plane runs (routes are rebuilt from it when this
    /// node's own view of a backend flips).
    last: Option<Arc<State>>,
    /// Probe tasks by backend, with what they probe.
    probers: HashMap<BackendKey, (ProbeSpec, JoinHandle<()>)>,
    /// This node's view of each probed backend (C6).
    local: HashMap<BackendKey, LocalHealth>,
    /// Whether a [`ApplierMessage::RampTick`] is on its way.
    ticking: bool,
}

pub(crate) enum ApplierMessage {
    Apply(Arc<State>, RpcReplyPort<()>),
    /// A probe ended (from a probe task).
    Probed {
        group: Arc<str>,
        addr: Arc<str>,
        revision: u64,
        local: LocalHealth,
    },
    /// Time to rebuild the routes of ramping backends (R10).
    RampTick,
}

impl Actor for StateApplier {
    type Msg = ApplierMessage;
    type State = ApplierState;
    type Arguments = ApplierArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ApplierArgs,
    ) -> Result<ApplierState, ActorProcessingErr> {
        Ok(ApplierState {
            args,
            revision: None,
            listeners: HashMap::new(),
            backends: HashMap::new(),
            last: None,
            probers: HashMap::new(),
            local: HashMap::new(),
            ticking: false,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut ApplierState,
    ) -> Result<(), ActorProcessingErr> {
        for (_, (_, task)) in state.probers.drain() {
            task.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: ApplierMessage,
        state: &mut ApplierState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ApplierMessage::Apply(new, reply) => {
                if state.revision.is_none_or(|r| new.revision >= r) {
                    state.apply(&new).await?;
                    state.revision = Some(new.revision);
                    state.last = Some(new.clone());
                    state.run_probers(&new, &myself);
                    state.tick_while_ramping(&myself);
                }
                let _ = reply.send(());
            }
            ApplierMessage::RampTick => {
                state.ticking = false;
                if let Some(last) = state.last.clone() {
                    state.build_routes(&last);
                }
                state.tick_while_ramping(&myself);
            }
            ApplierMessage::Probed {
                group,
                addr,
                revision,
                local,
            } => {
                let key: BackendKey = (group, addr);
                let current = state
                    .probers
                    .get(&key)
                    .is_some_and(|(spec, _)| spec.revision == revision);
                if !current {
                    return Ok(());
                }
                let flipped = state
                    .local
                    .get(&key)
                    .is_none_or(|old| old.healthy != local.healthy);
                state.local.insert(key, local);
                if flipped {
                    if let Some(last) = state.last.clone() {
                        state.build_routes(&last);
                    }
                }
                state.args.shared.publish_health(state.local.clone());
            }
        }
        Ok(())
    }
}

impl ApplierState {
    /// Schedules the next [`ApplierMessage::RampTick`] if some group's
    /// effective weights still change with time.
    fn tick_while_ramping(&mut self, myself: &ActorRef<ApplierMessage>) {
        let now = health::now_ms();
        let ramping = self
            .last
            .as_ref()
            .is_some_and(|s| s.groups.values().any(|g| g.ramping_at(now)));
        if ramping && !self.ticking {
            self.ticking = true;
            myself.send_after(RAMP_TICK, || ApplierMessage::RampTick);
        }
    }

    async fn apply(&mut self, new: &State) -> Result<(), ActorProcessingErr> {
        // 1. Backends: one runtime per incarnation; draining ones stay until
        //    their drain completes cluster-wide.
        let mut starts: Vec<(ActorRef<BackendMessage>, DrainId, u64)> = Vec::new();
        let mut seen: HashMap<BackendKey, ()> = HashMap::new();
        for g in new.groups.values() {
            for b in g.backends.values() {
                let key: BackendKey = (Arc::from(g.name.as_str()), Arc::from(b.addr.as_str()));
                seen.insert(key.clone(), ());
                let want_drain = match b.status {
                    BackendStatus::Active => None,
                    BackendStatus::Draining { drain } => Some(drain),
                };
                // A backend active again after a drain gets a fresh runtime.
                let stale = self
                    .backends
                    .get(&key)
                    .is_some_and(|r| r.drain.is_some() && r.drain != want_drain);
                if stale {
                    if let Some(old) = self.backends.remove(&key) {
                        old.actor.stop(None);
                    }
                }
                if !self.backends.contains_key(&key) {
                    let running = self.start_backend(key.clone()).await?;
                    self.backends.insert(key.clone(), running);
                }
                let running = self.backends.get_mut(&key).expect("inserted");
                if let (Some(drain), None) = (want_drain, running.drain) {
                    running.drain = Some(drain);
                    let deadline = new.drains.get(&drain).map(|d| d.deadline).unwrap_or(0);
                    starts.push((running.actor.clone(), drain, deadline));
                }
            }
        }
        let gone: Vec<BackendKey> = self
            .backends
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(old) = self.backends.remove(&key) {
                info!(group = %key.0, backend = %key.1, "backend left the group");
                old.actor.stop(None);
            }
        }

        // 2. Routes, swapped in one atomic store.
        self.build_routes(new);

        // 3. Drains start after the routes no longer include their backend.
        for (actor, drain, deadline) in starts {
            actor.cast(BackendMessage::StartDrain { drain, deadline })?;
        }

        // 4. Listeners: bind new ports; a port that failed is retried on the
        //    next apply.
        let mut statuses = BTreeMap::new();
        for l in new.listeners.values() {
            let addr = SocketAddr::new(self.args.settings.data_address, l.port);
            let status = if self.listeners.contains_key(&l.port) {
                ListenerStatus::listening(addr)
            } else {
                match self.start_listener(l.port, addr).await {
                    Ok(actor) => {
                        self.listeners.insert(l.port, actor);
                        ListenerStatus::listening(addr)
                    }
                    Err(reason) => {
                        warn!(port = l.port, %addr, error = %reason, "listener not started");
                        ListenerStatus {
                            bind: addr.to_string(),
                            status: reason,
                        }
                    }
                }
            };
            statuses.insert(l.port, status);
        }

        self.args.shared.publish(
            statuses,
            self.backends
                .iter()
                .map(|(k, r)| (k.clone(), r.runtime.clone()))
                .collect(),
        );
        Ok(())
    }

    /// Probes every active backend of weight > 0 in a group that checks
    /// health; a changed check (new revision) restarts its task, which
    /// starts from this node's last view (or the replicated one).
    fn run_probers(&mut self, new: &State, myself: &ActorRef<ApplierMessage>) {
        let mut wanted: HashMap<BackendKey, ProbeSpec> = HashMap::new();
        for g in new.groups.values().filter(|g| g.health.enabled) {
            let group: Arc<str> = Arc::from(g.name.as_str());
            for b in g.backends.values() {
                if b.status != BackendStatus::Active || b.weight == 0 {
                    continue;
                }
                let addr: Arc<str> = Arc::from(b.addr.as_str());
                wanted.insert(
                    (group.clone(), addr.clone()),
                    ProbeSpec {
                        group: group.clone(),
                        addr,
                        check: g.health.clone(),
                        revision: g.health_revision,
                    },
                );
            }
        }
        self.probers.retain(|key, (spec, task)| {
            let keep = wanted.get(key) == Some(spec);
            if !keep {
                task.abort();
            }
            keep
        });
        self.local.retain(|key, _| wanted.contains_key(key));
        for (key, spec) in wanted {
            if self.probers.contains_key(&key) {
                continue;
            }
            let healthy = self.local.get(&key).map(|l| l.healthy).unwrap_or_else(|| {
                new.groups
                    .get(&*key.0)
                    .and_then(|g| g.backends.get(&*key.1))
                    .is_none_or(|b| b.health.healthy)
            });
            let task = health::spawn(
                spec.clone(),
                healthy,
                self.args.settings.data_address,
                self.args.settings.node_id,
                myself.clone(),
                self.args.reporter.clone(),
            );
            self.probers.insert(key, (spec, task));
        }
        self.args.shared.publish_health(self.local.clone());
    }

    /// Swaps in the routing snapshot for `new` with this node's own view
    /// of each backend laid over it (C6) and the slow-start weights of now
    /// (R10).
    fn build_routes(&self, new: &State) {
        let now = health::now_ms();
        let previous = self.args.routes.load();
        let mut routes = HashMap::new();
        for l in new.listeners.values() {
            let Some(g) = new.groups.get(&l.group) else {
                continue;
            };
            let group: Arc<str> = Arc::from(g.name.as_str());
            let locally_failing = |b: &sluice_model::Backend| {
                self.local
                    .get(&(group.clone(), Arc::from(b.addr.as_str())))
                    .is_some_and(|l| !l.healthy)
            };
            let weighted = g
                .weighted_with(now, locally_failing)
                .into_iter()
                .filter_map(|(b, weight)| {
                    let key: BackendKey = (group.clone(), Arc::from(b.addr.as_str()));
                    self.backends.get(&key).map(|r| (r.runtime.clone(), weight))
                })
                .collect();
            routes.insert(
                l.port,
                Arc::new(Route::new(
                    group,
                    Duration::from_millis(l.request_timeout_ms),
                    weighted,
                    previous.routes.get(&l.port).map(|r| &**r),
                )),
            );
        }
        self.args.routes.store(Arc::new(RoutingTable { routes }));
    }

    async fn start_backend(&self, key: BackendKey) -> Result<RunningBackend, ActorProcessingErr> {
        let runtime = BackendRuntime::new(key.0.clone(), key.1.clone(), &self.args.settings);
        let (actor, _) = Actor::spawn_linked(
            None,
            Backend,
            BackendArgs {
                runtime: runtime.clone(),
                reporter: self.args.reporter.clone(),
            },
            self.args.backends_sup.clone(),
        )
        .await?;
        Ok(RunningBackend {
            runtime,
            actor,
            drain: None,
        })
    }

    async fn start_listener(&self, port: u16, addr: SocketAddr) -> Result<ActorRef<()>, String> {
        let socket = bind(addr).map_err(|e| e.to_string())?;
        let name = format!("node{}-listener-{port}", self.args.settings.node_id);
        let (actor, _) = Actor::spawn_linked(
            Some(name),
            Listener,
            ListenerArgs {
                port,
                socket,
                routes: self.args.routes.clone(),
                metrics: self.args.metrics.clone(),
                settings: self.args.settings.clone(),
            },
            self.args.listeners_sup.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(actor)
    }
}
