//! The `Listener` actor: binds one port on the node's data address and
//! spawns a linked `Connection` actor per accepted client connection. A
//! crashed `Connection` is logged and counted; the listener and every other
//! connection go on.
//!
//! A removed listener drains like a backend: it closes its socket at once
//! (the port is free), ends keep-alive on its connections (an idle one
//! closes now), lets requests and tunnels run, and at the drain's deadline
//! tells each connection to end what is left (R3). Its connections get
//! [`STOP_AFTER`] past the deadline to send their 500s and Close frames;
//! whatever remains then is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};
use sluice_model::{DrainId, UnixMillis};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument, Span};

use crate::connection::{Connection, ConnectionArgs};
use crate::error::ProxyError;
use crate::messages::{ConnectionMessage, ListenerMessage};
use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use crate::settings::ProxySettings;
use crate::wall_deadline::until_deadline;

/// How long past its drain deadline a removed listener's connections have
/// to finish closing (a tunnel's Close handshake takes at most a second)
/// before they are dropped.
pub(crate) const STOP_AFTER: Duration = Duration::from_secs(2);

pub(crate) struct Listener;

pub(crate) struct ListenerArgs {
    pub port: u16,
    pub generation: u64,
    pub socket: std::net::TcpListener,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<ProxySettings>,
}

pub(crate) struct ListenerState {
    metrics: Arc<Metrics>,
    /// The accept task, until the listener drains.
    accept: Option<JoinHandle<()>>,
    /// Ends the accept task (and so closes the socket).
    stop_accepting: CancellationToken,
    /// Set when the listener drains: no response keeps its connection.
    ending: Arc<AtomicBool>,
    /// The drain, once removed.
    drain: Option<ListenerDrain>,
    /// `listener{port, generation}`, entered by every handler.
    span: Span,
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
        info!(parent: &span, addr = %listener.local_addr()?, "listener accepting");
        let stop_accepting = CancellationToken::new();
        let ending = Arc::new(AtomicBool::new(false));
        let accept = tokio::spawn(
            accept_loop(
                listener,
                myself.get_cell(),
                Accepted {
                    port: args.port,
                    generation: args.generation,
                    ending: ending.clone(),
                    stop: stop_accepting.clone(),
                },
                args.routes,
                args.metrics.clone(),
                args.settings,
            )
            .instrument(span.clone()),
        );
        Ok(ListenerState {
            metrics: args.metrics,
            accept: Some(accept),
            stop_accepting,
            ending,
            drain: None,
            span,
        })
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
        myself.stop_children(None);
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
                // The socket closes before the answer: the port can be
                // bound again as soon as the caller hears back.
                state.stop_accepting.cancel();
                if let Some(mut accept) = state.accept.take() {
                    // It ends at its next turn; one stuck backing off
                    // after an accept error is cut short.
                    if tokio::time::timeout(Duration::from_millis(200), &mut accept)
                        .await
                        .is_err()
                    {
                        accept.abort();
                        let _ = accept.await;
                    }
                }
                state.ending.store(true, Ordering::SeqCst);
                let now = sluice_clock::now_ms();
                let wait = deadline.saturating_sub(now);
                info!(
                    drain = ?drain,
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
                        drain = ?drain,
                        connections = myself.get_children().len(),
                        "listener drain deadline: closing remaining work"
                    );
                    tell_connections(&myself, || ConnectionMessage::ListenerDeadline { drain });
                    myself.send_after(STOP_AFTER, || ListenerMessage::Stop);
                }
            }
        }
        ListenerMessage::Stop => {
            myself.stop(Some("drain deadline passed".into()));
        }
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
    generation: u64,
    ending: Arc<AtomicBool>,
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
        let args = ConnectionArgs {
            stream,
            peer,
            port,
            generation: accepted.generation,
            ending: accepted.ending.clone(),
            routes: routes.clone(),
            metrics: metrics.clone(),
            settings: settings.clone(),
            listener_span: tracing::Span::current(),
        };
        if let Err(e) = Actor::spawn_linked(None, Connection, args, supervisor.clone()).await {
            error!(port, error = %e, "could not start a connection actor");
        }
    }
}
