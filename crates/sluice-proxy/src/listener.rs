//! The `Listener` actor: binds one port on the node's data address and
//! starts each accepted client connection, whose `Connection` actor it
//! supervises (linked while the connection has requests, see
//! `connection.rs`). A crashed `Connection` is logged and counted; the
//! listener and every other connection go on. It counts its connections
//! (accepted, open) for `/metrics` in its [`ListenerCounters`].
//!
//! A removed listener drains like a backend: it closes its socket at once
//! (the port is free), ends keep-alive on its connections (an idle one
//! closes now), lets requests and tunnels run, and at the drain's deadline
//! tells each connection to end what is left (R3). Its connections get
//! [`STOP_AFTER`] past the deadline to send their 500s and Close frames;
//! whatever remains then is dropped.
//!
//! A node that drains itself (N1) drains every listener alike, except that
//! the socket stays open for the node's accept grace (connections already
//! on their way are served, one request each) and closes with the idle
//! connections when it ends. The listener stays up through the drain; when
//! the node's drain ends it binds its port again and accepts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};
use sluice_model::{DrainId, UnixMillis};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument, Span};

use crate::connection::{self, ConnectionArgs};
use crate::drain_mark::DrainMark;
use crate::error::{DrainCause, ProxyError};
use crate::http1::WindDown;
use crate::listener_counters::ListenerCounters;
use crate::messages::{ConnectionMessage, ListenerMessage};
use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use crate::settings::ProxySettings;
use crate::wall_deadline::until_deadline;

/// How long past its drain deadline a removed listener's connections have
/// to finish closing (a tunnel's Close handshake takes at most a second)
/// before they are dropped.
pub(crate) const STOP_AFTER: Duration = Duration::from_secs(2);

/// Wait between attempts to bind a port again after a node drain.
const REBIND_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Listener;

pub(crate) struct ListenerArgs {
    pub port: u16,
    pub generation: u64,
    pub socket: std::net::TcpListener,
    /// The TLS configuration new connections are handshaken with (none:
    /// plain); the applier swaps it.
    pub tls: ListenerTls,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<ProxySettings>,
}

/// A listener's TLS configuration, shared by the applier (which swaps in
/// a new one when the listener's certificates change) and the accept loop
/// (which takes the current one per connection): none means plain.
pub(crate) type ListenerTls = Arc<ArcSwapOption<rustls::ServerConfig>>;

pub(crate) struct ListenerState {
    metrics: Arc<Metrics>,
    /// This listener's connection counters (registered under its port).
    counters: Arc<ListenerCounters>,
    /// The accept task, until the listener drains.
    accept: Option<JoinHandle<()>>,
    /// Ends the accept task (and so closes the socket).
    stop_accepting: CancellationToken,
    /// Ends keep-alive and closes idle connections as the listener drains.
    wind_down: Arc<WindDown>,
    /// The drain it (or its node) is in, as its connections' requests see
    /// it for their access-log lines.
    drain_mark: Arc<DrainMark>,
    /// The drain, once removed.
    drain: Option<ListenerDrain>,
    /// The node's own drain, while it lasts (N1).
    node_drain: Option<NodeDrainTimes>,
    /// What the accept loop needs (again, after a node drain ends).
    serving: Serving,
    /// `listener{port, generation}`, entered by every handler.
    span: Span,
}

/// What a listener serves with.
struct Serving {
    addr: SocketAddr,
    port: u16,
    generation: u64,
    tls: ListenerTls,
    routes: Arc<ArcSwap<RoutingTable>>,
    metrics: Arc<Metrics>,
    settings: Arc<ProxySettings>,
}

/// The node's drain as one listener runs it.
#[derive(Debug, Clone, Copy)]
struct NodeDrainTimes {
    /// When the socket closes (wall clock, Unix ms).
    accept_until: UnixMillis,
    /// When what is left is closed.
    deadline: UnixMillis,
    /// Whether the socket closed.
    grace_ended: bool,
    /// Whether the deadline came.
    fired: bool,
}

// === impl ListenerState ===

impl ListenerState {
    /// Runs an accept loop on `listener`.
    fn start_accepting(&mut self, myself: &ActorRef<ListenerMessage>, listener: TcpListener) {
        self.stop_accepting = CancellationToken::new();
        let accept = tokio::spawn(
            accept_loop(
                listener,
                myself.get_cell(),
                Accepted {
                    port: self.serving.port,
                    counters: self.counters.clone(),
                    generation: self.serving.generation,
                    wind_down: self.wind_down.clone(),
                    drain_mark: self.drain_mark.clone(),
                    tls: self.serving.tls.clone(),
                    stop: self.stop_accepting.clone(),
                },
                self.serving.routes.clone(),
                self.serving.metrics.clone(),
                self.serving.settings.clone(),
            )
            .instrument(self.span.clone()),
        );
        self.accept = Some(accept);
    }

    /// Ends the accept loop; the socket is closed when this returns.
    async fn stop_accepting(&mut self) {
        self.stop_accepting.cancel();
        if let Some(mut accept) = self.accept.take() {
            // It ends at its next turn; one stuck backing off after an
            // accept error is cut short.
            if tokio::time::timeout(Duration::from_millis(200), &mut accept)
                .await
                .is_err()
            {
                accept.abort();
                let _ = accept.await;
            }
        }
    }

    /// Binds the port again and accepts, after a node drain closed the
    /// socket; tried again every [`REBIND_EVERY`] while the port is taken.
    fn rebind(&mut self, myself: &ActorRef<ListenerMessage>) {
        if self.accept.is_some() || self.drain.is_some() || self.node_drain.is_some() {
            return;
        }
        let addr = self.serving.addr;
        let bound = bind(addr).and_then(|socket| {
            TcpListener::from_std(socket).map_err(|source| ProxyError::Bind { addr, source })
        });
        match bound {
            Ok(listener) => {
                self.start_accepting(myself, listener);
                info!("node drain ended: accepting again");
            }
            Err(e) => {
                warn!(error = %e, retry_in = ?REBIND_EVERY, "node drain ended but the port cannot be bound again");
                myself.send_after(REBIND_EVERY, || ListenerMessage::Rebind);
            }
        }
    }

    /// The node drain's steps whose time came; the timer is set again for
    /// the next one.
    async fn node_drain_tick(&mut self, myself: &ActorRef<ListenerMessage>) {
        let Some(mut times) = self.node_drain else {
            return;
        };
        let now = sluice_clock::now_ms();
        if !times.grace_ended && now >= times.accept_until {
            times.grace_ended = true;
            self.wind_down.close_idle();
            self.stop_accepting().await;
            info!(
                connections = myself.get_children().len(),
                "node drains: accept grace over, socket closed, idle connections closing"
            );
            tell_connections(myself, || ConnectionMessage::ListenerDraining {
                drain: None,
            });
        }
        if !times.fired && now >= times.deadline {
            times.fired = true;
            info!(
                connections = myself.get_children().len(),
                "node drain deadline: closing remaining work"
            );
            tell_connections(myself, || ConnectionMessage::ListenerDeadline {
                drain: None,
                node: true,
            });
            myself.send_after(STOP_AFTER, || ListenerMessage::NodeDrainTick);
        } else if times.fired {
            // STOP_AFTER past the deadline: what is left is dropped.
            myself.stop_children(None);
        }
        self.node_drain = Some(times);
        let next = [
            (!times.grace_ended).then_some(times.accept_until),
            (!times.fired).then_some(times.deadline),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(next) = next.and_then(|at| until_deadline(at, now)) {
            myself.send_after(next, || ListenerMessage::NodeDrainTick);
        }
    }
}

impl Drop for ListenerState {
    fn drop(&mut self) {
        self.stop_accepting.cancel();
        if let Some(accept) = &self.accept {
            accept.abort();
        }
    }
}

/// Binds the listener socket (before the actor exists, so a bind error is an
/// answer, not a crash).
pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ProxyError> {
    let bind_err = |source| ProxyError::Bind { addr, source };
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(bind_err)?;
    socket.set_reuseaddr(true).map_err(bind_err)?;
    socket.bind(addr).map_err(bind_err)?;
    let listener = socket.listen(4096).map_err(bind_err)?;
    listener.into_std().map_err(bind_err)
}

/// Tells every connection of `myself`.
fn tell_connections(myself: &ActorRef<ListenerMessage>, message: impl Fn() -> ConnectionMessage) {
    for child in myself.get_children() {
        let _ = child.send_message(message());
    }
}

/// Whether any connection of `myself` other than `gone` still runs.
fn has_connections(myself: &ActorRef<ListenerMessage>, gone: Option<ractor::ActorId>) -> bool {
    myself.get_children().iter().any(|c| {
        Some(c.get_id()) != gone
            && !matches!(c.get_status(), ActorStatus::Stopping | ActorStatus::Stopped)
    })
}

impl Actor for Listener {
    type Msg = ListenerMessage;
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ListenerArgs,
    ) -> Result<ListenerState, ActorProcessingErr> {
        let span = tracing::info_span!("listener", port = args.port, generation = args.generation);
        let listener = TcpListener::from_std(args.socket)?;
        let addr = listener.local_addr()?;
        info!(parent: &span, %addr, "listener accepting");
        let mut state = ListenerState {
            counters: args.metrics.listeners.register(args.port),
            metrics: args.metrics.clone(),
            accept: None,
            stop_accepting: CancellationToken::new(),
            wind_down: Arc::new(WindDown::default()),
            drain_mark: Arc::new(DrainMark::default()),
            drain: None,
            node_drain: None,
            serving: Serving {
                addr,
                port: args.port,
                generation: args.generation,
                tls: args.tls,
                routes: args.routes,
                metrics: args.metrics,
                settings: args.settings,
            },
            span,
        };
        state.start_accepting(&myself, listener);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: ListenerMessage,
        state: &mut ListenerState,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        handle_message(myself, message, state)
            .instrument(span)
            .await
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut ListenerState,
    ) -> Result<(), ActorProcessingErr> {
        debug!(parent: &state.span, "listener stopped");
        state
            .metrics
            .listeners
            .unregister(state.serving.port, &state.counters);
        myself.stop_children(None);
        // Connections with no actor now (new or quiet ones) close too.
        state.wind_down.close_idle();
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut ListenerState,
    ) -> Result<(), ActorProcessingErr> {
        let gone = match event {
            SupervisionEvent::ActorFailed(who, err) => {
                Metrics::inc(&state.metrics.connection_crashes);
                warn!(parent: &state.span, connection = %who.get_id(), error = %err, "connection crashed; only it is lost");
                who.get_id()
            }
            SupervisionEvent::ActorTerminated(who, _, _) => who.get_id(),
            _ => return Ok(()),
        };
        // A draining listener ends with its last connection.
        if state.drain.is_some() && !has_connections(&myself, Some(gone)) {
            info!(parent: &state.span, "listener drained: no connection left");
            myself.stop(Some("drained".into()));
        }
        Ok(())
    }
}

/// The listener's handler, run inside its span.
async fn handle_message(
    myself: ActorRef<ListenerMessage>,
    message: ListenerMessage,
    state: &mut ListenerState,
) -> Result<(), ActorProcessingErr> {
    match message {
        ListenerMessage::Drain {
            drain,
            deadline,
            reply,
        } => {
            if state.drain.is_none() {
                state.drain = Some(ListenerDrain {
                    id: drain,
                    deadline,
                    fired: false,
                });
                state.drain_mark.set(drain, deadline, DrainCause::Listener);
                // The socket closes before the answer: the port can be
                // bound again as soon as the caller hears back.
                state.stop_accepting().await;
                // The listener's own drain takes over from the node's.
                state.node_drain = None;
                state.wind_down.close_idle();
                let now = sluice_clock::now_ms();
                let wait = deadline.saturating_sub(now);
                info!(
                    drain = drain.map(tracing::field::display),
                    deadline_in_ms = wait,
                    "listener removed: not accepting, draining its connections"
                );
                tell_connections(&myself, || ConnectionMessage::ListenerDraining { drain });
                match until_deadline(deadline, now) {
                    None => myself.cast(ListenerMessage::Deadline)?,
                    Some(next) => {
                        myself.send_after(next, || ListenerMessage::Deadline);
                    }
                }
                if !has_connections(&myself, None) {
                    myself.stop(Some("drained".into()));
                }
            }
            let _ = reply.send(());
        }
        ListenerMessage::Deadline => {
            if let Some(d) = &mut state.drain {
                // The deadline is on the wall clock: look at it again.
                if let Some(next) = until_deadline(d.deadline, sluice_clock::now_ms()) {
                    if !d.fired {
                        myself.send_after(next, || ListenerMessage::Deadline);
                    }
                    return Ok(());
                }
                if !d.fired {
                    d.fired = true;
                    let drain = d.id;
                    info!(
                        drain = drain.map(tracing::field::display),
                        connections = myself.get_children().len(),
                        "listener drain deadline: closing remaining work"
                    );
                    tell_connections(&myself, || ConnectionMessage::ListenerDeadline {
                        drain,
                        node: false,
                    });
                    myself.send_after(STOP_AFTER, || ListenerMessage::Stop);
                }
            }
        }
        ListenerMessage::Stop => {
            myself.stop(Some("drain deadline passed".into()));
        }
        ListenerMessage::NodeDrain {
            drain,
            deadline,
            accept_until,
        } => {
            if state.drain.is_some() {
                // Removed: its own drain runs.
                return Ok(());
            }
            state.drain_mark.set(drain, deadline, DrainCause::Node);
            let times = match state.node_drain {
                Some(t) => NodeDrainTimes {
                    deadline,
                    accept_until: accept_until.min(t.accept_until),
                    ..t
                },
                None => {
                    info!(
                        deadline_in_ms = deadline.saturating_sub(sluice_clock::now_ms()),
                        "node drains: ending keep-alive"
                    );
                    NodeDrainTimes {
                        accept_until,
                        deadline,
                        grace_ended: false,
                        fired: false,
                    }
                }
            };
            if !times.grace_ended {
                state.wind_down.end_keep_alive();
            }
            state.node_drain = Some(times);
            state.node_drain_tick(&myself).await;
        }
        ListenerMessage::NodeDrainTick => state.node_drain_tick(&myself).await,
        ListenerMessage::NodeUndrain => {
            let Some(times) = state.node_drain.take() else {
                return Ok(());
            };
            state.drain_mark.clear();
            state.wind_down.open();
            if times.grace_ended {
                state.rebind(&myself);
            } else {
                info!("node drain ended: keeping connections alive again");
            }
        }
        ListenerMessage::Rebind => state.rebind(&myself),
    }
    Ok(())
}

/// A removed listener's drain.
#[derive(Debug, Clone, Copy)]
struct ListenerDrain {
    /// Its id (none when the listener left with no drain).
    id: Option<DrainId>,
    /// When what is left is closed (wall clock, Unix ms).
    deadline: UnixMillis,
    /// Whether the deadline came.
    fired: bool,
}

/// What each accepted connection is given by its listener.
struct Accepted {
    port: u16,
    /// The listener's counters.
    counters: Arc<ListenerCounters>,
    generation: u64,
    wind_down: Arc<WindDown>,
    drain_mark: Arc<DrainMark>,
    tls: ListenerTls,
    /// Ends the loop (the listener drains).
    stop: CancellationToken,
}

async fn accept_loop(
    listener: TcpListener,
    supervisor: ActorCell,
    accepted: Accepted,
    routes: Arc<ArcSwap<RoutingTable>>,
    metrics: Arc<Metrics>,
    settings: Arc<ProxySettings>,
) {
    let port = accepted.port;
    // Made once: no waiter to join and leave per accepted connection.
    let stop = accepted.stop.clone().cancelled_owned();
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut stop => return,
            next = listener.accept() => next,
        };
        let (stream, peer) = match next {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning; established connections keep working. Logged at
                // most once per interval (with the count left out): a flood
                // would otherwise write a line per retry.
                static LIMIT: crate::log_limit::LogLimit =
                    crate::log_limit::LogLimit::new(crate::log_limit::LOG_EVERY);
                if let Some(left_out) = LIMIT.admit() {
                    match crate::local_trouble::LocalTrouble::of(&e) {
                        Some(trouble) => {
                            warn!(port, error = %e, %trouble, left_out, "accept failed: this node is out of resources")
                        }
                        None => error!(port, error = %e, left_out, "accept failed"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        Metrics::inc(&metrics.connections_accepted);
        accepted.counters.accepted();
        let args = ConnectionArgs {
            stream,
            tls: accepted.tls.load_full(),
            peer,
            port,
            generation: accepted.generation,
            wind_down: accepted.wind_down.clone(),
            listener_drain: accepted.drain_mark.clone(),
            routes: routes.clone(),
            metrics: metrics.clone(),
            settings: settings.clone(),
            listener_span: tracing::Span::current(),
            supervisor: supervisor.clone(),
            counters: accepted.counters.clone(),
        };
        connection::start(args);
    }
}
