//! A client connection and its `Connection` actor. The connection serves
//! HTTP/1.1 on the socket ([`crate::http1`]: keep-alive, upgrades), or
//! HTTP/2 once the client opens with its preface ([`crate::http2`]: each
//! stream answered by the same request path), in a task of its own. Its
//! actor, linked under its listener, handles the listener's lifecycle
//! messages: `ListenerDraining` ends keep-alive (an idle connection closes
//! at once; an HTTP/2 one hears it from its `WindDown` and sends GOAWAY)
//! and `ListenerDeadline` ends all of its work as a backend's deadline
//! does.
//!
//! The actor is spawned with the connection's first request and stops when
//! the HTTP/1 connection turns quiet (a second with no byte of its next
//! request) or ends: an idle connection does not pay for an actor's
//! mailboxes. So every connection with a request, a response or a tunnel
//! under way is an actor; one without closes by itself when its listener
//! closes idle connections (it watches the listener's `WindDown`), and a
//! request that starts after its listener's drain deadline (whose message
//! went out before the actor existed) is cut as that message would have.
//!
//! A draining backend needs no message here: the connection registered a
//! token with it (once, the first time it sent the backend work), and at the
//! deadline the backend cancels that token. The request waiting on the
//! backend answers 500, the response streaming from it is cut (its body
//! watches the token, `forward.rs`), the tunnel sends Close 1001 (R3).
//!
//! Per request: one `ArcSwap` load, one atomic pick, two uncontended
//! per-connection locks (the actor's slot, this connection's shutdown token
//! for the chosen backend), and the backend pool's pop and push of an idle
//! upstream connection. The connection's span (`connection{peer}` under its
//! listener's, at debug level) is made once, with it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::{Request, Response};
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef};

use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument, Span};

use crate::access_log::AccessLog;
use crate::access_record::{self, AccessRecord, ConnectionFacts};
use crate::backend::{BackendRuntime, WorkGuard};
use crate::client_io::ClientIo;
use crate::client_socket::ClientSocket;
use crate::drain_mark::DrainMark;
use crate::error::{DrainCause, ForwardError};
use crate::forward::{
    check_request, downstream_response, error_response, is_websocket_upgrade, switching_response,
    upstream_request,
};
use crate::header_rules::ClientOrigin;
use crate::http1::{self, Ended, KeepAlive, RequestBody, RequestTimer, WindDown};
use crate::http2;
use crate::listener_counters::ListenerCounters;
use crate::messages::{BackendMessage, ConnectionMessage};
use crate::metrics::Metrics;
use crate::proxy_body::ProxyBody;
use crate::routing::RoutingTable;
use crate::settings::ProxySettings;
use crate::tls_handshake::{self, Handshaken};
use crate::tunnel;
use crate::upstream::{Answer, Progress, UpstreamError};

/// One client connection as its serving task and its actor both hold it;
/// dropped when the connection is over.
pub(crate) struct ConnectionCore {
    port: u16,
    /// The client's address, for the access log.
    peer: SocketAddr,
    /// The drain of the listener (or node) this connection came through.
    listener_drain: Arc<DrainMark>,
    /// Where each request's line goes, when the access log is on.
    access_log: Option<Arc<AccessLog>>,
    /// The listener's generation: a connection of a removed listener is
    /// routed by that listener's route, not by a newer one on its port.
    generation: u64,
    /// The client's IP and whether it came over TLS, for the
    /// `X-Forwarded-*` headers.
    origin: ClientOrigin,
    routes: Arc<ArcSwap<RoutingTable>>,
    metrics: Arc<Metrics>,
    /// This connection's key in its backends' registrations (not its
    /// actor's id: the actor comes and goes, registrations stay).
    id: ActorId,
    /// The listener: the actor is spawned under it.
    supervisor: ActorCell,
    /// The listener's counters: the connection's end is counted there.
    counters: Arc<ListenerCounters>,
    /// The actor, while the connection has one (see the module docs).
    actor: Mutex<ActorSlot>,
    registered: Mutex<Vec<Registration>>,
    /// The listener's or the node's drain deadline came (`CUT_*`): every
    /// token, even one made later, is cancelled (set and read under
    /// `registered`'s lock).
    cut: AtomicU8,
    /// Lets the listener end keep-alive and close this connection if idle.
    keep_alive: KeepAlive,
    /// `connection{peer}` under `listener{port, generation}` (the
    /// listener's own span when debug logging is off): the serving task and
    /// the tunnel run in it, the actor's handlers enter it.
    span: Span,
    /// Tasks alive (the HTTP server, tunnels); the actor stops at zero.
    live: AtomicUsize,
    /// The HTTP server task while it runs. Whoever takes it (the task as it
    /// ends, or the actor aborting it) counts its end; dropping the handle
    /// lets tokio free the finished task's memory.
    serve: Mutex<Option<AbortHandle>>,
    /// The tunnel task, once the connection was upgraded (HTTP/1 has at
    /// most one upgrade per connection).
    tunnel: Mutex<Option<AbortHandle>>,
}

/// Whether a connection has its actor now.
enum ActorSlot {
    None,
    /// Being spawned (another HTTP/2 stream's request goes on meanwhile).
    Starting,
    Running(ActorRef<ConnectionMessage>),
}

/// Keys of connections in their backends' registrations; apart from actor
/// ids (which count from zero).
static NEXT_ID: AtomicU64 = AtomicU64::new(1 << 62);

/// [`ConnectionCore::cut`]: not cut, cut by the listener's drain, by the
/// node's.
const NOT_CUT: u8 = 0;
const CUT_BY_LISTENER: u8 = 1;
const CUT_BY_NODE: u8 = 2;

struct Registration {
    backend: u64,
    token: CancellationToken,
    actor: Option<ActorRef<BackendMessage>>,
}

impl ConnectionFacts for ConnectionCore {
    fn port(&self) -> u16 {
        self.port
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn listener_drain(&self) -> &DrainMark {
        &self.listener_drain
    }

    fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_deref()
    }

    /// Which drain cut this connection's work: its listener's or its
    /// node's when one came, else the backend's own.
    fn cut_cause(&self) -> DrainCause {
        match self.cut.load(Ordering::Acquire) {
            CUT_BY_NODE => DrainCause::Node,
            CUT_BY_LISTENER => DrainCause::Listener,
            _ => DrainCause::Backend,
        }
    }
}

impl ConnectionCore {
    /// This connection's shutdown token for `backend`, registering with the
    /// backend the first time.
    fn token_for(&self, backend: &Arc<BackendRuntime>) -> CancellationToken {
        let mut regs = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = regs.iter().find(|r| r.backend == backend.id) {
            return r.token.clone();
        }
        let token = CancellationToken::new();
        if self.cut.load(Ordering::Acquire) != NOT_CUT {
            token.cancel();
        }
        let actor = backend.register(self.id, token.clone());
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
            self.retire();
        }
    }

    /// Spawns the connection's actor under its listener unless it has one:
    /// from now on the listener's drain messages reach it. Then, if the
    /// listener's or node's drain deadline already passed (its message
    /// went out before this actor was linked), ends this connection's
    /// work as that message would have.
    async fn ensure_actor(self: &Arc<Self>) {
        {
            let mut slot = self.actor.lock().unwrap_or_else(|p| p.into_inner());
            if !matches!(*slot, ActorSlot::None) {
                return;
            }
            *slot = ActorSlot::Starting;
        }
        let spawned = Actor::spawn_linked(None, Connection, self.clone(), self.supervisor.clone());
        if let Err(e) = spawned.await {
            *self.actor.lock().unwrap_or_else(|p| p.into_inner()) = ActorSlot::None;
            warn!(error = %e, "could not start a connection actor");
            return;
        }
        if let Some(drain) = self.listener_drain.get() {
            if sluice_clock::now_ms() >= drain.deadline {
                self.cut(drain.cause == DrainCause::Node);
            }
        }
    }

    /// The connection's actor stops (the connection is quiet, or over);
    /// the connection itself goes on.
    fn retire(&self) {
        let slot = std::mem::replace(
            &mut *self.actor.lock().unwrap_or_else(|p| p.into_inner()),
            ActorSlot::None,
        );
        if let ActorSlot::Running(actor) = slot {
            actor.stop(None);
        }
    }

    /// The listener's or the node's drain deadline: every request waiting
    /// on a backend, streaming response and tunnel of this connection
    /// wakes on its token, as at a backend's deadline; later ones too.
    fn cut(&self, node: bool) {
        let regs = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        let cut = if node { CUT_BY_NODE } else { CUT_BY_LISTENER };
        self.cut.store(cut, Ordering::Release);
        for r in regs.iter() {
            r.token.cancel();
        }
    }

    /// Takes the HTTP server task's handle, if it has not ended yet.
    fn take_serve(&self) -> Option<AbortHandle> {
        self.serve.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Ends the HTTP server task now (a response under way is cut).
    fn stop_serving(&self) {
        if let Some(serve) = self.take_serve() {
            serve.abort();
            self.task_ended();
        }
    }
}

pub(crate) struct Connection;

pub(crate) struct ConnectionArgs {
    pub stream: TcpStream,
    /// The listener's TLS configuration when it terminates TLS (taken at
    /// accept: a replacement applies to the next handshakes).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub peer: SocketAddr,
    pub port: u16,
    pub generation: u64,
    /// The listener's say over keep-alive on all its connections.
    pub wind_down: Arc<WindDown>,
    /// The drain the listener (or its node) is in.
    pub listener_drain: Arc<DrainMark>,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<ProxySettings>,
    /// The accepting listener's span (`listener{port, generation}`).
    pub listener_span: Span,
    /// The listener's actor: the connection's is spawned under it.
    pub supervisor: ActorCell,
    /// The listener's counters.
    pub counters: Arc<ListenerCounters>,
}

pub(crate) struct ConnectionState {
    ctx: Arc<ConnectionCore>,
    me: ActorId,
}

impl Drop for ConnectionState {
    fn drop(&mut self) {
        // Runs on a clean stop and after a crash alike. An actor that
        // retired is no longer in its connection's slot and leaves the
        // connection be; one stopped by its listener, or crashed, ends it.
        let ended = {
            let mut slot = self.ctx.actor.lock().unwrap_or_else(|p| p.into_inner());
            let mine = matches!(&*slot, ActorSlot::Running(a) if a.get_id() == self.me);
            if mine {
                *slot = ActorSlot::None;
            }
            mine
        };
        if !ended {
            return;
        }
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
    }
}

impl Drop for ConnectionCore {
    fn drop(&mut self) {
        // The connection is over: its server, tunnel, actor and requests'
        // records are gone.
        for r in self
            .registered
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if let Some(a) = &r.actor {
                let _ = a.cast(BackendMessage::Unregister(self.id));
            }
        }
        self.metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        self.counters.ended();
    }
}

/// Starts serving an accepted connection, in a task of its own; its actor
/// comes with its first request.
pub(crate) fn start(args: ConnectionArgs) {
    args.metrics
        .connections_open
        .fetch_add(1, Ordering::Relaxed);
    // A span of its own only when debug logging is on: an enabled span
    // costs ~0.5 KiB per connection held (measured with 9,500 idle
    // connections); at info the work runs in the listener's span.
    let span = tracing::debug_span!(parent: &args.listener_span, "connection", peer = %args.peer);
    let span = if span.is_disabled() {
        args.listener_span
    } else {
        span
    };
    let ctx = Arc::new(ConnectionCore {
        port: args.port,
        peer: args.peer,
        listener_drain: args.listener_drain,
        access_log: args.settings.access_log.clone(),
        generation: args.generation,
        origin: ClientOrigin {
            ip: http::HeaderValue::try_from(args.peer.ip().to_string())
                .unwrap_or_else(|_| http::HeaderValue::from_static("unknown")),
            https: args.tls.is_some(),
        },
        routes: args.routes,
        metrics: args.metrics,
        id: ActorId::Local(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        supervisor: args.supervisor,
        counters: args.counters,
        actor: Mutex::new(ActorSlot::None),
        registered: Mutex::new(Vec::new()),
        cut: AtomicU8::new(NOT_CUT),
        keep_alive: KeepAlive::new(args.wind_down),
        span,
        live: AtomicUsize::new(1),
        serve: Mutex::new(None),
        tunnel: Mutex::new(None),
    });
    // Stored under the lock the task takes as it ends, so even a task
    // that ends at once finds its handle.
    let mut slot = ctx.serve.lock().unwrap_or_else(|p| p.into_inner());
    let task =
        serve(ctx.clone(), args.stream, args.tls, args.settings).instrument(ctx.span.clone());
    *slot = Some(tokio::spawn(task).abort_handle());
    drop(slot);
}

impl Actor for Connection {
    type Msg = ConnectionMessage;
    type State = ConnectionState;
    type Arguments = Arc<ConnectionCore>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: Arc<ConnectionCore>,
    ) -> Result<ConnectionState, ActorProcessingErr> {
        let me = myself.get_id();
        {
            let mut slot = ctx.actor.lock().unwrap_or_else(|p| p.into_inner());
            // Ended while this actor was being spawned (an HTTP/2 stream's):
            // nobody would stop it. Checked under the slot's lock, which
            // `retire` takes after the count fell to zero.
            if ctx.live.load(Ordering::Acquire) == 0 {
                return Err("the connection ended before its actor started".into());
            }
            *slot = ActorSlot::Running(myself);
        }
        Ok(ConnectionState { ctx, me })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: ConnectionMessage,
        state: &mut ConnectionState,
    ) -> Result<(), ActorProcessingErr> {
        let _entered = state.ctx.span.enter();
        match message {
            ConnectionMessage::ListenerDraining { drain } => {
                if state.ctx.keep_alive.close_if_idle() {
                    debug!(
                        drain = drain.map(tracing::field::display),
                        "listener drains: closing idle connection"
                    );
                    state.ctx.stop_serving();
                }
            }
            ConnectionMessage::ListenerDeadline { drain, node } => {
                state.ctx.cut(node);
                debug!(
                    drain = drain.map(tracing::field::display),
                    "listener drain deadline: ending this connection's work"
                );
            }
            #[cfg(any(test, feature = "test-hooks"))]
            ConnectionMessage::Panic => panic!("connection asked to crash"),
        }
        Ok(())
    }
}

// === the HTTP server task ===

async fn serve(
    ctx: Arc<ConnectionCore>,
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    settings: Arc<ProxySettings>,
) {
    match tls {
        None => serve_http1(&ctx, ClientIo::from(stream), &settings).await,
        // Boxed: the handshake's state is large, and a plain connection's
        // task would carry it.
        Some(config) => {
            let tls = Box::pin(serve_tls(&ctx, stream, config, &settings));
            tls.await
        }
    }
    if ctx.take_serve().is_some() {
        ctx.task_ended();
    }
}

/// Handshakes TLS on `stream`, then serves what the client agreed on.
async fn serve_tls(
    ctx: &Arc<ConnectionCore>,
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    settings: &ProxySettings,
) {
    let handshake = tls_handshake::accept(stream, config, settings.header_read_timeout);
    match handshake.await {
        Ok(Handshaken::Http1(tls)) => serve_http1(ctx, ClientIo::from(tls), settings).await,
        Ok(Handshaken::Http2(tls)) => serve_http2(ctx, tls, settings).await,
        Err(e) => tls_handshake::failed(&ctx.metrics, ctx.port, &ctx.origin.ip, &e),
    }
}

/// Serves HTTP/1.1 on `stream` until the connection ends or is upgraded.
async fn serve_http1(ctx: &Arc<ConnectionCore>, stream: ClientIo, settings: &ProxySettings) {
    let stream = Arc::new(stream);
    let limits = http1::Limits {
        header_read_timeout: settings.header_read_timeout,
        max_head: settings.max_header_bytes,
    };
    // The request path's handle for interim answers; gone with the HTTP
    // server, so a tunnel keeps nothing of it.
    let client = ClientSocket::new(&stream);
    let handler_ctx = ctx.clone();
    // What follows HTTP/1 (a tunnel, or h2c with prior knowledge: the
    // HTTP/2 server reads the preface the HTTP/1 server found) is boxed,
    // and made apart from the match, without a binding for what the HTTP/1
    // server returned: an HTTP/1 connection's task carries neither their
    // state nor the answer that started them.
    let next = match http1::serve(
        stream,
        limits,
        &ctx.keep_alive,
        |req| handle_request(handler_ctx.clone(), req, Some(&client)),
        || ctx.retire(),
    )
    .await
    {
        Ended::Closed => None,
        Ended::Refused { refused, took } => {
            Metrics::inc(&ctx.metrics.requests_rejected);
            access_record::log_refused_head(&**ctx, refused.status.as_u16(), refused.code, took);
            None
        }
        Ended::Upgraded {
            upgrade,
            io,
            head,
            leftover,
        } => Some(AfterHttp1::Tunnel(Box::pin(open_tunnel(
            ctx, io, head, leftover, upgrade,
        )))),
        Ended::Http2 { io, read } => Some(AfterHttp1::Http2(Box::pin(serve_http2(
            ctx,
            http2::Rewind::new(read, io),
            settings,
        )))),
    };
    drop(client);
    match next {
        Some(AfterHttp1::Tunnel(open)) => open.await,
        Some(AfterHttp1::Http2(serve)) => serve.await,
        None => {}
    }
}

/// What a connection's task does once its HTTP/1 server handed the socket
/// on (each boxed by the caller).
enum AfterHttp1<T, H> {
    Tunnel(T),
    Http2(H),
}

/// Writes a `101`'s head, then starts the tunnel; if the client is gone,
/// the upgrade ends here (its backend side with it).
async fn open_tunnel(
    ctx: &Arc<ConnectionCore>,
    io: ClientIo,
    head: Vec<u8>,
    leftover: bytes::Bytes,
    upgrade: TunnelStart,
) {
    if http1::write_all(&io, &head).await.is_ok() {
        spawn_tunnel(ctx, (io, leftover), upgrade);
    }
}

/// Serves HTTP/2 on `io` (h2c after its preface, or a TLS stream that
/// agreed on `h2`): every stream is answered by [`handle_request`]
/// concurrently; a stream to a backend whose drain deadline passes gets
/// `500` and the others go on; the listener's wind-down sends GOAWAY.
pub(crate) async fn serve_http2<I>(ctx: &Arc<ConnectionCore>, io: I, settings: &ProxySettings)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = http1::Limits {
        header_read_timeout: settings.header_read_timeout,
        max_head: settings.max_header_bytes,
    };
    let handler_ctx = ctx.clone();
    http2::serve(io, limits, ctx.keep_alive.wind_down(), move |req| {
        answer_stream(handler_ctx.clone(), req)
    })
    .await;
}

/// One HTTP/2 stream's answer. Interim answers are not passed on (hyper's
/// HTTP/2 server cannot send a `1xx`), and no stream upgrades: HTTP/2
/// forbids `Connection` and `Upgrade`, so a `101` is a backend's error.
async fn answer_stream(ctx: Arc<ConnectionCore>, req: Request<RequestBody>) -> Response<ProxyBody> {
    match handle_request(ctx.clone(), req, None).await {
        (resp, None) => resp,
        (_, Some(start)) => {
            let source = UpstreamError::Invalid {
                reason: "101 Switching Protocols on an HTTP/2 stream",
            };
            let backend = start.switched.backend.addr.to_string();
            let mut record = start.record;
            record.tunnel = false;
            let err = ForwardError::Upstream { backend, source };
            let resp = fail(&ctx, &mut record, err);
            record.answered(resp.status().as_u16());
            resp.map(|body| body.with_record(record))
        }
    }
}

/// What a `101` hands to the tunnel once it went out to the client.
struct TunnelStart {
    switched: Switched,
    /// The upgrade request's record, which the tunnel ends.
    record: AccessRecord,
}

/// The backend's side of a `101`.
struct Switched {
    backend_io: (TcpStream, bytes::Bytes),
    backend: Arc<BackendRuntime>,
    shutdown: CancellationToken,
    work: WorkGuard,
}

/// Answers one request, and accounts it ([`AccessRecord`]): as its
/// response body is dropped, or as its tunnel ends.
async fn handle_request(
    ctx: Arc<ConnectionCore>,
    req: Request<RequestBody>,
    client: Option<&ClientSocket>,
) -> (Response<ProxyBody>, Option<TunnelStart>) {
    ctx.ensure_actor().await;
    let mut record = AccessRecord::new(ctx.clone(), &req);
    let (resp, tunnel) = {
        // Pinned where it is made: the request's state is large.
        let answer = std::pin::pin!(answer_request(&ctx, req, client, &mut record));
        answer.await
    };
    record.answered(resp.status().as_u16());
    match tunnel {
        Some(switched) => {
            record.tunnel = true;
            (resp, Some(TunnelStart { switched, record }))
        }
        None => (resp.map(|body| body.with_record(record)), None),
    }
}

/// Answers one request: checked, routed, forwarded; a `101` comes with
/// what its tunnel needs (its record still to be filled in). Interim
/// answers go to `client` (HTTP/1 only: there the request is timed by the
/// connection's timer, an HTTP/2 stream by its own).
async fn answer_request(
    ctx: &Arc<ConnectionCore>,
    req: Request<RequestBody>,
    client: Option<&ClientSocket>,
    record: &mut AccessRecord,
) -> (Response<ProxyBody>, Option<Switched>) {
    if let Err(e) = check_request(&req) {
        return (fail(ctx, record, e), None);
    }
    let route = {
        let table = ctx.routes.load();
        match table.routes.get(&ctx.port) {
            Some(r) if r.generation == ctx.generation => Some(r.clone()),
            _ => table.draining.get(&(ctx.port, ctx.generation)).cloned(),
        }
    };
    let Some(route) = route else {
        return (fail(ctx, record, ForwardError::NoRoute), None);
    };
    let Some(backend) = route.pick().cloned() else {
        let group = route.group.to_string();
        return (fail(ctx, record, ForwardError::NoBackend { group }), None);
    };
    record.backend = Some(backend.clone());
    let shutdown = ctx.token_for(&backend);
    let websocket = is_websocket_upgrade(&req);
    let work = backend.start_request();
    let version = req.version();
    let upstream = upstream_request(req, &backend.addr, websocket);
    #[cfg(feature = "test-headers")]
    let upstream = crate::test_headers::stamp(upstream, route.origin);
    let progress = Progress::default();
    // HTTP/1's one request at a time is timed by its connection's timer.
    let timer = match client {
        Some(_) => RequestTimer::Connection(ctx.keep_alive.request_deadline()),
        None => RequestTimer::Own,
    };
    // RFC 9110 §15.2: no 1xx for an HTTP/1.0 client.
    let interim = client.filter(|_| version != http::Version::HTTP_10);
    let answer = {
        // Pinned where it is made: the exchange's state is large, and moving
        // it into the timeout and the select would copy it each time.
        let send = std::pin::pin!(backend.pool.send(
            upstream,
            &ctx.origin,
            route.request_timeout,
            &progress,
            interim,
        ));
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => Err(ForwardError::DrainDeadline {
                backend: backend.addr.to_string(),
                cause: ctx.cut_cause(),
            }),
            r = timer.bound(route.request_timeout, send) => match r {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(UpstreamError::ClientBody { source })) => Err(ForwardError::BadRequestBody { source }),
                Ok(Err(source)) => Err(ForwardError::upstream(backend.addr.to_string(), source)),
                Err(_) if progress.waiting_for_client() => Err(ForwardError::ClientTimeout {
                    timeout_ms: route.request_timeout.as_millis() as u64,
                }),
                Err(_) => Err(ForwardError::Timeout {
                    backend: backend.addr.to_string(),
                    timeout_ms: route.request_timeout.as_millis() as u64,
                }),
            },
        }
    };
    record.bytes_in = progress.body_bytes();
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            if matches!(e, ForwardError::DrainDeadline { .. }) {
                Metrics::inc(&ctx.metrics.drain_cuts);
            }
            return (fail(ctx, record, e), None);
        }
    };
    let resp = match answer {
        Answer::Response(resp) => resp,
        Answer::Switching(head, io, leftover) if websocket => {
            Metrics::inc(&ctx.metrics.requests_proxied);
            // Counted as a tunnel before the request stops counting, so a
            // draining backend never looks idle in between.
            let tunnel_work = backend.start_tunnel();
            drop(work);
            Metrics::inc(&ctx.metrics.tunnels_opened);
            let start = Switched {
                backend_io: (io, leftover),
                backend,
                shutdown,
                work: tunnel_work,
            };
            return (switching_response(head), Some(start));
        }
        Answer::Switching(..) => {
            let source = UpstreamError::Invalid {
                reason: "101 Switching Protocols to a request without Upgrade",
            };
            let backend = backend.addr.to_string();
            let err = ForwardError::Upstream { backend, source };
            return (fail(ctx, record, err), None);
        }
    };
    Metrics::inc(&ctx.metrics.requests_proxied);
    if resp.body().is_complete() {
        // Read whole with its head (or empty): the backend is done with
        // this request, only the client has yet to get it.
        return (downstream_response(resp, None), None);
    }
    // The body watches the token: a drain deadline cuts it mid-stream.
    (downstream_response(resp, Some((work, shutdown))), None)
}

/// Runs a tunnel over the client's socket (with the bytes it sent past its
/// request) and the backend's.
fn spawn_tunnel(ctx: &Arc<ConnectionCore>, client: (ClientIo, bytes::Bytes), start: TunnelStart) {
    ctx.task_started();
    let task_ctx = ctx.clone();
    // No async block around it: its captures would stay in the task beside
    // the relay's own copies for the tunnel's whole life.
    let TunnelStart {
        switched: start,
        mut record,
    } = start;
    let fut = tunnel::relay(
        client,
        start.backend_io,
        start.backend,
        start.shutdown,
        start.work,
        move |end| {
            if end.cut {
                Metrics::inc(&task_ctx.metrics.drain_cuts);
            }
            record.cut = end.cut;
            record.bytes_in = end.bytes_up;
            record.bytes_out = end.bytes_down;
            record.close_code = end.close_code;
            // The tunnel's line, before the connection may stop.
            drop(record);
            task_ctx.task_ended();
        },
    );
    let handle = tokio::spawn(fut.instrument(ctx.span.clone()));
    *ctx.tunnel.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.abort_handle());
}

/// sluice's own answer to a request it could not forward. A drain cut or
/// the client's own error also closes the connection.
fn fail(ctx: &ConnectionCore, record: &mut AccessRecord, err: ForwardError) -> Response<ProxyBody> {
    record.failed(&err);
    let client_error = err.is_client_error();
    Metrics::inc(if client_error {
        &ctx.metrics.requests_rejected
    } else {
        &ctx.metrics.requests_failed
    });
    let close = client_error || matches!(err, ForwardError::DrainDeadline { .. });
    error_response(&err, close)
}
