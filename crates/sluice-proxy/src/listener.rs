//! The `Listener` actor: binds one port on the node's data address and
//! spawns a linked `Connection` actor per accepted client connection. A
//! crashed `Connection` is logged and counted; the listener and every other
//! connection go on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use tracing::{error, info, warn};

use crate::connection::{Connection, ConnectionArgs};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use crate::ProxySettings;

pub(crate) struct Listener;

pub(crate) struct ListenerArgs {
    pub port: u16,
    pub socket: std::net::TcpListener,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<ProxySettings>,
}

pub(crate) struct ListenerState {
    port: u16,
    metrics: Arc<Metrics>,
    accept: AbortHandle,
}

impl Drop for ListenerState {
    fn drop(&mut self) {
        self.accept.abort();
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

impl Actor for Listener {
    type Msg = ();
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ListenerArgs,
    ) -> Result<ListenerState, ActorProcessingErr> {
        let listener = TcpListener::from_std(args.socket)?;
        info!(port = args.port, addr = %listener.local_addr()?, "listener accepting");
        let accept = tokio::spawn(accept_loop(
            listener,
            myself.get_cell(),
            args.port,
            args.routes,
            args.metrics.clone(),
            args.settings,
        ))
        .abort_handle();
        Ok(ListenerState {
            port: args.port,
            metrics: args.metrics,
            accept,
        })
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut ListenerState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(who, err) = event {
            Metrics::inc(&state.metrics.connection_crashes);
            warn!(port = state.port, connection = %who.get_id(), error = %err, "connection crashed; only it is lost");
        }
        Ok(())
    }
}

async fn accept_loop(
    listener: TcpListener,
    supervisor: ActorCell,
    port: u16,
    routes: Arc<ArcSwap<RoutingTable>>,
    metrics: Arc<Metrics>,
    settings: Arc<ProxySettings>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
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
            routes: routes.clone(),
            metrics: metrics.clone(),
            settings: settings.clone(),
        };
        if let Err(e) = Actor::spawn_linked(None, Connection, args, supervisor.clone()).await {
            error!(port, error = %e, "could not start a connection actor");
        }
    }
}
