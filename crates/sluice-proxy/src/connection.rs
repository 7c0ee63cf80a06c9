//! The `Connection` actor: one per client connection. It runs hyper's HTTP/1
//! server on the socket (keep-alive, upgrades) in a task of its own and
//! handles lifecycle messages: `Shutdown` from a draining backend ends the
//! work this connection holds on it (R3).
//!
//! Per request: one `ArcSwap` load, one atomic pick, one uncontended
//! per-connection lock to find this connection's shutdown token for the
//! chosen backend, and the backend pool's pop and push of an idle upstream
//! connection. A connection registers with a backend once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sluice_model::DrainId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::backend::{BackendMessage, BackendRuntime};
use crate::error::ForwardError;
use crate::forward::{
    downstream_response, error_response, is_websocket_upgrade, switching_response,
    upstream_request, ProxyBody,
};
use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use crate::tunnel;
use crate::upstream::{Answer, UpstreamError};
use crate::ProxySettings;

/// What the request path and the actor share for one connection.
pub(crate) struct ConnCtx {
    port: u16,
    peer: SocketAddr,
    /// The client's IP as a header value, for `X-Forwarded-For`.
    peer_ip: http::HeaderValue,
    routes: Arc<ArcSwap<RoutingTable>>,
    metrics: Arc<Metrics>,
    me: ActorRef<ConnectionMessage>,
    registered: Mutex<Vec<Registration>>,
    /// Id of the backend whose response body is streaming now (0: none).
    pub(crate) streaming: AtomicU64,
    /// Tasks alive (the HTTP server, tunnels); the actor stops at zero.
    live: AtomicUsize,
    /// The HTTP server task while it runs. Whoever takes it (the task as it
    /// ends, or the actor aborting it) counts its end; dropping the handle
    /// lets tokio free the finished task's memory.
    serve: Mutex<Option<AbortHandle>>,
    /// The tunnel task, once the connection was upgraded (HTTP/1 has at
    /// most one upgrade per connection).
    tunnel: Mutex<Option<AbortHandle>>,
    header_timed_out: std::sync::atomic::AtomicBool,
}

struct Registration {
    backend: u64,
    token: CancellationToken,
    actor: Option<ActorRef<BackendMessage>>,
}

impl ConnCtx {
    /// This connection's shutdown token for `backend`, registering with the
    /// backend the first time.
    fn token_for(&self, backend: &BackendRuntime) -> CancellationToken {
        let mut regs = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = regs.iter().find(|r| r.backend == backend.id) {
            return r.token.clone();
        }
        let token = CancellationToken::new();
        let actor = backend.actor.get().cloned();
        if let Some(a) = &actor {
            let _ = a.cast(BackendMessage::Register(self.me.clone(), token.clone()));
        }
        // Most connections use one backend: no room for more until needed.
        regs.reserve_exact(1);
        regs.push(Registration {
            backend: backend.id,
            token: token.clone(),
            actor,
        });
        token
    }

    fn task_started(&self) {
        self.live.fetch_add(1, Ordering::AcqRel);
    }

    fn task_ended(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.me.stop(None);
        }
    }

    /// Takes the HTTP server task's handle, if it has not ended yet.
    fn take_serve(&self) -> Option<AbortHandle> {
        self.serve.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Messages a `Connection` handles.
pub(crate) enum ConnectionMessage {
    /// A backend's drain deadline came (or draining is off) and the backend
    /// cancelled this connection's token for it: a response of that
    /// backend already streaming can only end with the connection.
    Shutdown {
        backend: u64,
        drain: Option<DrainId>,
    },
    /// Crash on purpose (supervision tests).
    #[cfg(any(test, feature = "test-hooks"))]
    Panic,
}

pub(crate) struct Connection;

pub(crate) struct ConnectionArgs {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub port: u16,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<ProxySettings>,
}

pub(crate) struct ConnectionState {
    ctx: Arc<ConnCtx>,
}

impl Drop for ConnectionState {
    fn drop(&mut self) {
        // Runs on a clean stop and after a crash alike.
        if let Some(serve) = self.ctx.take_serve() {
            serve.abort();
        }
        if let Some(t) = self
            .ctx
            .tunnel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
        let me = self.ctx.me.get_id();
        for r in self
            .ctx
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if let Some(a) = &r.actor {
                let _ = a.cast(BackendMessage::Unregister(me));
            }
        }
        self.ctx
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Actor for Connection {
    type Msg = ConnectionMessage;
    type State = ConnectionState;
    type Arguments = ConnectionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ConnectionArgs,
    ) -> Result<ConnectionState, ActorProcessingErr> {
        args.metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        let ctx = Arc::new(ConnCtx {
            port: args.port,
            peer: args.peer,
            peer_ip: http::HeaderValue::from_str(&args.peer.ip().to_string())
                .expect("an IP address is a valid header value"),
            routes: args.routes,
            metrics: args.metrics,
            me: myself,
            registered: Mutex::new(Vec::new()),
            streaming: AtomicU64::new(0),
            live: AtomicUsize::new(1),
            serve: Mutex::new(None),
            tunnel: Mutex::new(None),
            header_timed_out: Default::default(),
        });
        // Stored under the lock the task takes as it ends, so even a task
        // that ends at once finds its handle.
        let mut slot = ctx.serve.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(tokio::spawn(serve(ctx.clone(), args.stream, args.settings)).abort_handle());
        drop(slot);
        Ok(ConnectionState { ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: ConnectionMessage,
        state: &mut ConnectionState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConnectionMessage::Shutdown { backend, drain } => {
                if state.ctx.streaming.load(Ordering::Acquire) == backend {
                    // The answer's head is already out: the only way left to
                    // end it is to close the connection.
                    debug!(peer = %state.ctx.peer, drain = ?drain, "closing connection mid-response");
                    if let Some(serve) = state.ctx.take_serve() {
                        serve.abort();
                        state.ctx.task_ended();
                    }
                }
            }
            #[cfg(any(test, feature = "test-hooks"))]
            ConnectionMessage::Panic => panic!("connection asked to crash"),
        }
        Ok(())
    }
}

// === the HTTP server task ===

async fn serve(ctx: Arc<ConnCtx>, stream: TcpStream, settings: Arc<ProxySettings>) {
    let io = TimeoutIo {
        inner: stream,
        partial: false,
        ctx: ctx.clone(),
    };
    let service_ctx = ctx.clone();
    let service = service_fn(move |req| handle_request(service_ctx.clone(), req));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes)
        .keep_alive(true)
        .writev(false);
    {
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        if let Err(e) = conn.as_mut().await {
            if e.is_timeout() {
                // Read by `TimeoutIo::drop` when the connection drops at
                // the end of this block.
                ctx.header_timed_out.store(true, Ordering::Release);
            }
            debug!(peer = %ctx.peer, error = %e, "client connection ended with an error");
        }
    }
    if ctx.take_serve().is_some() {
        ctx.task_ended();
    }
}

async fn handle_request(
    ctx: Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let route = ctx.routes.load().routes.get(&ctx.port).cloned();
    let Some(route) = route else {
        return Ok(fail(&ctx, ForwardError::NoRoute));
    };
    let Some(backend) = route.pick().cloned() else {
        return Ok(fail(
            &ctx,
            ForwardError::NoBackend {
                group: route.group.to_string(),
            },
        ));
    };
    let shutdown = ctx.token_for(&backend);
    let websocket = is_websocket_upgrade(&req);
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let work = backend.start_request();
    let upstream = upstream_request(req, &backend.addr, websocket);
    let answer = tokio::select! {
        biased;
        _ = shutdown.cancelled() => Err(ForwardError::DrainDeadline { backend: backend.addr.to_string() }),
        r = tokio::time::timeout(route.request_timeout, backend.pool.send(upstream, &ctx.peer_ip)) => match r {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(source)) => Err(ForwardError::Upstream { backend: backend.addr.to_string(), source }),
            Err(_) => Err(ForwardError::Timeout {
                backend: backend.addr.to_string(),
                timeout_ms: route.request_timeout.as_millis() as u64,
            }),
        },
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            if matches!(e, ForwardError::DrainDeadline { .. }) {
                Metrics::inc(&ctx.metrics.drain_cuts);
            }
            return Ok(fail(&ctx, e));
        }
    };
    let resp = match (answer, client_upgrade) {
        (Answer::Response(resp), _) => resp,
        (Answer::Switching(head, io, leftover), Some(client_upgrade)) => {
            Metrics::inc(&ctx.metrics.requests_proxied);
            // Counted as a tunnel before the request stops counting, so a
            // draining backend never looks idle in between.
            let tunnel_work = backend.start_tunnel();
            drop(work);
            Metrics::inc(&ctx.metrics.tunnels_opened);
            spawn_tunnel(
                &ctx,
                client_upgrade,
                (io, leftover),
                backend,
                shutdown,
                tunnel_work,
            );
            return Ok(switching_response(head));
        }
        (Answer::Switching(..), None) => {
            let source = UpstreamError::Invalid {
                reason: "101 Switching Protocols to a request without Upgrade",
            };
            let backend = backend.addr.to_string();
            return Ok(fail(&ctx, ForwardError::Upstream { backend, source }));
        }
    };
    Metrics::inc(&ctx.metrics.requests_proxied);
    if resp.body().is_complete() {
        // Read whole with its head (or empty): the backend is done with
        // this request, only the client has yet to get it.
        return Ok(downstream_response(resp, None));
    }
    ctx.streaming.store(backend.id, Ordering::Release);
    Ok(downstream_response(resp, Some((work, ctx.clone()))))
}

fn spawn_tunnel(
    ctx: &Arc<ConnCtx>,
    client_upgrade: hyper::upgrade::OnUpgrade,
    backend_io: (TcpStream, bytes::Bytes),
    backend: Arc<BackendRuntime>,
    shutdown: CancellationToken,
    work: crate::backend::WorkGuard,
) {
    ctx.task_started();
    let task_ctx = ctx.clone();
    // No async block around it: its captures would stay in the task beside
    // the relay's own copies for the tunnel's whole life.
    let fut = tunnel::relay::<TimeoutIo>(
        client_upgrade,
        backend_io,
        backend,
        shutdown,
        work,
        move |cut| {
            if cut {
                Metrics::inc(&task_ctx.metrics.drain_cuts);
            }
            task_ctx.task_ended();
        },
    );
    let handle = tokio::spawn(fut);
    *ctx.tunnel.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.abort_handle());
}

fn fail(ctx: &ConnCtx, err: ForwardError) -> Response<ProxyBody> {
    Metrics::inc(&ctx.metrics.requests_failed);
    let close = matches!(err, ForwardError::DrainDeadline { .. });
    error_response(&err, close)
}

// === TimeoutIo ===

/// The client socket, remembering whether a request was partly read, so a
/// header read timeout can answer `408` to a slow client and close an idle
/// keep-alive connection silently.
struct TimeoutIo {
    inner: TcpStream,
    partial: bool,
    ctx: Arc<ConnCtx>,
}

const TIMEOUT_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nvia: 1.1 sluice\r\nconnection: close\r\ncontent-length: 58\r\n\r\n408 Request Timeout: request headers not received in time\n";

impl Drop for TimeoutIo {
    fn drop(&mut self) {
        if self.partial && self.ctx.header_timed_out.load(Ordering::Acquire) {
            // Nothing else is buffered for this socket: a non-blocking write
            // of one small answer goes through.
            let _ = self.inner.try_write(TIMEOUT_408);
        }
    }
}

impl tunnel::RawSocket for TimeoutIo {
    fn tcp(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsyncRead for TimeoutIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.partial = true;
        }
        r
    }
}

impl AsyncWrite for TimeoutIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                self.partial = false;
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                self.partial = false;
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
