//! A backend's shared runtime (upstream pool and work counters, read on the
//! request path) and the `Backend` actor that keeps the membership of the
//! connections holding work on it.
//!
//! The `Backend` actor is the one place that knows which connections to tell
//! when a drain reaches its deadline: a connection registers once, the first
//! time it sends this backend work (never per request), and unregisters when
//! it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use sluice_model::{DrainId, UnixMillis};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::connection::ConnectionMessage;
use crate::data_plane::DrainReporter;
use crate::drain::{Drain, DrainArgs, DrainMessage};
use crate::going_away::GoingAway;
use crate::upstream::UpstreamPool;
use crate::ProxySettings;

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
    /// Set when the drain deadline fired: late registrants are shut at once.
    pub closed: AtomicBool,
    pub actor: OnceLock<ActorRef<BackendMessage>>,
}

impl BackendRuntime {
    pub fn new(group: Arc<str>, addr: Arc<str>, settings: &ProxySettings) -> Arc<Self> {
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
        })
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

/// Keeps a backend's connection membership and its drain.
pub(crate) struct Backend;

pub(crate) struct BackendArgs {
    pub runtime: Arc<BackendRuntime>,
    pub reporter: Arc<dyn DrainReporter>,
}

pub(crate) struct BackendState {
    runtime: Arc<BackendRuntime>,
    reporter: Arc<dyn DrainReporter>,
    /// Each registered connection and its shutdown token for this backend.
    connections: HashMap<ActorId, (ActorRef<ConnectionMessage>, CancellationToken)>,
    /// The drain in progress: its id, deadline and actor.
    drain: Option<(DrainId, UnixMillis, ActorRef<DrainMessage>)>,
}

impl BackendState {
    async fn spawn_drain(
        &mut self,
        myself: &ActorRef<BackendMessage>,
        drain: DrainId,
        deadline: UnixMillis,
    ) -> Result<(), ActorProcessingErr> {
        let (actor, _) = Actor::spawn_linked(
            None,
            Drain,
            DrainArgs {
                drain,
                deadline,
                backend: myself.clone(),
                runtime: self.runtime.clone(),
                reporter: self.reporter.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        self.drain = Some((drain, deadline, actor));
        Ok(())
    }
}

pub(crate) enum BackendMessage {
    /// A connection sends this backend work for the first time; the token
    /// ends that work.
    Register(ActorRef<ConnectionMessage>, CancellationToken),
    /// A connection ended.
    Unregister(ActorId),
    /// The backend starts draining (applied from the replicated state).
    StartDrain {
        drain: DrainId,
        deadline: UnixMillis,
    },
    /// The drain's deadline came: shut every registered connection's work.
    ShutdownAll { drain: DrainId },
    /// A request or tunnel ended while draining.
    WorkEnded,
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
        Ok(BackendState {
            runtime: args.runtime,
            reporter: args.reporter,
            connections: HashMap::new(),
            drain: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: BackendMessage,
        state: &mut BackendState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BackendMessage::Register(conn, token) => {
                if state.runtime.closed.load(Ordering::Acquire) {
                    let drain = state.drain.as_ref().map(|(d, _, _)| *d);
                    token.cancel();
                    let _ = conn.cast(ConnectionMessage::Shutdown {
                        backend: state.runtime.id,
                        drain,
                    });
                }
                state.connections.insert(conn.get_id(), (conn, token));
            }
            BackendMessage::Unregister(id) => {
                state.connections.remove(&id);
            }
            BackendMessage::StartDrain { drain, deadline } => {
                if state.drain.is_some() {
                    return Ok(());
                }
                state.runtime.draining.store(true, Ordering::Release);
                state.spawn_drain(&myself, drain, deadline).await?;
            }
            BackendMessage::ShutdownAll { drain } => {
                state.runtime.closed.store(true, Ordering::Release);
                info!(
                    group = %state.runtime.group,
                    backend = %state.runtime.addr,
                    %drain,
                    connections = state.connections.len(),
                    "drain deadline: closing remaining work"
                );
                // Tokens first: every tunnel and waiting request wakes and
                // sends its Close 1001 / 500 without a message in between.
                // The message follows, for a response already streaming
                // (only the connection's actor can close that).
                state
                    .runtime
                    .going_away
                    .arm(state.runtime.tunnels.load(Ordering::Acquire) as usize);
                for (_, token) in state.connections.values() {
                    token.cancel();
                }
                for (conn, _) in state.connections.values() {
                    let _ = conn.cast(ConnectionMessage::Shutdown {
                        backend: state.runtime.id,
                        drain: Some(drain),
                    });
                }
            }
            BackendMessage::WorkEnded => {
                if let Some((_, _, drain)) = &state.drain {
                    let _ = drain.cast(DrainMessage::CheckIdle);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut BackendState,
    ) -> Result<(), ActorProcessingErr> {
        myself.stop_children(None);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut BackendState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(who, err) => {
                warn!(backend = %state.runtime.addr, actor = %who.get_id(), error = %err, "drain actor failed; restarting it");
                // The deadline is absolute: a restarted drain keeps it, and
                // fires at once if it already passed.
                if let Some((drain, deadline, _)) = state.drain.take() {
                    state.spawn_drain(&myself, drain, deadline).await?;
                }
            }
            SupervisionEvent::ActorTerminated(who, _, _) => {
                debug!(backend = %state.runtime.addr, actor = %who.get_id(), "drain actor ended");
            }
            _ => {}
        }
        Ok(())
    }
}
