//! A backend's shared runtime (upstream pool and work counters, read on the
//! request path) and the `Backend` actor that keeps the membership of the
//! connections holding work on it and runs its drain.
//!
//! A backend's actor starts when the backend first has work on this node
//! (a connection sends it a request, or its drain starts): the state
//! applier starts it on request ([`BackendRuntime::register`]), so a
//! backend nothing has used yet costs its runtime alone; its traffic
//! counters and its pool's sweeper also wait for its first work.
//!
//! The `Backend` actor is the one place that knows which connections to
//! shut when a drain reaches its deadline: a connection registers once, the
//! first time it sends this backend work (never per request), with a token
//! that ends that work, and unregisters when it ends. The drain is the
//! actor's own: its [`DrainState`], a timer (`send_after`) for the absolute
//! deadline, the idle check after each piece of work ends, and the one
//! `drain_finished` report. At the deadline each registered token is
//! cancelled once; that alone ends waiting requests, streaming responses
//! and tunnels (see `messages.rs` for the whole sequence).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use sluice_model::DrainId;
use tokio_util::sync::CancellationToken;
use tracing::{info, Span};

use crate::backend_traffic::BackendTraffic;
use crate::drain::DrainState;
use crate::drain_mark::DrainMark;
use crate::error::DrainCause;
use crate::events::DataPlaneEvents;
use crate::going_away::GoingAway;
use crate::messages::{ApplierMessage, BackendMessage};
use crate::settings::ProxySettings;
use crate::upstream::UpstreamPool;
use crate::wall_deadline::until_deadline;

static NEXT_BACKEND_ID: AtomicU64 = AtomicU64::new(1);

/// What the request path shares with the control path for one backend
/// incarnation (a backend re-activated after a drain gets a new one).
pub(crate) struct BackendRuntime {
    /// Process-unique id of this incarnation.
    pub id: u64,
    pub group: Arc<str>,
    pub addr: Arc<str>,
    /// Idle connections to the backend, and how to open more.
    pub pool: Arc<UpstreamPool>,
    /// Orders the tunnels' closing at the drain deadline.
    pub going_away: GoingAway,
    pub in_flight: AtomicU64,
    pub tunnels: AtomicU64,
    /// Set when a drain starts; from then the end of each piece of work
    /// tells the actor, so an idle backend finishes at once (R2).
    pub draining: AtomicBool,
    /// Set when the drain deadline fired: late registrants are shut at once
    /// (read by the actor only).
    pub closed: AtomicBool,
    pub actor: OnceLock<ActorRef<BackendMessage>>,
    /// Who starts the actor when the backend first has work (none where a
    /// test starts it itself).
    starter: Option<ActorRef<ApplierMessage>>,
    /// Its traffic through this node (read by `/metrics`), allocated with
    /// its first request: a backend nothing has used costs no counters.
    traffic: OnceLock<Box<BackendTraffic>>,
    /// The drain it is in, for the access log.
    pub drain_mark: DrainMark,
}

impl BackendRuntime {
    pub fn new(
        group: Arc<str>,
        addr: Arc<str>,
        settings: &ProxySettings,
        starter: Option<ActorRef<ApplierMessage>>,
    ) -> Arc<Self> {
        let pool = UpstreamPool::new(
            addr.clone(),
            settings.upstream_connect_timeout,
            settings.upstream_idle_timeout,
            settings.upstream_max_idle_per_backend,
        );
        Arc::new(BackendRuntime {
            id: NEXT_BACKEND_ID.fetch_add(1, Ordering::Relaxed),
            group,
            addr,
            pool,
            going_away: GoingAway::default(),
            in_flight: AtomicU64::new(0),
            tunnels: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            actor: OnceLock::new(),
            starter,
            traffic: OnceLock::new(),
            drain_mark: DrainMark::default(),
        })
    }

    /// Registers a connection's `token` for its work on this backend with
    /// the backend's actor; the first work on this node has the applier
    /// start the actor and pass the registration on. Returns the actor if
    /// it ran already (the connection unregisters with it as it ends; one
    /// registered while the actor started stays until the backend stops).
    pub fn register(
        self: &Arc<Self>,
        connection: ActorId,
        token: CancellationToken,
    ) -> Option<ActorRef<BackendMessage>> {
        if let Some(actor) = self.actor.get() {
            let _ = actor.cast(BackendMessage::Register { connection, token });
            return Some(actor.clone());
        }
        if let Some(starter) = &self.starter {
            let _ = starter.cast(ApplierMessage::FirstWork {
                group: self.group.clone(),
                addr: self.addr.clone(),
                incarnation: self.id,
                connection,
                token,
            });
        }
        None
    }

    /// Its traffic counters, allocated on first use.
    pub fn traffic(&self) -> &BackendTraffic {
        self.traffic.get_or_init(Box::default)
    }

    /// Its traffic counters if it has had any traffic through this node.
    pub fn traffic_seen(&self) -> Option<&BackendTraffic> {
        self.traffic.get().map(|t| &**t)
    }

    /// Counts one request in flight until the guard drops.
    pub fn start_request(self: &Arc<Self>) -> WorkGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        WorkGuard {
            backend: self.clone(),
            tunnel: false,
        }
    }

    /// Counts one open tunnel until the guard drops.
    pub fn start_tunnel(self: &Arc<Self>) -> WorkGuard {
        self.tunnels.fetch_add(1, Ordering::Relaxed);
        WorkGuard {
            backend: self.clone(),
            tunnel: true,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.tunnels.load(Ordering::Acquire) == 0
    }

    fn work_ended(&self) {
        if self.draining.load(Ordering::Acquire) && self.is_idle() {
            if let Some(actor) = self.actor.get() {
                let _ = actor.cast(BackendMessage::WorkEnded);
            }
        }
    }
}

/// One request or tunnel on a backend; dropping it ends the work.
pub(crate) struct WorkGuard {
    backend: Arc<BackendRuntime>,
    tunnel: bool,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        let counter = if self.tunnel {
            &self.backend.tunnels
        } else {
            &self.backend.in_flight
        };
        counter.fetch_sub(1, Ordering::AcqRel);
        self.backend.work_ended();
    }
}

// === impl Backend (actor) ===

/// Keeps a backend's connection membership and runs its drain.
pub(crate) struct Backend;

pub(crate) struct BackendArgs {
    pub runtime: Arc<BackendRuntime>,
    pub events: Arc<dyn DataPlaneEvents>,
}

pub(crate) struct BackendState {
    runtime: Arc<BackendRuntime>,
    events: Arc<dyn DataPlaneEvents>,
    /// Each registered connection's shutdown token for this backend.
    connections: HashMap<ActorId, CancellationToken>,
    /// The drain in progress.
    drain: Option<DrainState>,
    /// `backend{group, backend}`, entered by every handler.
    span: Span,
}

impl BackendState {
    /// Reports the drain finished on this node if no work is left, once.
    fn report_if_idle(&mut self) {
        let Some(drain) = &mut self.drain else {
            return;
        };
        if self.runtime.is_idle() && drain.report_once() {
            info!(drain = %drain.id, "drain finished on this node");
            self.events
                .drain_finished(drain.id, &self.runtime.group, &self.runtime.addr);
        }
    }

    /// The deadline came: every registered connection's work on this
    /// backend ends, each told once, by its token.
    fn shut_all(&mut self, drain: DrainId) {
        if self.runtime.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        info!(
            %drain,
            connections = self.connections.len(),
            "drain deadline: closing remaining work"
        );
        // Every tunnel sends its client Close 1001 before any goes on with
        // the rest of closing (going_away.rs).
        self.runtime
            .going_away
            .arm(self.runtime.tunnels.load(Ordering::Acquire) as usize);
        for token in self.connections.values() {
            token.cancel();
        }
    }
}

impl Actor for Backend {
    type Msg = BackendMessage;
    type State = BackendState;
    type Arguments = BackendArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: BackendArgs,
    ) -> Result<BackendState, ActorProcessingErr> {
        let _ = args.runtime.actor.set(myself);
        let span = tracing::info_span!(
            "backend",
            group = %args.runtime.group,
            backend = %args.runtime.addr
        );
        Ok(BackendState {
            runtime: args.runtime,
            events: args.events,
            connections: HashMap::new(),
            drain: None,
            span,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: BackendMessage,
        state: &mut BackendState,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        let _entered = span.enter();
        match message {
            BackendMessage::Register { connection, token } => {
                if state.runtime.closed.load(Ordering::Acquire) {
                    token.cancel();
                }
                state.connections.insert(connection, token);
            }
            BackendMessage::Unregister(id) => {
                state.connections.remove(&id);
            }
            BackendMessage::StartDrain { drain, deadline } => {
                if state.drain.is_some() {
                    return Ok(());
                }
                let started = DrainState::new(drain, deadline);
                let now = sluice_clock::now_ms();
                let wait = started.wait_from(now);
                info!(%drain, deadline_in_ms = wait.as_millis() as u64, "drain started");
                state.drain = Some(started);
                state
                    .runtime
                    .drain_mark
                    .set(Some(drain), deadline, DrainCause::Backend);
                state.runtime.draining.store(true, Ordering::Release);
                match until_deadline(deadline, now) {
                    None => state.shut_all(drain),
                    Some(next) => {
                        myself.send_after(next, move || BackendMessage::DrainDeadline { drain });
                    }
                }
                state.report_if_idle();
            }
            BackendMessage::DrainDeadline { drain } => {
                let Some(d) = state.drain.filter(|d| d.id == drain) else {
                    return Ok(());
                };
                // The deadline is on the wall clock: look at it again.
                match until_deadline(d.deadline, sluice_clock::now_ms()) {
                    None => state.shut_all(drain),
                    Some(next) => {
                        myself.send_after(next, move || BackendMessage::DrainDeadline { drain });
                    }
                }
            }
            BackendMessage::WorkEnded => state.report_if_idle(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use tokio::sync::mpsc;

    use super::*;

    /// Sends each `drain_finished` it is told.
    struct Finished(Mutex<mpsc::UnboundedSender<DrainId>>);

    impl DataPlaneEvents for Finished {
        fn drain_finished(&self, drain: DrainId, _: &str, _: &str) {
            let _ = self.0.lock().unwrap().send(drain);
        }
    }

    async fn backend() -> (
        Arc<BackendRuntime>,
        ActorRef<BackendMessage>,
        mpsc::UnboundedReceiver<DrainId>,
    ) {
        let runtime = BackendRuntime::new(
            Arc::from("web"),
            Arc::from("127.0.0.1:9"),
            &ProxySettings::default(),
            None,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(
            None,
            Backend,
            BackendArgs {
                runtime: runtime.clone(),
                events: Arc::new(Finished(Mutex::new(tx))),
            },
        )
        .await
        .unwrap();
        (runtime, actor, rx)
    }

    fn register(actor: &ActorRef<BackendMessage>, n: u64) -> CancellationToken {
        let token = CancellationToken::new();
        actor
            .cast(BackendMessage::Register {
                connection: ActorId::Local(n),
                token: token.clone(),
            })
            .unwrap();
        token
    }

    fn drain(n: u64) -> DrainId {
        DrainId(n)
    }

    async fn cancelled_within(token: &CancellationToken, within: Duration) -> bool {
        tokio::time::timeout(within, token.cancelled())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn the_deadline_fires_on_time_and_shuts_each_connection() {
        let (runtime, actor, mut finished) = backend().await;
        let a = register(&actor, 1);
        let b = register(&actor, 2);
        let work = runtime.start_request();
        let start = Instant::now();
        let deadline = sluice_clock::now_ms() + 300;
        actor
            .cast(BackendMessage::StartDrain {
                drain: drain(1),
                deadline,
            })
            .unwrap();
        assert!(cancelled_within(&a, Duration::from_secs(2)).await);
        let fired = start.elapsed();
        assert!(fired >= Duration::from_millis(250), "early: {fired:?}");
        assert!(fired < Duration::from_millis(800), "late: {fired:?}");
        assert!(b.is_cancelled());
        assert!(finished.try_recv().is_err(), "reported with work left");
        drop(work);
        let reported = tokio::time::timeout(Duration::from_secs(2), finished.recv()).await;
        assert_eq!(reported.unwrap(), Some(drain(1)));
        actor.stop(None);
    }

    #[tokio::test]
    async fn a_deadline_already_past_fires_at_once() {
        let (runtime, actor, _finished) = backend().await;
        let a = register(&actor, 1);
        let _work = runtime.start_tunnel();
        actor
            .cast(BackendMessage::StartDrain {
                drain: drain(2),
                deadline: sluice_clock::now_ms() - 10_000,
            })
            .unwrap();
        assert!(cancelled_within(&a, Duration::from_millis(200)).await);
        actor.stop(None);
    }

    #[tokio::test]
    async fn an_idle_backend_reports_at_once_and_only_once() {
        let (runtime, actor, mut finished) = backend().await;
        let a = register(&actor, 1);
        actor
            .cast(BackendMessage::StartDrain {
                drain: drain(3),
                deadline: sluice_clock::now_ms() + 200,
            })
            .unwrap();
        let reported = tokio::time::timeout(Duration::from_millis(200), finished.recv()).await;
        assert_eq!(reported.unwrap(), Some(drain(3)));
        // More work coming and going, a second StartDrain and the deadline
        // itself report nothing more.
        drop(runtime.start_request());
        drop(runtime.start_tunnel());
        actor
            .cast(BackendMessage::StartDrain {
                drain: drain(3),
                deadline: sluice_clock::now_ms(),
            })
            .unwrap();
        assert!(cancelled_within(&a, Duration::from_secs(2)).await);
        actor.cast(BackendMessage::WorkEnded).unwrap();
        let again = tokio::time::timeout(Duration::from_millis(300), finished.recv()).await;
        assert!(again.is_err(), "reported twice: {again:?}");
        actor.stop(None);
    }

    #[tokio::test]
    async fn a_connection_registering_after_the_deadline_is_shut_at_once() {
        let (runtime, actor, _finished) = backend().await;
        let _work = runtime.start_request();
        let early = register(&actor, 1);
        actor
            .cast(BackendMessage::StartDrain {
                drain: drain(4),
                deadline: sluice_clock::now_ms() + 50,
            })
            .unwrap();
        assert!(cancelled_within(&early, Duration::from_secs(2)).await);
        let late = register(&actor, 2);
        assert!(cancelled_within(&late, Duration::from_millis(200)).await);
        actor.stop(None);
    }
}
