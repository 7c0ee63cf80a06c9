//! The `StateApplier` actor: takes each applied [`State`], has [`plan`]
//! decide what changes against the state the data plane runs (plan.rs),
//! then executes each [`Change`]: starts and stops backends, swaps the
//! routing snapshot, tells backends whose drain began, drains, closes and
//! binds listeners. It answers the caller only once the new routes are in
//! place, so an admin write that returned is already routed by (R1: "right
//! after the removal returns"). While a group's slow-start ramp runs (R10)
//! it rebuilds that group's routes every [`RAMP_TICK`].
//!
//! An apply costs what changed: the plan walks only what differs, routes
//! and probes are redone only for the groups (and ports) it names, and
//! what readers are shown is updated entry by entry.
//!
//! Listeners are told apart by port and generation: one that left the state
//! (or was replaced on its port) drains until its `ListenerDrain`'s
//! deadline, and its socket is closed before a newer one binds the port. A
//! bind that fails is retried every [`BIND_RETRY_FIRST`], backing off to
//! [`BIND_RETRY_MAX`]; each attempt's outcome is reported when it is first
//! known and whenever it changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus};
use std::sync::atomic::Ordering;

use sluice_model::{BackendStatus, BindStatus, DrainId, NodeDrainReason, State, UnixMillis};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn, Instrument, Span};

use crate::backend::{Backend, BackendArgs, BackendRuntime};
use crate::events::DataPlaneEvents;
use crate::health::{self, ProbeSpec};
use crate::health_view::LocalHealth;
use crate::listener::{bind, Listener, ListenerArgs, ListenerTls};
use crate::messages::{ApplierMessage, BackendMessage, ListenerMessage};
use crate::metrics::Metrics;
use crate::per_backend::PerBackend;
use crate::plan::{plan, Change};
use crate::published::{BackendKey, ListenerStatus, NodeDrainStatus, Published};
use crate::routing::{Route, RouteOrigin, RoutingTable, RAMP_TICK};
use crate::settings::ProxySettings;
use crate::tls_configs::{BuiltFrom, TlsConfigs};

/// First wait before a failed bind is tried again.
pub(crate) const BIND_RETRY_FIRST: Duration = Duration::from_secs(2);
/// Longest wait between attempts to bind a port that stays taken.
pub(crate) const BIND_RETRY_MAX: Duration = Duration::from_secs(30);
/// How often a draining node looks whether it holds nothing yet.
const NODE_DRAIN_CHECK: Duration = Duration::from_millis(100);
/// Longest wait for a removed listener to close its socket.
const CLOSE_SOCKET_WITHIN: Duration = Duration::from_secs(2);

pub(crate) struct StateApplier;

pub(crate) struct ApplierArgs {
    pub settings: Arc<ProxySettings>,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub events: Arc<dyn DataPlaneEvents>,
    pub published: Arc<Published>,
    pub listeners_sup: ActorCell,
    pub backends_sup: ActorCell,
}

struct RunningListener {
    generation: u64,
    actor: ActorRef<ListenerMessage>,
    /// Its TLS configuration, swapped here when its certificates change.
    tls: ListenerTls,
    /// What that configuration was built from.
    tls_from: BuiltFrom,
}

/// A listener whose bind failed, waiting for its next attempt.
struct FailedBind {
    generation: u64,
    /// Wait before the attempt after next.
    backoff: Duration,
    next: Instant,
}

struct RunningBackend {
    runtime: Arc<BackendRuntime>,
    /// Started when the backend first has work.
    actor: Option<ActorRef<BackendMessage>>,
}

pub(crate) struct ApplierState {
    args: ApplierArgs,
    /// `state_applier`, around every handler.
    span: Span,
    /// Revision of the state the data plane runs; an older one is ignored,
    /// so routing never goes back in time.
    revision: Option<u64>,
    listeners: HashMap<u16, RunningListener>,
    /// Removed listeners whose connections drain, by port and generation.
    draining_listeners: HashMap<(u16, u64), ActorRef<ListenerMessage>>,
    /// Listeners of the state this node could not bind yet.
    failed_binds: HashMap<u16, FailedBind>,
    /// When a [`ApplierMessage::RetryBinds`] is due, if one is on its way.
    retry_at: Option<Instant>,
    /// The last bind outcome reported per port, with its generation.
    reported: HashMap<u16, (u64, Result<(), String>)>,
    /// What the admin API is shown per listener.
    statuses: BTreeMap<u16, ListenerStatus>,
    backends: PerBackend<RunningBackend>,
    /// The state the data plane runs (routes are rebuilt from it when this
    /// node's own view of a backend flips).
    last: Option<Arc<State>>,
    /// Probe tasks by backend, with what they probe.
    probers: PerBackend<(ProbeSpec, JoinHandle<()>)>,
    /// This node's view of each probed backend (C6).
    local: PerBackend<LocalHealth>,
    /// Whether a [`ApplierMessage::RampTick`] is on its way.
    ticking: bool,
    /// Groups whose effective weights still change with time (R10).
    ramping: BTreeSet<Arc<str>>,
    /// This node's own drain as it runs (N1).
    node_drain: Option<RunningNodeDrain>,
    /// The start and deadline of a drain this node started on its own (a
    /// stop).
    local_drain: Option<(UnixMillis, UnixMillis)>,
    /// Whether a [`ApplierMessage::NodeDrainCheck`] is on its way.
    checking_node_drain: bool,
    /// The previous process's stop this process asked to clear.
    cleared_stop: Option<DrainId>,
    /// Certificate keys loaded for TLS listeners.
    tls: TlsConfigs,
}

// === impl RunningBackend ===

impl RunningBackend {
    fn stop(self) {
        if let Some(actor) = self.actor {
            actor.stop(None);
        }
    }
}

/// Which routes a rebuild renews.
#[derive(Debug, Clone, Copy)]
enum RouteScope<'a> {
    /// Those over these groups and of these ports' listeners.
    Only {
        groups: &'a BTreeSet<Arc<str>>,
        ports: &'a BTreeSet<u16>,
    },
}

// === impl RouteScope ===

impl<'a> RouteScope<'a> {
    /// The routes over `groups`.
    fn groups(groups: &'a BTreeSet<Arc<str>>) -> Self {
        static NO_PORTS: BTreeSet<u16> = BTreeSet::new();
        RouteScope::Only {
            groups,
            ports: &NO_PORTS,
        }
    }

    /// Whether the route of the listener on `port` over `group` is rebuilt.
    fn renews(&self, port: u16, group: &str) -> bool {
        match self {
            RouteScope::Only { groups, ports } => ports.contains(&port) || groups.contains(group),
        }
    }
}

/// This node's drain as the applier runs it.
#[derive(Debug, Clone, Copy)]
struct RunningNodeDrain {
    status: NodeDrainStatus,
    /// The drain whose end was reported (`NodeDrainFinished`).
    reported: Option<DrainId>,
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
        let span = tracing::info_span!("state_applier");
        Ok(ApplierState {
            span,
            args,
            revision: None,
            listeners: HashMap::new(),
            draining_listeners: HashMap::new(),
            failed_binds: HashMap::new(),
            retry_at: None,
            reported: HashMap::new(),
            statuses: BTreeMap::new(),
            backends: PerBackend::default(),
            last: None,
            probers: PerBackend::default(),
            local: PerBackend::default(),
            ticking: false,
            ramping: BTreeSet::new(),
            node_drain: None,
            local_drain: None,
            checking_node_drain: false,
            cleared_stop: None,
            tls: TlsConfigs::default(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut ApplierState,
    ) -> Result<(), ActorProcessingErr> {
        for (_, task) in state.probers.drain() {
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
        let span = state.span.clone();
        handle_message(myself, message, state)
            .instrument(span)
            .await
    }
}

/// The applier's handler, run inside its span.
async fn handle_message(
    myself: ActorRef<ApplierMessage>,
    message: ApplierMessage,
    state: &mut ApplierState,
) -> Result<(), ActorProcessingErr> {
    match message {
        ApplierMessage::Apply(new, reply) => {
            if state.revision.is_none_or(|r| new.revision >= r) {
                // The node's drain first: a listener bound by this state
                // starts drained, and one restored with a drained node
                // closes its socket at once when the drain's grace is over.
                state.sync_node_drain(Some(&new), &myself);
                let touched = state.apply(&new, &myself).await?;
                state.revision = Some(new.revision);
                state.last = Some(new.clone());
                state.run_probers(&new, &touched, &myself);
                state.ramping.extend(touched);
                state.tick_while_ramping(&myself);
            }
            let _ = reply.send(());
        }
        ApplierMessage::DrainLocally { deadline, reply } => {
            let now = sluice_clock::now_ms();
            state.local_drain = Some(match state.local_drain {
                Some((started, d)) => (started, d.min(deadline)),
                None => (now, deadline),
            });
            let last = state.last.clone();
            state.sync_node_drain(last.as_deref(), &myself);
            let _ = reply.send(());
        }
        ApplierMessage::NodeDrainCheck => state.check_node_drain(&myself),
        ApplierMessage::FirstWork {
            group,
            addr,
            incarnation,
            connection,
            token,
        } => {
            let key: BackendKey = (group, addr);
            // Only the incarnation that runs now: an older one's work ends
            // with it.
            let current = state
                .backends
                .get(&key.0, &key.1)
                .is_some_and(|r| r.runtime.id == incarnation);
            if current {
                if let Some(actor) = state.backend_actor(&key).await? {
                    let _ = actor.cast(BackendMessage::Register { connection, token });
                }
            }
        }
        ApplierMessage::RetryBinds => {
            state.retry_at = None;
            state.retry_binds(&myself).await;
        }
        ApplierMessage::RampTick => {
            state.ticking = false;
            if let Some(last) = state.last.clone() {
                // A group whose ramp ended since the last tick gets its
                // full weights now, then leaves the set.
                let ramping = state.ramping.clone();
                state.build_routes(&last, RouteScope::groups(&ramping));
            }
            state.tick_while_ramping(&myself);
        }
        ApplierMessage::Probed {
            group,
            addr,
            revision,
            local,
        } => {
            let current = state
                .probers
                .get(&group, &addr)
                .is_some_and(|(spec, _)| spec.revision == revision);
            if !current {
                return Ok(());
            }
            let flipped = state
                .local
                .get(&group, &addr)
                .is_none_or(|old| old.healthy != local.healthy);
            let key: BackendKey = (group, addr);
            state.local.insert(key.clone(), local.clone());
            if flipped {
                if let Some(last) = state.last.clone() {
                    let groups = BTreeSet::from([key.0.clone()]);
                    state.build_routes(&last, RouteScope::groups(&groups));
                }
            }
            state.args.published.publish_health_of(key, Some(local));
        }
    }
    Ok(())
}

impl ApplierState {
    /// The drain this node should run: the replicated one for this node (if
    /// it applies to this process), or the one it started on its own, with
    /// the earlier deadline when both exist.
    /// Returns the drain's id, start and deadline.
    fn wanted_node_drain(
        &self,
        state: Option<&State>,
    ) -> Option<(Option<DrainId>, UnixMillis, UnixMillis)> {
        let settings = &self.args.settings;
        let replicated = state
            .and_then(|s| s.node_drains.get(&settings.node_id))
            .filter(|d| d.applies_to(settings.incarnation))
            .map(|d| (d.drain, d.started, d.deadline));
        match (replicated, self.local_drain) {
            (Some((id, started, deadline)), Some((l_started, l_deadline))) => {
                Some((Some(id), started.min(l_started), deadline.min(l_deadline)))
            }
            (Some((id, started, deadline)), None) => Some((Some(id), started, deadline)),
            (None, Some((started, deadline))) => Some((None, started, deadline)),
            (None, None) => None,
        }
    }

    /// Starts, changes or ends this node's drain to match what is wanted
    /// ([`Self::wanted_node_drain`]), telling every running listener.
    fn sync_node_drain(&mut self, state: Option<&State>, myself: &ActorRef<ApplierMessage>) {
        let settings = &self.args.settings;
        let earlier_stop = state
            .and_then(|s| s.node_drains.get(&settings.node_id))
            .filter(|d| {
                d.reason == NodeDrainReason::Stopping && !d.applies_to(settings.incarnation)
            })
            .map(|d| d.drain);
        if let Some(drain) = earlier_stop.filter(|d| self.cleared_stop != Some(*d)) {
            self.cleared_stop = Some(drain);
            info!(%drain, "the state holds the stop of this node's previous process; clearing it");
            self.args
                .events
                .earlier_process_stopping(settings.incarnation);
        }
        let wanted = self.wanted_node_drain(state);
        let now = sluice_clock::now_ms();
        match (self.node_drain.as_mut(), wanted) {
            (None, None) => return,
            (Some(_), None) => {
                self.node_drain = None;
                info!("node drain ended: accepting and keeping connections alive again");
                for r in self.listeners.values() {
                    let _ = r.actor.cast(ListenerMessage::NodeUndrain);
                }
            }
            (None, Some((drain, started, deadline))) => {
                // The grace counts from the drain's start: a node that
                // restarts drained accepts nothing.
                let grace = self.args.settings.accept_grace.as_millis() as u64;
                let status = NodeDrainStatus {
                    drain,
                    deadline,
                    accept_until: started.saturating_add(grace).min(deadline),
                    finished: false,
                };
                info!(
                    drain = drain.map(tracing::field::display),
                    deadline_in_ms = deadline.saturating_sub(now),
                    accept_grace_ms = status.accept_until.saturating_sub(now),
                    "node drains: not ready, accepting during the grace, closing what is left at the deadline"
                );
                self.node_drain = Some(RunningNodeDrain {
                    status,
                    reported: None,
                });
                self.tell_listeners_node_drain();
                if !self.checking_node_drain {
                    self.checking_node_drain = true;
                    myself.send_after(NODE_DRAIN_CHECK, || ApplierMessage::NodeDrainCheck);
                }
            }
            (Some(running), Some((drain, _, deadline))) => {
                let s = &mut running.status;
                if s.drain == drain && s.deadline == deadline {
                    return;
                }
                s.drain = drain;
                if s.deadline != deadline {
                    s.deadline = deadline;
                    s.accept_until = s.accept_until.min(deadline);
                    info!(
                        drain = drain.map(tracing::field::display),
                        deadline_in_ms = deadline.saturating_sub(now),
                        "node drain deadline changed"
                    );
                    self.tell_listeners_node_drain();
                }
            }
        }
        self.publish_node_drain();
    }

    fn tell_listeners_node_drain(&self) {
        let Some(running) = self.node_drain else {
            return;
        };
        for r in self.listeners.values() {
            let _ = r.actor.cast(ListenerMessage::NodeDrain {
                drain: running.status.drain,
                deadline: running.status.deadline,
                accept_until: running.status.accept_until,
            });
        }
    }

    /// While draining: finished once the grace is over and no client
    /// connection is left; the replicated drain's end is reported once.
    fn check_node_drain(&mut self, myself: &ActorRef<ApplierMessage>) {
        let Some(running) = self.node_drain.as_mut() else {
            self.checking_node_drain = false;
            return;
        };
        let open = self.args.metrics.connections_open.load(Ordering::Relaxed);
        let s = &mut running.status;
        if !s.finished && open == 0 && sluice_clock::now_ms() >= s.accept_until {
            s.finished = true;
            info!(
                drain = s.drain.map(tracing::field::display),
                "node drained: no client connection left"
            );
        }
        myself.send_after(NODE_DRAIN_CHECK, || ApplierMessage::NodeDrainCheck);
        self.publish_node_drain();
    }

    /// Publishes the node drain for readers, and reports a finished
    /// replicated drain once.
    fn publish_node_drain(&mut self) {
        if let Some(running) = self.node_drain.as_mut() {
            if let (true, Some(drain)) = (running.status.finished, running.status.drain) {
                if running.reported != Some(drain) {
                    running.reported = Some(drain);
                    self.args.events.node_drain_finished(drain);
                }
            }
        }
        self.args
            .published
            .publish_node_drain(self.node_drain.map(|r| r.status));
    }
    /// Keeps in [`ApplierState::ramping`] the groups whose effective
    /// weights still change with time, and schedules the next
    /// [`ApplierMessage::RampTick`] while there is one.
    fn tick_while_ramping(&mut self, myself: &ActorRef<ApplierMessage>) {
        let now = sluice_clock::now_ms();
        let last = self.last.clone();
        self.ramping.retain(|name| {
            last.as_ref()
                .and_then(|s| s.groups.get(&**name))
                .is_some_and(|g| g.ramping_at(now))
        });
        let ramping = !self.ramping.is_empty();
        if ramping && !self.ticking {
            self.ticking = true;
            myself.send_after(RAMP_TICK, || ApplierMessage::RampTick);
        }
    }

    /// Takes the data plane from the state it runs to `new`: decides what
    /// changes ([`plan`]), then does it. Returns the groups that changed.
    async fn apply(
        &mut self,
        new: &State,
        myself: &ActorRef<ApplierMessage>,
    ) -> Result<BTreeSet<Arc<str>>, ActorProcessingErr> {
        let empty = State::default();
        let last = self.last.clone();
        let old = last.as_deref().unwrap_or(&empty);
        let mut touched = BTreeSet::new();
        for change in plan(old, new) {
            if let Change::RebuildRoutes { groups, .. } = &change {
                touched.extend(groups.iter().cloned());
            }
            self.execute(change, new, myself).await?;
        }
        self.sync_tls(new);
        self.draining_listeners
            .retain(|_, actor| !matches!(actor.get_status(), ActorStatus::Stopped));
        let current = |port: &u16, generation: u64| {
            new.listeners
                .get(port)
                .is_some_and(|l| l.generation == generation)
        };
        self.failed_binds.retain(|p, f| current(p, f.generation));
        self.reported.retain(|p, (g, _)| current(p, *g));
        self.statuses.retain(|p, _| new.listeners.contains_key(p));
        self.schedule_retry(myself);
        self.args.published.publish_listeners(self.statuses.clone());
        Ok(touched)
    }

    /// Does one change of a plan.
    async fn execute(
        &mut self,
        change: Change,
        new: &State,
        myself: &ActorRef<ApplierMessage>,
    ) -> Result<(), ActorProcessingErr> {
        match change {
            Change::StartBackend { key } => {
                let running = self.start_backend(key.clone(), myself);
                self.run_backend(key, running);
            }
            Change::StopBackend { key } => {
                if let Some(old) = self.backends.remove(&key.0, &key.1) {
                    info!(group = %key.0, backend = %key.1, "backend left the group");
                    old.stop();
                }
                self.args.published.forget_backend(&key);
            }
            Change::ReplaceBackend { key } => {
                if let Some(old) = self.backends.remove(&key.0, &key.1) {
                    old.stop();
                }
                let running = self.start_backend(key.clone(), myself);
                self.run_backend(key, running);
            }
            Change::RebuildRoutes { groups, ports } => self.build_routes(
                new,
                RouteScope::Only {
                    groups: &groups,
                    ports: &ports,
                },
            ),
            Change::StartDrain {
                key,
                drain,
                deadline,
            } => {
                if let Some(actor) = self.backend_actor(&key).await? {
                    actor.cast(BackendMessage::StartDrain { drain, deadline })?;
                }
            }
            Change::DrainListener {
                port,
                generation,
                drain,
                deadline,
            } => self.drain_listener(port, generation, drain, deadline).await,
            Change::CloseListener { port, generation } => {
                if let Some(actor) = self.draining_listeners.get(&(port, generation)) {
                    let _ = actor.cast(ListenerMessage::Deadline);
                }
            }
            Change::BindListener { port, generation } => {
                let known = new
                    .listeners
                    .get(&port)
                    .and_then(|l| l.nodes.get(&self.args.settings.node_id).cloned());
                self.try_bind(port, generation, known, new).await;
            }
        }
        Ok(())
    }

    /// Drains the running listener of `generation` on `port`: its socket is
    /// closed when this returns (or after [`CLOSE_SOCKET_WITHIN`]); a
    /// listener that never bound has nothing to drain.
    async fn drain_listener(
        &mut self,
        port: u16,
        generation: u64,
        drain: Option<DrainId>,
        deadline: sluice_model::UnixMillis,
    ) {
        if self
            .listeners
            .get(&port)
            .is_none_or(|r| r.generation != generation)
        {
            return;
        }
        let Some(r) = self.listeners.remove(&port) else {
            return;
        };
        let drained = r
            .actor
            .call(
                |reply| ListenerMessage::Drain {
                    drain,
                    deadline,
                    reply,
                },
                Some(CLOSE_SOCKET_WITHIN),
            )
            .await;
        match drained {
            Ok(CallResult::Success(())) => {}
            Ok(_) => {
                warn!(
                    port,
                    generation,
                    drain = drain.map(tracing::field::display),
                    "listener did not confirm its drain in time"
                )
            }
            Err(e) => {
                warn!(port, generation, drain = drain.map(tracing::field::display), error = %e, "listener did not confirm its drain")
            }
        }
        self.draining_listeners.insert((port, generation), r.actor);
    }

    /// One attempt to bind a listener of the state; a failure is tried
    /// again later. The outcome is reported when it is news: a change, or
    /// the first outcome for the generation unless the replicated state
    /// already records it for this node (`known`, e.g. after a restart).
    async fn try_bind(
        &mut self,
        port: u16,
        generation: u64,
        known: Option<BindStatus>,
        state: &State,
    ) {
        let addr = SocketAddr::new(self.args.settings.data_address, port);
        let (tls, tls_from) = self.first_tls(port, state);
        let outcome = match self
            .start_listener(port, generation, addr, tls.clone())
            .await
        {
            Ok(actor) => {
                if let Some(running) = self.node_drain {
                    let _ = actor.cast(ListenerMessage::NodeDrain {
                        drain: running.status.drain,
                        deadline: running.status.deadline,
                        accept_until: running.status.accept_until,
                    });
                }
                self.listeners.insert(
                    port,
                    RunningListener {
                        generation,
                        actor,
                        tls,
                        tls_from,
                    },
                );
                self.failed_binds.remove(&port);
                self.statuses.insert(port, ListenerStatus::listening(addr));
                Ok(())
            }
            Err(reason) => {
                let backoff = self
                    .failed_binds
                    .get(&port)
                    .filter(|f| f.generation == generation)
                    .map_or(BIND_RETRY_FIRST, |f| f.backoff);
                self.failed_binds.insert(
                    port,
                    FailedBind {
                        generation,
                        backoff: (backoff * 2).min(BIND_RETRY_MAX),
                        next: Instant::now() + backoff,
                    },
                );
                self.statuses.insert(
                    port,
                    ListenerStatus {
                        bind: addr.to_string(),
                        status: reason.clone(),
                    },
                );
                Err(reason)
            }
        };
        let recorded = |known: &BindStatus| match &outcome {
            Ok(()) => known.bound,
            Err(reason) => !known.bound && known.detail == *reason,
        };
        let changed = match self.reported.get(&port) {
            Some((g, last)) if *g == generation => *last != outcome,
            _ => !known.as_ref().is_some_and(recorded),
        };
        if changed {
            match &outcome {
                Ok(()) => info!(port, generation, %addr, "listener bound"),
                Err(reason) => {
                    warn!(port, generation, %addr, error = %reason, "listener not bound; retrying")
                }
            }
            self.args
                .events
                .listener_bound(port, generation, outcome.clone());
            self.reported.insert(port, (generation, outcome));
        }
    }

    /// A listener's first TLS configuration (a shared slot, empty when it
    /// is plain). A certificate that does not load leaves it refusing every
    /// handshake (logged), never serving plain HTTP instead.
    fn first_tls(&mut self, port: u16, state: &State) -> (ListenerTls, BuiltFrom) {
        let slot = ListenerTls::default();
        let Some(l) = state.listeners.get(&port) else {
            return (slot, BuiltFrom::default());
        };
        match self.tls.build(l, state) {
            Ok(config) => slot.store(config),
            Err(e) => {
                warn!(port, certs = ?l.tls, error = %e, "a certificate did not load on this node: the listener's TLS handshakes fail until it is replaced");
                slot.store(Some(TlsConfigs::refusing()));
            }
        }
        (slot, BuiltFrom::of(l, state))
    }

    /// Swaps in a new TLS configuration for each running listener whose
    /// certificates changed (other names, or a replaced certificate): new
    /// handshakes use it, established connections keep theirs. One that
    /// does not load is logged and the listener keeps its configuration.
    fn sync_tls(&mut self, new: &State) {
        for (port, r) in self.listeners.iter_mut() {
            let Some(l) = new
                .listeners
                .get(port)
                .filter(|l| l.generation == r.generation)
            else {
                continue;
            };
            if r.tls_from.matches(l, new) {
                continue;
            }
            r.tls_from = BuiltFrom::of(l, new);
            match self.tls.build(l, new) {
                Ok(config) => {
                    info!(port = *port, certs = ?l.tls, "listener's TLS configuration replaced: new handshakes use it");
                    r.tls.store(config);
                }
                Err(e) => {
                    warn!(port = *port, certs = ?l.tls, error = %e, "a certificate did not load on this node: the listener keeps its previous TLS configuration");
                }
            }
        }
        self.tls.retain(new);
    }

    /// Tries the failed binds whose time came.
    async fn retry_binds(&mut self, myself: &ActorRef<ApplierMessage>) {
        let Some(last) = self.last.clone() else {
            return;
        };
        let now = Instant::now();
        let due: Vec<(u16, u64)> = self
            .failed_binds
            .iter()
            .filter(|(_, f)| f.next <= now)
            .map(|(port, f)| (*port, f.generation))
            .collect();
        let mut tried = false;
        for (port, generation) in due {
            let listener = last
                .listeners
                .get(&port)
                .filter(|l| l.generation == generation);
            if let (Some(l), false) = (listener, self.listeners.contains_key(&port)) {
                let known = l.nodes.get(&self.args.settings.node_id).cloned();
                self.try_bind(port, generation, known, &last).await;
                tried = true;
            } else {
                self.failed_binds.remove(&port);
            }
        }
        self.schedule_retry(myself);
        if tried {
            self.args.published.publish_listeners(self.statuses.clone());
        }
    }

    /// Makes sure a [`ApplierMessage::RetryBinds`] comes when the next
    /// failed bind is due.
    fn schedule_retry(&mut self, myself: &ActorRef<ApplierMessage>) {
        let Some(next) = self.failed_binds.values().map(|f| f.next).min() else {
            return;
        };
        if self.retry_at.is_some_and(|at| at <= next) {
            return;
        }
        self.retry_at = Some(next);
        myself.send_after(next.saturating_duration_since(Instant::now()), || {
            ApplierMessage::RetryBinds
        });
    }

    /// Probes every active backend of weight > 0 in the `groups` that check
    /// health (the others' probes stay as they are); a changed check (new
    /// revision) restarts its task, which starts from this node's last view
    /// (or the replicated one).
    fn run_probers(
        &mut self,
        new: &State,
        groups: &BTreeSet<Arc<str>>,
        myself: &ActorRef<ApplierMessage>,
    ) {
        for group in groups {
            self.run_probers_of(new, group, myself);
        }
    }

    fn run_probers_of(&mut self, new: &State, group: &Arc<str>, myself: &ActorRef<ApplierMessage>) {
        let mut wanted: HashMap<Arc<str>, ProbeSpec> = HashMap::new();
        if let Some(g) = new.groups.get(&**group).filter(|g| g.health.enabled) {
            for b in g.backends.values() {
                // In maintenance: no new work, so nothing to probe for.
                if b.status != BackendStatus::Active || b.weight == 0 || b.maintenance {
                    continue;
                }
                let addr: Arc<str> = Arc::from(b.addr.as_str());
                let spec = ProbeSpec {
                    group: group.clone(),
                    addr: addr.clone(),
                    check: g.health.clone(),
                    revision: g.health_revision,
                };
                wanted.insert(addr, spec);
            }
        }
        let running = self.probers.group_mut(group);
        running.retain(|addr, (spec, task)| {
            let keep = wanted.get(addr) == Some(spec);
            if !keep {
                task.abort();
            }
            keep
        });
        let local = self.local.group_mut(group);
        let published = &self.args.published;
        local.retain(|addr, _| {
            let keep = wanted.contains_key(addr);
            if !keep {
                published.forget_health(&(group.clone(), addr.clone()));
            }
            keep
        });
        for (addr, spec) in wanted {
            if running.contains_key(&addr) {
                continue;
            }
            let healthy = local.get(&addr).map(|l| l.healthy).unwrap_or_else(|| {
                new.groups
                    .get(&**group)
                    .and_then(|g| g.backends.get(&*addr))
                    .is_none_or(|b| b.health.healthy)
            });
            let task = health::spawn(
                spec.clone(),
                healthy,
                self.args.settings.data_address,
                myself.clone(),
                self.args.events.clone(),
            );
            running.insert(addr, (spec, task));
        }
        self.probers.tidy(group);
        self.local.tidy(group);
    }

    /// Swaps in a routing snapshot whose routes in `scope` are built from
    /// `new`, with this node's own view of each backend laid over it (C6)
    /// and the slow-start weights of now (R10); the others are kept. A kept
    /// route keeps the origin it was built from: nothing it depends on
    /// changed since.
    fn build_routes(&self, new: &State, scope: RouteScope<'_>) {
        let now = sluice_clock::now_ms();
        let origin = RouteOrigin {
            node: self.args.settings.node_id,
            revision: new.revision,
        };
        let previous = self.args.routes.load();
        let mut routes = HashMap::new();
        for l in new.listeners.values() {
            let kept = previous
                .routes
                .get(&l.port)
                .filter(|r| r.generation == l.generation);
            if let Some(route) = kept.filter(|_| !scope.renews(l.port, &l.group)) {
                routes.insert(l.port, route.clone());
                continue;
            }
            let Some(g) = new.groups.get(&l.group) else {
                continue;
            };
            let route = self.route_over(
                g,
                now,
                origin,
                l.generation,
                l.request_timeout_ms,
                kept.map(|r| &**r),
            );
            routes.insert(l.port, Arc::new(route));
        }
        // A removed listener's connections go on by its own route while
        // they drain.
        let mut draining = HashMap::new();
        for d in new.listener_drains.values() {
            let kept = previous.draining.get(&(d.port, d.generation));
            if let Some(route) = kept.filter(|_| !scope.renews(d.port, &d.group)) {
                draining.insert((d.port, d.generation), route.clone());
                continue;
            }
            let Some(g) = new.groups.get(&d.group) else {
                continue;
            };
            let route = self.route_over(g, now, origin, d.generation, d.request_timeout_ms, None);
            draining.insert((d.port, d.generation), Arc::new(route));
        }
        self.args
            .routes
            .store(Arc::new(RoutingTable { routes, draining }));
    }

    /// A route over `g`'s routable backends at `now`, with this node's own
    /// view of each laid over the replicated one.
    fn route_over(
        &self,
        g: &sluice_model::Group,
        now: u64,
        origin: RouteOrigin,
        generation: u64,
        request_timeout_ms: u64,
        previous: Option<&Route>,
    ) -> Route {
        let group: Arc<str> = Arc::from(g.name.as_str());
        let local = self.local.group(&group);
        let running = self.backends.group(&group);
        let locally_failing = |b: &sluice_model::Backend| {
            local
                .and_then(|l| l.get(b.addr.as_str()))
                .is_some_and(|l| !l.healthy)
        };
        let weighted = g
            .weighted_with(now, locally_failing)
            .into_iter()
            .filter_map(|(b, weight)| {
                running
                    .and_then(|r| r.get(b.addr.as_str()))
                    .map(|r| (r.runtime.clone(), weight))
            })
            .collect();
        Route::new(
            generation,
            origin,
            group,
            Duration::from_millis(request_timeout_ms),
            weighted,
            previous,
        )
    }

    /// Runs a started backend and shows it to readers.
    fn run_backend(&mut self, key: BackendKey, running: RunningBackend) {
        self.args
            .published
            .show_backend(key.clone(), running.runtime.clone());
        self.backends.insert(key, running);
    }

    /// A backend's runtime; its actor starts when it first has work.
    fn start_backend(&self, key: BackendKey, myself: &ActorRef<ApplierMessage>) -> RunningBackend {
        let runtime = BackendRuntime::new(key.0, key.1, &self.args.settings, Some(myself.clone()));
        RunningBackend {
            runtime,
            actor: None,
        }
    }

    /// The actor of the running backend `key`, started now if it has none.
    async fn backend_actor(
        &mut self,
        key: &BackendKey,
    ) -> Result<Option<ActorRef<BackendMessage>>, ActorProcessingErr> {
        let Some(running) = self.backends.get(&key.0, &key.1) else {
            return Ok(None);
        };
        if let Some(actor) = &running.actor {
            return Ok(Some(actor.clone()));
        }
        let runtime = running.runtime.clone();
        let (actor, _) = Actor::spawn_linked(
            None,
            Backend,
            BackendArgs {
                runtime,
                events: self.args.events.clone(),
            },
            self.args.backends_sup.clone(),
        )
        .await?;
        if let Some(running) = self.backends.get_mut(&key.0, &key.1) {
            running.actor = Some(actor.clone());
        }
        Ok(Some(actor))
    }

    async fn start_listener(
        &self,
        port: u16,
        generation: u64,
        addr: SocketAddr,
        tls: ListenerTls,
    ) -> Result<ActorRef<ListenerMessage>, String> {
        let socket = bind(addr).map_err(|e| e.to_string())?;
        // A port's listener is found by this name; while an older one on the
        // port still drains under it, the newer one's name says its
        // generation.
        let mut name = format!("node{}-listener-{port}", self.args.settings.node_id);
        if ractor::registry::where_is(name.clone()).is_some() {
            name = format!("{name}-{generation}");
        }
        let (actor, _) = Actor::spawn_linked(
            Some(name),
            Listener,
            ListenerArgs {
                port,
                generation,
                socket,
                tls,
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use sluice_model::{Command, DrainPolicy};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::{DataPlane, DataPlaneEvents};

    type Outcome = (u16, u64, Result<(), String>);

    /// Records the bind outcomes it is told.
    #[derive(Default)]
    struct Binds(Mutex<Vec<Outcome>>);

    impl Binds {
        fn seen(&self) -> Vec<Outcome> {
            self.0.lock().unwrap().clone()
        }
    }

    impl DataPlaneEvents for Binds {
        fn drain_finished(&self, _: DrainId, _: &str, _: &str) {}

        fn listener_bound(&self, port: u16, generation: u64, outcome: Result<(), String>) {
            self.0.lock().unwrap().push((port, generation, outcome));
        }
    }

    /// A backend that takes requests and never answers; each accepted
    /// connection is announced.
    /// A backend that reads requests and never answers; the receiver gets
    /// one `()` per proxied request it read (health probes, which also
    /// reach it, are not counted: a test waiting for its request must not
    /// be woken by a probe's connection).
    async fn silent_backend() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if !head.starts_with(b"GET /health ") {
                        let _ = tx.send(());
                    }
                    // Held, unanswered, until the peer goes.
                    let _ = s.read(&mut chunk).await;
                });
            }
        });
        (addr, rx)
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A state with group `web` (drain timeout 3 s) over `backend` and a
    /// listener on `port`.
    fn state(backend: &str, port: u16) -> State {
        let mut s = State::with_nodes([7]);
        for c in [
            Command::CreateGroup {
                name: "web".into(),
                drain: DrainPolicy {
                    enabled: true,
                    timeout_ms: 3_000,
                },
                slow_start_ms: None,
            },
            Command::AddBackend {
                group: "web".into(),
                addr: backend.into(),
                weight: 100,
                at: 0,
            },
            Command::AddListener {
                port,
                group: "web".into(),
                request_timeout_ms: 30_000,
                tls: vec![],
            },
        ] {
            s.apply(&c).unwrap();
        }
        s
    }

    async fn data_plane(node_id: u64, reporter: Arc<Binds>) -> DataPlane {
        let settings = ProxySettings {
            node_id,
            ..ProxySettings::default()
        };
        DataPlane::start(settings, reporter).await.unwrap()
    }

    // C3: a node that learns of a listener's drain after its deadline
    // closes what is left at once.
    #[tokio::test]
    async fn a_listener_drain_learnt_after_its_deadline_closes_at_once() {
        let (backend, mut accepted) = silent_backend().await;
        let port = free_port();
        let dp = data_plane(7001, Arc::default()).await;
        let mut s = state(&backend.to_string(), port);
        dp.apply(Arc::new(s.clone())).await.unwrap();

        let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut busy = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        busy.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), accepted.recv())
            .await
            .expect("the request reached the backend");

        // Removed 10 s ago with a 3 s drain: the deadline passed long ago.
        let at = sluice_clock::now_ms() - 10_000;
        s.apply(&Command::RemoveListener { port, at }).unwrap();
        assert_eq!(s.listener_drains.len(), 1);
        dp.apply(Arc::new(s)).await.unwrap();

        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(1), busy.read_to_end(&mut answer))
            .await
            .expect("the request in flight was ended at once")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest))
            .await
            .expect("the idle connection was closed")
            .unwrap();
        assert_eq!(n, 0);
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
        dp.stop().await;
    }

    #[tokio::test]
    async fn a_taken_port_is_reported_once_retried_and_bound_when_free() {
        let (backend, _accepted) = silent_backend().await;
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let binds = Arc::new(Binds::default());
        let dp = data_plane(7002, binds.clone()).await;
        let s = Arc::new(state(&backend.to_string(), port));
        let generation = s.listeners[&port].generation;
        dp.apply(s.clone()).await.unwrap();
        dp.apply(s.clone()).await.unwrap();
        let seen = binds.seen();
        assert_eq!(seen.len(), 1, "one report per outcome: {seen:?}");
        let (p, g, outcome) = &seen[0];
        assert_eq!((*p, *g), (port, generation));
        let reason = outcome.clone().unwrap_err();
        assert!(reason.contains("in use"), "{reason}");
        assert_eq!(dp.listener_status(port).unwrap().status, reason);

        drop(taken);
        // The first retry comes 2 s after the failure.
        let start = Instant::now();
        while binds.seen().len() < 2 {
            assert!(
                start.elapsed() < BIND_RETRY_FIRST + Duration::from_secs(2),
                "no retry: {:?}",
                binds.seen()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(binds.seen()[1], (port, generation, Ok(())));
        assert_eq!(dp.listener_status(port).unwrap().status, "listening");
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_ok());
        dp.stop().await;
    }
}
