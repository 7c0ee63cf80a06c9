//! One client connection, request after request: read a head (within the
//! header read timeout), hand the request to the handler, write its
//! response, keep the connection or close it. A `101` answer hands its
//! head (for the caller to write), the socket and the bytes read past the
//! request to the caller (a tunnel); an HTTP/2 preface hands the socket and
//! the bytes read to the caller too (the HTTP/2 server, [`crate::http2`]).
//!
//! The read buffer exists only while a request is being read: a connection
//! waiting for its next request holds no buffer.
//!
//! [`KeepAlive`] lets the connection's owner end keep-alive (each further
//! response says `Connection: close`) and close a connection that waits for
//! its next request, with two atomic operations per request.
//!
//! A response body may be [`Cuttable`] (a drain deadline): a write that waits
//! for a client that does not read then ends too, and so does the
//! connection.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::client_io::ClientIo;
use crate::ready_io::ReadyIo;
use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use hyper::body::Body;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::debug;

use super::body::{BufferHome, RequestBody};
use super::request::{self, HeadError, Parsed, RequestHead};
use super::request_deadline::RequestDeadline;
use super::response::{encode_head, BodyWrite};
use crate::chunked;

/// Read buffer growth step.
const READ_CHUNK: usize = 8 * 1024;
/// Frames up to this size are copied together into one write.
const COALESCE: usize = 16 * 1024;
/// Bytes gathered for one write at most: a body whose frames are always
/// ready (a fast backend) still goes out as it comes, not all at the end.
const FLUSH_AT: usize = 64 * 1024;
/// After answering with `Connection: close`, how long the client's
/// remaining bytes are read and dropped (so the close is not a reset that
/// could destroy the answer before the client read it).
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and dropped while lingering.
const LINGER_BYTES: usize = 256 * 1024;
/// A connection waiting this long for its next request with no byte of it
/// is quiet: it gives up the handler's state, kept until then for a next
/// request that comes soon (back to back), and its owner its actor.
const QUIET_AFTER: Duration = Duration::from_millis(250);

/// What a connection's server needs to know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A request's head must arrive within this, counted from when the
    /// connection starts waiting for it (so it also ends idle keep-alive
    /// connections).
    pub header_read_timeout: Duration,
    /// Largest request head.
    pub max_head: usize,
}

/// The server is reading or answering a request.
const BUSY: u8 = 0;
/// The server waits for a request and has no byte of it.
const IDLE: u8 = 1;
/// The owner closed the connection while it was idle.
const CLOSED: u8 = 2;

/// A listener's say over the keep-alive of all its connections: open;
/// ending (each further response says `Connection: close`, a connection
/// that goes idle still waits for its next request); or closing (a
/// connection that goes idle closes too). HTTP/1 reads the state per
/// request; an HTTP/2 connection waits for it to change
/// ([`WindDown::ended`]) to send GOAWAY at once.
#[derive(Debug, Default)]
pub(crate) struct WindDown {
    state: AtomicU8,
    changed: Notify,
}

/// [`WindDown`]'s states.
const OPEN: u8 = 0;
const ENDING: u8 = 1;
const CLOSING: u8 = 2;

impl WindDown {
    /// Keep-alive as usual.
    pub(crate) fn open(&self) {
        self.state.store(OPEN, Ordering::SeqCst);
    }

    /// No further response keeps its connection; idle ones may still ask
    /// once more (a node drain's accept grace).
    pub(crate) fn end_keep_alive(&self) {
        self.state.store(ENDING, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// As [`WindDown::end_keep_alive`], and a connection that goes idle
    /// closes (the owner closes those idle now with
    /// [`KeepAlive::close_if_idle`]).
    pub(crate) fn close_idle(&self) {
        self.state.store(CLOSING, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Resolves once keep-alive ends (at once if it already has).
    pub(crate) async fn ended(&self) {
        loop {
            let mut changed = pin!(self.changed.notified());
            // Registered before the state is read: a change in between
            // still wakes it.
            changed.as_mut().enable();
            if self.ending() {
                return;
            }
            changed.await;
        }
    }

    /// Resolves once idle connections close (at once if they do).
    async fn closing_idle(&self) {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if self.closing() {
                return;
            }
            changed.await;
        }
    }

    fn ending(&self) -> bool {
        self.state.load(Ordering::SeqCst) >= ENDING
    }

    fn closing(&self) -> bool {
        self.state.load(Ordering::SeqCst) >= CLOSING
    }
}

/// What a connection's server and its owner share: keep-alive (see the
/// module docs) and the deadline of the request being answered.
pub(crate) struct KeepAlive {
    phase: AtomicU8,
    /// The listener's, shared by all its connections.
    wind_down: Arc<WindDown>,
    /// Set by the handler, served by the connection's timer.
    deadline: RequestDeadline,
}

impl KeepAlive {
    /// A connection's, under its listener's [`WindDown`].
    pub(crate) fn new(wind_down: Arc<WindDown>) -> KeepAlive {
        KeepAlive {
            phase: AtomicU8::new(BUSY),
            wind_down,
            deadline: RequestDeadline::default(),
        }
    }

    /// The handler's way to time its request with the connection's timer.
    pub(crate) fn request_deadline(&self) -> &RequestDeadline {
        &self.deadline
    }

    /// For the owner, after [`WindDown::close_idle`]: true when the
    /// connection waits for a request with no byte of it, and is now to be
    /// closed (the owner stops its server). Otherwise the server sees it
    /// when its response is under way or as it next goes idle.
    pub(crate) fn close_if_idle(&self) -> bool {
        self.phase
            .compare_exchange(IDLE, CLOSED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The server starts waiting for a request: false when it is to close
    /// instead (idle connections close). While keep-alive only ends (a node
    /// drain's accept grace) a connection waits for its next request, a new
    /// one for its first.
    fn idle(&self) -> bool {
        self.phase
            .compare_exchange(BUSY, IDLE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            && !self.wind_down.closing()
    }

    /// A request's first bytes came: false when the owner closed the
    /// connection meanwhile.
    fn busy(&self) -> bool {
        self.phase
            .compare_exchange(IDLE, BUSY, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    fn ending(&self) -> bool {
        self.wind_down.ending()
    }

    /// The listener's [`WindDown`] this connection lives under.
    pub(crate) fn wind_down(&self) -> &WindDown {
        &self.wind_down
    }
}

/// How a connection's service ended.
pub(crate) enum Ended<U> {
    Closed,
    /// sluice refused a request head with its own answer (sent, the
    /// connection then closed); `took` runs from when the connection began
    /// waiting for that head.
    Refused {
        refused: HeadError,
        took: Duration,
    },
    /// The handler answered `101`: its head (for the caller to write: a
    /// write here would keep the answer in every connection's task), the
    /// socket, the bytes the client sent past its request, and what the
    /// handler attached to the upgrade.
    Upgraded {
        upgrade: U,
        io: ClientIo,
        head: Vec<u8>,
        leftover: Bytes,
    },
    /// The client opened with the HTTP/2 preface: the socket and every
    /// byte read from it, the preface included.
    Http2 {
        io: TcpStream,
        read: Bytes,
    },
}

/// A response body that something outside may cut while it is written.
pub(crate) trait Cuttable {
    /// Ready once the body is cut; by default never.
    fn poll_cut(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let _ = cx;
        Poll::Pending
    }
}

/// Serves HTTP/1.1 on `io` until the connection ends. `handle` answers each
/// request, and may attach an upgrade to a `101` answer. `quiet` is called
/// when the connection becomes quiet (see [`QUIET_AFTER`]); from then
/// until its next request, and before its first, the server closes the
/// connection itself when the owner's [`WindDown`] closes idle ones.
///
/// The task that runs this future holds it for the connection's whole
/// life, idle or not, so what one request needs is kept out of it: the
/// request head becomes the handler's request within one statement, the
/// answer goes into the writer's box within another (their bytes never
/// wait in the task across an await), and a `101`'s head is written by the
/// caller.
pub(crate) async fn serve<B, U, H, F, Q>(
    io: Arc<ClientIo>,
    limits: Limits,
    owner: &KeepAlive,
    mut handle: H,
    mut quiet: Q,
) -> Ended<U>
where
    B: Body<Data = Bytes> + Cuttable,
    B::Error: std::fmt::Display,
    H: FnMut(Request<RequestBody>) -> F,
    F: Future<Output = (Response<B>, Option<U>)>,
    Q: FnMut(),
{
    let mut buf = BytesMut::new();
    // The connection's one timer: the header read timeout (which is also
    // the idle timeout), and before it, for a connection that waits with
    // no byte, the moment it counts as quiet; while a request is answered,
    // the request's timeout.
    let mut timer = pin!(tokio::time::sleep(limits.header_read_timeout));
    // The handler's and the writer's states, on the heap: made for the
    // first request, used again by each next one, given up once the
    // connection is quiet.
    let mut handler: Option<Pin<Box<F>>> = None;
    let mut writer = None;
    loop {
        let waited_from = Instant::now();
        if buf.is_empty() && !owner.idle() {
            return Ended::Closed;
        }
        let wait = WaitForHead {
            io: &io,
            limits,
            owner,
            waited_from,
        };
        let (handled, exchange) = match wait
            .run(
                &mut buf,
                timer.as_mut(),
                &mut handler,
                &mut writer,
                &mut quiet,
            )
            .await
        {
            Ok(head) => {
                let (request, exchange) = Exchange::start(head, &io, &mut buf);
                (reuse(&mut handler, handle(request)), exchange)
            }
            Err(HeadEnd::Closed | HeadEnd::TimedOut) => return Ended::Closed,
            Err(HeadEnd::Http2) => {
                // No request body holds the socket before a first head.
                // h2c is for plain connections: a TLS client that agreed
                // on http/1.1 by ALPN and then sends the preface is closed.
                return match Arc::try_unwrap(io) {
                    Ok(ClientIo::Plain(io)) => Ended::Http2 {
                        io,
                        read: buf.freeze(),
                    },
                    Ok(ClientIo::Tls(_)) | Err(_) => Ended::Closed,
                };
            }
            Err(HeadEnd::Refused(refused)) => {
                // Boxed: rare, and every connection's task would carry it.
                return Box::pin(refuse(io, refused, waited_from)).await;
            }
        };
        let answered =
            poll_fn(|cx| poll_handler(handled.as_mut(), timer.as_mut(), &owner.deadline, cx));
        let keep = match exchange.answer(answered.await, &mut buf, owner.ending()) {
            Answer::Upgrade { head, upgrade } => {
                return match Arc::try_unwrap(io) {
                    Ok(io) => Ended::Upgraded {
                        upgrade,
                        io,
                        head,
                        leftover: buf.freeze(),
                    },
                    Err(_) => Ended::Closed,
                };
            }
            Answer::Respond {
                head,
                body,
                write,
                keep,
            } => {
                // Written over the last response's finished state.
                reuse(&mut writer, write_body(io.clone(), head, body, write));
                keep
            }
        };
        if let Some(written) = writer.as_mut() {
            if let Err(e) = written.as_mut().await {
                debug!(error = %e, "response not sent whole; closing the client connection");
                return Ended::Closed;
            }
        }
        if !keep {
            // Boxed: rare, and every connection's task would carry it.
            Box::pin(linger_close(io)).await;
            return Ended::Closed;
        }
        if buf.is_empty() {
            // Idle until the next request: no buffer held.
            buf = BytesMut::new();
        }
    }
}

/// Polls the handler, with the connection's timer serving the request's
/// deadline (once the handler set it): the timer is kept no later than the
/// deadline (it may be earlier, set for a moment of the wait before: it is
/// moved on when it fires), and at the deadline the handler is told and
/// polled again.
fn poll_handler<F: Future>(
    mut handler: Pin<&mut F>,
    mut timer: Pin<&mut tokio::time::Sleep>,
    deadline: &RequestDeadline,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    if let Poll::Ready(out) = handler.as_mut().poll(cx) {
        return Poll::Ready(out);
    }
    loop {
        let Some(due) = deadline.due() else {
            return Poll::Pending;
        };
        if timer.deadline() > due {
            timer.as_mut().reset(due);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if timer.deadline() >= due {
            deadline.expire();
            return handler.poll(cx);
        }
        timer.as_mut().reset(due);
    }
}

// === impl WaitForHead ===

/// The wait for a connection's next request head.
struct WaitForHead<'a> {
    io: &'a ClientIo,
    limits: Limits,
    owner: &'a KeepAlive,
    /// When the wait began (the request's own timeout counts from here).
    waited_from: Instant,
}

impl WaitForHead<'_> {
    /// Reads until a whole head is in `buf`; a connection that stays quiet
    /// meanwhile gives up the handler's and writer's states and tells
    /// `quiet`. A client that sent part of a head and no more within the
    /// header read timeout is refused with `408`.
    async fn run<F, W, Q: FnMut()>(
        self,
        buf: &mut BytesMut,
        mut timer: Pin<&mut tokio::time::Sleep>,
        handler: &mut Option<Pin<Box<F>>>,
        writer: &mut Option<Pin<Box<W>>>,
        quiet: &mut Q,
    ) -> Result<RequestHead, HeadEnd> {
        let deadline = self.waited_from + self.limits.header_read_timeout;
        let idle = buf.is_empty();
        let mut quiet_at = (idle && (handler.is_some() || writer.is_some()))
            .then_some(self.waited_from + QUIET_AFTER);
        let mut waiting = idle.then_some(self.owner);
        loop {
            timer
                .as_mut()
                .reset(quiet_at.unwrap_or(deadline).min(deadline));
            // Nobody else closes a quiet (or new) connection.
            let on_its_own = handler.is_none() && writer.is_none();
            // No binding for the head: it would take its room in the task
            // beside the read's own state.
            match read_head(
                self.io,
                buf,
                self.limits,
                timer.as_mut(),
                waiting,
                on_its_own,
            )
            .await
            {
                Err(HeadEnd::TimedOut) if quiet_at.take_if(|at| *at < deadline).is_some() => {
                    if buf.is_empty() {
                        // Quiet: the connection keeps nothing it does not
                        // need while it waits.
                        *handler = None;
                        *writer = None;
                        quiet();
                    } else {
                        // A request began (and made the connection busy).
                        waiting = None;
                    }
                }
                // A client that sent part of a request is told; an idle
                // keep-alive connection just closes.
                Err(HeadEnd::TimedOut) if !buf.is_empty() => {
                    return Err(HeadEnd::Refused(HeadError {
                        status: StatusCode::REQUEST_TIMEOUT,
                        code: "header_timeout",
                        reason: "request headers not received in time",
                    }))
                }
                other => return other,
            }
        }
    }
}

/// Answers a refused head with sluice's own error, then closes.
async fn refuse<U>(io: Arc<ClientIo>, refused: HeadError, waited_from: Instant) -> Ended<U> {
    let _ = write_all(&io, &error_answer(&refused)).await;
    linger_close(io).await;
    Ended::Refused {
        refused,
        took: waited_from.elapsed(),
    }
}

// === impl Exchange ===

/// What the server keeps of a request while its handler answers it.
struct Exchange {
    method: http::Method,
    version: http::Version,
    keep_alive: bool,
    /// Where the request body leaves the read buffer when it ends.
    home: Option<BufferHome>,
}

/// What to write for an answer.
enum Answer<B, U> {
    /// A `101` the handler attached an upgrade to: its head, then the
    /// tunnel (the caller writes the head).
    Upgrade { head: Vec<u8>, upgrade: U },
    /// A response: its head, its body and how to frame it, and whether the
    /// connection stays open after it.
    Respond {
        head: Vec<u8>,
        body: B,
        write: BodyWrite,
        keep: bool,
    },
}

impl Exchange {
    /// The handler's request for `head`; its body (if any) reads on from
    /// `buf`, which it takes.
    fn start(
        head: RequestHead,
        io: &Arc<ClientIo>,
        buf: &mut BytesMut,
    ) -> (Request<RequestBody>, Exchange) {
        let RequestHead {
            parts,
            framing,
            keep_alive,
            expect_continue,
        } = head;
        let mut home = None;
        let body = if framing == request::BodyFraming::None {
            RequestBody::empty()
        } else {
            let h: BufferHome = Arc::new(Mutex::new(None));
            home = Some(h.clone());
            RequestBody::new(io.clone(), std::mem::take(buf), framing, expect_continue, h)
        };
        let exchange = Exchange {
            method: parts.method.clone(),
            version: parts.version,
            keep_alive,
            home,
        };
        (Request::from_parts(parts, body), exchange)
    }

    /// What to write for the handler's answer. The request body is gone
    /// with the request: its buffer comes back into `buf`, and with it
    /// whether the next request can be found after it. `ending`: the owner
    /// ends keep-alive.
    fn answer<B: Body, U>(
        self,
        (resp, upgrade): (Response<B>, Option<U>),
        buf: &mut BytesMut,
        ending: bool,
    ) -> Answer<B, U> {
        let mut body_complete = true;
        if let Some(home) = self.home {
            match home.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some((b, complete)) => {
                    *buf = b;
                    body_complete = complete;
                }
                None => body_complete = false,
            }
        }
        let (parts, body) = resp.into_parts();
        let mut keep = self.keep_alive && body_complete && !ending;
        let mut head = Vec::with_capacity(512);
        let write = encode_head(
            &parts,
            &body.size_hint(),
            &self.method,
            self.version,
            &mut keep,
            &mut head,
        );
        match (upgrade, parts.status) {
            (Some(upgrade), StatusCode::SWITCHING_PROTOCOLS) => Answer::Upgrade { head, upgrade },
            _ => Answer::Respond {
                head,
                body,
                write,
                keep,
            },
        }
    }
}

/// `next` in `slot`'s box (the finished future there dropped first), or in
/// a new box.
fn reuse<T>(slot: &mut Option<Pin<Box<T>>>, next: T) -> &mut Pin<Box<T>> {
    match slot.take() {
        Some(mut boxed) => {
            boxed.set(next);
            slot.insert(boxed)
        }
        None => slot.insert(Box::pin(next)),
    }
}

/// Why no request head came.
enum HeadEnd {
    /// The connection ended.
    Closed,
    /// The timer fired.
    TimedOut,
    /// A head sluice refuses: it answers for itself, then closes.
    Refused(HeadError),
    /// The HTTP/2 preface came (it stays in the buffer).
    Http2,
}

/// Reads until a whole head is in `buf`. `idle`: the connection has no
/// byte of it yet; `on_its_own`: the connection then closes when its
/// listener closes idle connections.
async fn read_head(
    io: &ClientIo,
    buf: &mut BytesMut,
    limits: Limits,
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    mut idle: Option<&KeepAlive>,
    on_its_own: bool,
) -> Result<RequestHead, HeadEnd> {
    loop {
        if !buf.is_empty() {
            match request::parse(buf, limits.max_head) {
                Ok(Parsed::Head(head)) => return Ok(head),
                Ok(Parsed::Partial) => {}
                Ok(Parsed::H2Preface) => return Err(HeadEnd::Http2),
                Err(e) => return Err(HeadEnd::Refused(e)),
            }
        }
        tokio::select! {
            biased;
            // The socket's own readiness slot, not `readable()`: no waiter
            // list to join and leave per request.
            r = poll_fn(|cx| io.poll_read_ready(cx)) => {
                if r.is_err() {
                    return Err(HeadEnd::Closed);
                }
            }
            _ = timer.as_mut() => return Err(HeadEnd::TimedOut),
            _ = closing_idle(idle.filter(|_| on_its_own)) => {
                if idle.is_some_and(KeepAlive::close_if_idle) {
                    debug!("listener drains: closing idle connection");
                    return Err(HeadEnd::Closed);
                }
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        match io.try_read_buf(buf) {
            Ok(0) => return Err(HeadEnd::Closed),
            Ok(_) => {
                if let Some(k) = idle.take() {
                    if !k.busy() {
                        return Err(HeadEnd::Closed);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(HeadEnd::Closed),
        }
    }
}

/// Resolves once `idle`'s listener closes idle connections; never
/// without one.
async fn closing_idle(idle: Option<&KeepAlive>) {
    match idle {
        Some(k) => k.wind_down.closing_idle().await,
        None => std::future::pending().await,
    }
}

/// sluice's own answer to a request head it refuses.
fn error_answer(e: &HeadError) -> Vec<u8> {
    let reason = e.status.canonical_reason().unwrap_or("");
    let body = format!("{} {reason}: {}\n", e.status.as_u16(), e.reason);
    format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\nvia: 1.1 sluice\r\n\
         x-sluice-error: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        e.status.as_str(),
        e.code,
        body.len()
    )
    .into_bytes()
}

/// Writes a response body after `head`: frames that are ready at once are
/// sent together with the head (a small answer is one write), later ones
/// as they come. A body that fails ends the connection after what arrived.
async fn write_body<B>(
    io: Arc<ClientIo>,
    head: Vec<u8>,
    body: B,
    write: BodyWrite,
) -> Result<(), String>
where
    B: Body<Data = Bytes> + Cuttable,
    B::Error: std::fmt::Display,
{
    let io = &*io;
    let mut out = head;
    if write == BodyWrite::None {
        return write_all(io, &out).await.map_err(|e| e.to_string());
    }
    let chunked = write == BodyWrite::Chunked;
    let mut body = pin!(body);
    loop {
        let ready = poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        let frame = match ready {
            Some(frame) => frame,
            None => {
                // Nothing more for now: send what is here, then wait.
                if !out.is_empty() {
                    write_unless_cut(io, &out, body.as_mut())
                        .await
                        .map_err(|e| e.to_string())?;
                    out.clear();
                }
                poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        match frame {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not passed on
                };
                if data.is_empty() {
                    continue;
                }
                if chunked {
                    let mut size = [0u8; 18];
                    out.extend_from_slice(chunked::size_line(data.len(), &mut size));
                }
                if data.len() <= COALESCE {
                    out.extend_from_slice(&data);
                } else {
                    write_unless_cut(io, &out, body.as_mut())
                        .await
                        .map_err(|e| e.to_string())?;
                    out.clear();
                    write_unless_cut(io, &data, body.as_mut())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if out.len() >= FLUSH_AT {
                    write_unless_cut(io, &out, body.as_mut())
                        .await
                        .map_err(|e| e.to_string())?;
                    out.clear();
                }
            }
            Some(Err(e)) => {
                // What arrived goes to the client; then the connection
                // ends, and the client sees an incomplete answer.
                let _ = write_unless_cut(io, &out, body.as_mut()).await;
                return Err(e.to_string());
            }
            None => {
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                return write_unless_cut(io, &out, body.as_mut())
                    .await
                    .map_err(|e| e.to_string());
            }
        }
    }
}

/// [`write_all`], but a body cut while the client's socket is full ends the
/// wait (the client is not reading; the connection ends).
async fn write_unless_cut<B: Cuttable>(
    io: &ClientIo,
    mut data: &[u8],
    mut body: Pin<&mut B>,
) -> std::io::Result<()> {
    while !data.is_empty() {
        match io.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                poll_fn(|cx| {
                    if body.as_mut().poll_cut(cx).is_ready() {
                        return Poll::Ready(Err(std::io::Error::other(
                            "response cut while the client was not reading",
                        )));
                    }
                    io.poll_write_ready(cx)
                })
                .await?
            }
            Err(e) => return Err(e),
        }
    }
    // TLS records encrypted but not yet sent go out too.
    poll_fn(|cx| {
        if body.as_mut().poll_cut(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::other(
                "response cut while the client was not reading",
            )));
        }
        io.poll_flush(cx)
    })
    .await
}

/// Writes all of `data`, waiting while the client's socket is full.
pub(crate) async fn write_all(io: &ClientIo, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match io.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                poll_fn(|cx| io.poll_write_ready(cx)).await?
            }
            Err(e) => return Err(e),
        }
    }
    poll_fn(|cx| io.poll_flush(cx)).await
}

/// Closes after an answer with `Connection: close`: the write side first,
/// then what the client still sends is read and dropped for a moment, so
/// the kernel does not answer it with a reset that would destroy the
/// answer on its way.
async fn linger_close(io: Arc<ClientIo>) {
    let Ok(mut io) = Arc::try_unwrap(io) else {
        return;
    };
    if io.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        let mut dropped = 0;
        // On the heap: a lingering connection is rare, every connection's
        // task would carry it otherwise.
        let mut scratch = vec![0u8; 4096];
        while dropped < LINGER_BYTES {
            if poll_fn(|cx| io.poll_read_ready(cx)).await.is_err() {
                return;
            }
            match io.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(n) => dropped += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Context;

    use hyper::body::Frame;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A body whose frames are always ready, as from a backend faster than
    /// the client: counts the frames taken.
    struct Endless {
        taken: Arc<AtomicUsize>,
        frames: usize,
    }

    impl Cuttable for Endless {}
    impl Cuttable for http_body_util::Full<Bytes> {}

    impl Body for Endless {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let n = self.taken.fetch_add(1, Ordering::SeqCst);
            Poll::Ready((n < self.frames).then(|| Ok(Frame::data(Bytes::from(vec![b'z'; 8192])))))
        }
    }

    /// A server on one accepted connection answering `200 ok` to
    /// everything; returns the client side and the server's task.
    async fn ok_server(keep_alive: Arc<KeepAlive>) -> (TcpStream, tokio::task::JoinHandle<()>) {
        ok_server_counting(keep_alive, Arc::new(AtomicUsize::new(0))).await
    }

    /// Header read timeout 30 s, heads up to 16 KiB.
    const TEST_LIMITS: Limits = Limits {
        header_read_timeout: Duration::from_secs(30),
        max_head: 16 * 1024,
    };

    /// A connection over loopback: its client side and its server side.
    async fn accepted() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    /// [`ok_server`], counting the times its connection turned quiet.
    async fn ok_server_counting(
        keep_alive: Arc<KeepAlive>,
        quiet: Arc<AtomicUsize>,
    ) -> (TcpStream, tokio::task::JoinHandle<()>) {
        let (client, server) = accepted().await;
        let limits = TEST_LIMITS;
        let task = tokio::spawn(async move {
            let _ = serve(
                Arc::new(ClientIo::from(server)),
                limits,
                &keep_alive,
                |_req| async {
                    let resp = Response::new(http_body_util::Full::new(Bytes::from_static(b"ok")));
                    (resp, None::<()>)
                },
                || {
                    quiet.fetch_add(1, Ordering::SeqCst);
                },
            )
            .await;
        });
        (client, task)
    }

    async fn exchange(client: &mut TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"ok") {
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the answer");
            got.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    /// A server on one accepted connection (header read timeout 30 s) whose
    /// handler times its work with the connection's timer: `/hang` never
    /// ends (timeout 300 ms), `/quick` takes 100 ms (timeout 300 ms),
    /// `/long` never ends (timeout 600 ms). Answers `done-ok` or `late-ok`.
    async fn timed_server() -> TcpStream {
        use super::super::RequestTimer;
        let (client, server) = accepted().await;
        let limits = TEST_LIMITS;
        let keep_alive = Arc::new(KeepAlive::new(Arc::new(WindDown::default())));
        tokio::spawn(async move {
            let ka = keep_alive.clone();
            let _ = serve(
                Arc::new(ClientIo::from(server)),
                limits,
                &keep_alive,
                move |req| {
                    let ka = ka.clone();
                    async move {
                        let timer = RequestTimer::Connection(ka.request_deadline());
                        let path = req.uri().path().to_owned();
                        let (work, timeout) = match path.as_str() {
                            "/quick" => (Some(Duration::from_millis(100)), 300),
                            "/long" => (None, 600),
                            _ => (None, 300),
                        };
                        let work = async move {
                            match work {
                                Some(d) => tokio::time::sleep(d).await,
                                None => std::future::pending().await,
                            }
                        };
                        let body = match timer.bound(Duration::from_millis(timeout), work).await {
                            Ok(()) => "done-ok",
                            Err(_) => "late-ok",
                        };
                        let resp = Response::new(http_body_util::Full::new(Bytes::from(body)));
                        (resp, None::<()>)
                    }
                },
                || {},
            )
            .await;
        });
        client
    }

    /// Asks for `path`; the answer's body and how long it took.
    async fn timed_ask(client: &mut TcpStream, path: &str) -> (String, Duration) {
        use tokio::io::AsyncReadExt;
        let start = Instant::now();
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        client.write_all(req.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"-ok") {
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
                .await
                .expect("an answer within 5 s")
                .unwrap();
            assert!(n > 0, "closed before the answer");
            got.extend_from_slice(&chunk[..n]);
        }
        let got = String::from_utf8(got).unwrap();
        let body = got.rsplit("\r\n").next().unwrap().to_owned();
        (body, start.elapsed())
    }

    #[tokio::test]
    async fn a_request_times_out_on_the_connections_timer_set_earlier_or_later() {
        let mut client = timed_server().await;
        // The timer waits for the header read timeout (30 s): it is brought
        // forward to the request's deadline.
        let (body, took) = timed_ask(&mut client, "/hang").await;
        assert_eq!(body, "late-ok");
        assert!(took >= Duration::from_millis(290), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // A request that ends in time is not cut by the last one's deadline.
        let (body, took) = timed_ask(&mut client, "/quick").await;
        assert_eq!(body, "done-ok", "{took:?}");
        // Right after an answer the timer is set for the quiet moment
        // (250 ms), before this request's deadline: it is moved on when it
        // fires, and the request ends at its own deadline.
        let (body, took) = timed_ask(&mut client, "/long").await;
        assert_eq!(body, "late-ok");
        assert!(took >= Duration::from_millis(590), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[tokio::test]
    async fn an_ending_listener_closes_after_the_next_answer() {
        let wind_down = Arc::new(WindDown::default());
        let keep_alive = Arc::new(KeepAlive::new(wind_down.clone()));
        let (mut client, task) = ok_server(keep_alive.clone()).await;
        let first = exchange(&mut client).await;
        assert!(!first.contains("connection: close"), "{first}");
        wind_down.end_keep_alive();
        // The server already waits for the next request, but hears nothing
        // of `ending` until then: a busy one is told by its answer.
        let second = exchange(&mut client).await;
        assert!(second.contains("connection: close"), "{second}");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server ended")
            .unwrap();
    }

    #[tokio::test]
    async fn only_an_idle_connection_is_closed_at_once() {
        let wind_down = Arc::new(WindDown::default());
        let keep_alive = Arc::new(KeepAlive::new(wind_down.clone()));
        let (mut client, _task) = ok_server(keep_alive.clone()).await;
        exchange(&mut client).await;
        // Waiting for its next request with no byte of it: idle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        wind_down.close_idle();
        assert!(keep_alive.close_if_idle());
        assert!(!keep_alive.close_if_idle(), "closed once");
        // A server that read a request's first bytes is busy.
        let busy = KeepAlive::new(Arc::new(WindDown::default()));
        assert!(busy.idle());
        assert!(busy.busy());
        assert!(!busy.close_if_idle());
        // While keep-alive only ends, one that goes idle (or a new one)
        // waits for its next request (answered with close).
        let ending = Arc::new(WindDown::default());
        ending.end_keep_alive();
        assert!(KeepAlive::new(ending).idle());
        // Once idle ones close, one that goes idle closes by itself.
        let late = KeepAlive::new(wind_down);
        assert!(!late.idle());
    }

    /// Waits for the server to close the connection (EOF), at most 5 s.
    async fn closed_by_server(client: &mut TcpStream) {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
            .await
            .expect("the server closed the connection");
        assert_eq!(read.unwrap(), 0, "closed with nothing more sent");
    }

    #[tokio::test]
    async fn a_quiet_connection_says_so_once_and_closes_itself_with_idle_ones() {
        let wind_down = Arc::new(WindDown::default());
        let keep_alive = Arc::new(KeepAlive::new(wind_down.clone()));
        let quiet = Arc::new(AtomicUsize::new(0));
        let (mut client, task) = ok_server_counting(keep_alive.clone(), quiet.clone()).await;
        exchange(&mut client).await;
        let start = Instant::now();
        while quiet.load(Ordering::SeqCst) == 0 {
            assert!(start.elapsed() < Duration::from_secs(5), "never quiet");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Nobody calls close_if_idle: the server hears it itself.
        wind_down.close_idle();
        closed_by_server(&mut client).await;
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server ended")
            .unwrap();
        assert_eq!(quiet.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_new_connection_closes_itself_with_idle_ones_and_a_busy_one_answers_first() {
        let wind_down = Arc::new(WindDown::default());
        let (mut new, _task) = ok_server(Arc::new(KeepAlive::new(wind_down.clone()))).await;
        let (mut busy, _task) = ok_server(Arc::new(KeepAlive::new(wind_down.clone()))).await;
        // A request's first bytes: busy until it is answered.
        busy.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        wind_down.close_idle();
        closed_by_server(&mut new).await;
        busy.write_all(b"Host: t\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        use tokio::io::AsyncReadExt;
        tokio::time::timeout(Duration::from_secs(5), busy.read_to_end(&mut got))
            .await
            .expect("answered, then closed")
            .unwrap();
        let got = String::from_utf8(got).unwrap();
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert!(got.contains("connection: close"), "{got}");
    }

    #[tokio::test]
    async fn a_body_that_is_always_ready_still_waits_for_the_client() {
        let (_client, server) = accepted().await;
        // 256 MiB: far more than the socket buffers; the client reads nothing.
        let taken = Arc::new(AtomicUsize::new(0));
        let body = Endless {
            taken: taken.clone(),
            frames: 32 * 1024,
        };
        let server = Arc::new(ClientIo::from(server));
        let write = write_body(server, Vec::new(), body, BodyWrite::Chunked);
        let waited = tokio::time::timeout(Duration::from_millis(500), write).await;
        assert!(waited.is_err(), "the write waits for the client");
        let taken = taken.load(Ordering::SeqCst);
        assert!(
            taken < 8 * 1024,
            "{taken} frames of 8 KiB taken while the client read nothing"
        );
    }

    /// [`Endless`], cut when its token is cancelled.
    struct CutEndless {
        body: Endless,
        cut: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    }

    impl Cuttable for CutEndless {
        fn poll_cut(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.cut.as_mut().poll(cx)
        }
    }

    impl Body for CutEndless {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Pin::new(&mut self.body).poll_frame(cx)
        }
    }

    #[tokio::test]
    async fn a_cut_body_ends_a_write_waiting_for_a_client_that_does_not_read() {
        let (_client, server) = accepted().await;
        let token = tokio_util::sync::CancellationToken::new();
        let body = CutEndless {
            body: Endless {
                taken: Arc::new(AtomicUsize::new(0)),
                frames: 32 * 1024,
            },
            cut: Box::pin(token.clone().cancelled_owned()),
        };
        let server = Arc::new(ClientIo::from(server));
        let write =
            tokio::spawn(
                async move { write_body(server, Vec::new(), body, BodyWrite::Chunked).await },
            );
        // Wait until the write is stuck on the full socket, then cut.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!write.is_finished(), "the write waits for the client");
        token.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(1), write)
            .await
            .expect("the cut ended the write")
            .unwrap();
        assert!(ended.is_err(), "{ended:?}");
    }
}
