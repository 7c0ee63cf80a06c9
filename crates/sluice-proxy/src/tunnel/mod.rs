//! WebSocket tunnels. After the backend agreed to the upgrade (101), sluice
//! relays raw bytes between the client's and the backend's TCP sockets, following
//! only the frame boundaries of each direction ([`frame`]); payloads pass
//! untouched. An idle tunnel holds no buffer: it waits for readiness, reads
//! into a stack buffer, and keeps bytes only while the receiving socket
//! would block.
//!
//! Closing: a Close frame from either side is passed on; once both sides
//! sent theirs (or ended), or [`CLOSE_GRACE`] after the first, both sockets
//! close. When a side ends without a Close (a crash, a reset), the other
//! side's connection is closed without one too, after what was already
//! relayed: its WebSocket library reports an abnormal closure (1006), so a
//! client can tell a backend that died from one that said goodbye, as
//! behind HAProxy or nginx. At the drain deadline (R3) each side gets Close 1001 (Going Away)
//! at the next frame boundary of the direction towards it: a frame under way
//! is finished first, and a side still mid-frame when the grace ends is cut
//! without a Close. What the sides send after that is read only to see
//! their Close.

mod frame;
#[cfg(test)]
mod frame_properties;

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::backend::{BackendRuntime, WorkGuard};
use crate::client_io::ClientIo;
use crate::going_away::GoingAway;
use crate::ready_io::ReadyIo;
use frame::{close_frame, FrameTracker, OP_CLOSE};

/// How long the sides may take to answer a Close (and to finish a frame
/// under way at the drain deadline).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The Close code sent at the drain deadline (Going Away).
const GOING_AWAY: u16 = 1001;

/// The reason of the Close 1001 sent at the drain deadline.
const GOING_AWAY_REASON: &str = "backend draining: deadline reached";

/// Bytes read from a socket at once (on the stack, never kept).
const READ_CHUNK: usize = 16 * 1024;

/// Reads per direction and poll before yielding to other tasks.
const READS_PER_POLL: usize = 16;

/// How a tunnel ended, for its access-log line and its backend's counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TunnelEnd {
    /// The drain deadline closed it.
    pub cut: bool,
    /// Bytes relayed from the client to the backend.
    pub bytes_up: u64,
    /// Bytes relayed from the backend to the client.
    pub bytes_down: u64,
    /// The Close code sluice sent the client itself (1001 at the deadline);
    /// a Close the backend sent is passed on unread.
    pub close_code: Option<u16>,
}

/// Relays one tunnel until either side closes or `shutdown` fires, then
/// calls `ended` with how it ended. Each side comes
/// with the bytes already read past its head (they go first); they are
/// taken before the relay's task starts, so the task holds only the
/// tunnel.
pub(crate) fn relay(
    client: (ClientIo, bytes::Bytes),
    backend_io: (TcpStream, bytes::Bytes),
    backend: Arc<BackendRuntime>,
    shutdown: CancellationToken,
    work: WorkGuard,
    ended: impl FnOnce(TunnelEnd),
) -> impl std::future::Future<Output = ()> {
    let tunnel = Tunnel::new(client, backend_io);
    async move {
        let end = match tunnel {
            Ok(mut tunnel) => {
                let cut = tunnel.run(&shutdown, &backend.going_away).await;
                tunnel.close_client().await;
                TunnelEnd {
                    cut,
                    bytes_up: tunnel.up.relayed,
                    bytes_down: tunnel.down.relayed,
                    close_code: tunnel.down.going_away_sent.then_some(GOING_AWAY),
                }
            }
            Err(e) => {
                debug!(group = %backend.group, backend = %backend.addr, error = %e, "websocket tunnel failed at its start");
                TunnelEnd::default()
            }
        };
        drop(work);
        ended(end);
    }
}

// === impl Tunnel ===

/// Both sockets of a tunnel and the state of each direction.
struct Tunnel {
    client: ClientIo,
    server: TcpStream,
    /// Client to backend.
    up: Half,
    /// Backend to client.
    down: Half,
    /// One side ended without a Close: only flush what is queued.
    aborted: bool,
}

impl Tunnel {
    /// Takes over both sockets; bytes already read past the heads go first.
    fn new(
        client: (ClientIo, bytes::Bytes),
        server: (TcpStream, bytes::Bytes),
    ) -> io::Result<Self> {
        let mut t = Tunnel {
            client: client.0,
            server: server.0,
            up: Half::new(true),
            down: Half::new(false),
            aborted: false,
        };
        t.up.take(&client.1, &t.server)?;
        t.down.take(&server.1, &t.client)?;
        Ok(t)
    }

    async fn run(&mut self, shutdown: &CancellationToken, going_away: &GoingAway) -> bool {
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        // Open: until a Close, the end of a side, an error or the deadline.
        let cut = loop {
            if self.up.closed || self.down.closed {
                break false;
            }
            if self.up.ended || self.down.ended {
                self.abort();
                break false;
            }
            tokio::select! {
                biased;
                _ = &mut cancelled => {
                    self.going_away();
                    // The client's Close 1001 goes out now; the rest once
                    // every tunnel of this backend told its client.
                    std::future::poll_fn(|cx| {
                        let _ = self.down.poll(cx, &self.server, &self.client);
                        Poll::Ready(())
                    })
                    .await;
                    going_away.client_told().await;
                    break true;
                }
                r = std::future::poll_fn(|cx| self.poll_io(cx)) => {
                    if r.is_err() {
                        return false;
                    }
                }
            }
        };
        // Closing, for at most the grace (boxed: the timer is only needed
        // now, and the idle task stays small).
        let closing = Box::pin(tokio::time::timeout(CLOSE_GRACE, async {
            while !self.finished() {
                if std::future::poll_fn(|cx| self.poll_io(cx)).await.is_err() {
                    break;
                }
            }
        }));
        if closing.await.is_err() {
            debug!("websocket close handshake not finished within the grace; closing");
        }
        cut
    }

    /// A TLS client's connection ends with `close_notify` (within the
    /// grace); a plain one is just closed when the tunnel is dropped.
    async fn close_client(&mut self) {
        if self.client.is_tls() {
            // Boxed: only TLS tunnels need it, at their end.
            let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, self.client.shutdown())).await;
        }
    }

    /// Ready when the state of a direction changed (a Close, an end, a
    /// queue flushed), or on a write error.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let up = self.up.poll(cx, &self.client, &self.server);
        let down = self.down.poll(cx, &self.server, &self.client);
        match (up, down) {
            (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
            (Poll::Ready(Ok(())), _) | (_, Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }

    /// Both directions are done: nothing left to write, and their sender
    /// sent its Close or ended (after an abort: nothing left to write).
    fn finished(&self) -> bool {
        [&self.up, &self.down]
            .iter()
            .all(|h| h.pending.is_empty() && (self.aborted || h.closed || h.ended))
    }

    /// The drain deadline: Close 1001 towards each side at the next frame
    /// boundary; from then on only the sides' Close answers matter.
    fn going_away(&mut self) {
        for h in [&mut self.up, &mut self.down] {
            if h.closed {
                h.mode = Mode::Discard;
            } else if h.frames.at_boundary() {
                let f = h.going_away_frame();
                h.pending.extend_from_slice(&f);
                h.mode = Mode::Discard;
            } else {
                h.mode = Mode::Finish;
            }
        }
    }

    /// A side ended without a Close: the other side's connection closes
    /// without one as soon as what was read before is written.
    fn abort(&mut self) {
        self.aborted = true;
    }
}

// === impl Half ===

/// What a direction does with the bytes it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Pass everything on.
    Relay,
    /// Deadline: pass on the rest of the current frame, then Close 1001.
    Finish,
    /// After our Close: read only to see the sender's Close.
    Discard,
}

/// One direction of a tunnel.
struct Half {
    frames: FrameTracker,
    /// Bytes read but not yet written: allocated only while the receiver
    /// would block, freed once written.
    pending: Vec<u8>,
    mode: Mode,
    /// The sender sent a Close frame.
    closed: bool,
    /// The sender's read side ended (end of stream or error).
    ended: bool,
    /// The receiver is the backend: frames sluice makes are masked.
    to_server: bool,
    /// Bytes passed on from the sender.
    relayed: u64,
    /// sluice's own Close 1001 went into this direction.
    going_away_sent: bool,
}

impl Half {
    fn new(to_server: bool) -> Half {
        Half {
            frames: FrameTracker::default(),
            pending: Vec::new(),
            mode: Mode::Relay,
            closed: false,
            ended: false,
            to_server,
            relayed: 0,
            going_away_sent: false,
        }
    }

    fn going_away_frame(&mut self) -> Vec<u8> {
        self.going_away_sent = true;
        close_frame(
            Some((GOING_AWAY, GOING_AWAY_REASON)),
            self.to_server.then(mask_key),
        )
    }

    /// Flushes what is queued, then reads from `from` and passes it on to
    /// `to`. Ready when the direction's state changed.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &impl ReadyIo,
        to: &impl ReadyIo,
    ) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            loop {
                ready!(to.poll_write_ready(cx))?;
                match to.try_write(&self.pending) {
                    Ok(n) => {
                        self.pending.drain(..n);
                        if self.pending.is_empty() {
                            self.pending = Vec::new();
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        // TLS records the receiver holds go out before more is read.
        ready!(to.poll_flush(cx))?;
        if self.ended {
            return Poll::Pending;
        }
        // On this call's stack: nothing is kept between polls.
        let mut buf = [0u8; READ_CHUNK];
        for _ in 0..READS_PER_POLL {
            if ready!(from.poll_read_ready(cx)).is_err() {
                self.ended = true;
                return Poll::Ready(Ok(()));
            }
            let n = match from.try_read(&mut buf) {
                Ok(0) => {
                    self.ended = true;
                    return Poll::Ready(Ok(()));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => {
                    self.ended = true;
                    return Poll::Ready(Ok(()));
                }
            };
            if self.take(&buf[..n], to)? || !self.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Takes bytes read from the sender: follows the frames, and passes on
    /// what the mode says (plus a Close 1001 where a finished frame ends).
    /// Returns whether the state changed.
    fn take(&mut self, bytes: &[u8], to: &impl ReadyIo) -> io::Result<bool> {
        let mut changed = false;
        let mut forward = 0;
        let mut inject = None;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, end) = self.frames.feed(rest);
            if self.mode != Mode::Discard {
                forward += used;
            }
            rest = &rest[used..];
            let Some(end) = end else { continue };
            if end.opcode == OP_CLOSE && !self.closed {
                self.closed = true;
                changed = true;
            }
            if self.mode == Mode::Finish {
                self.mode = Mode::Discard;
                changed = true;
                if end.opcode != OP_CLOSE {
                    inject = Some(self.going_away_frame());
                }
            }
        }
        self.relayed += forward as u64;
        self.send(to, &bytes[..forward])?;
        if let Some(f) = inject {
            self.send(to, &f)?;
        }
        Ok(changed)
    }

    /// Writes now what the receiver takes; queues the rest.
    fn send(&mut self, to: &impl ReadyIo, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(data);
            return Ok(());
        }
        match to.try_write(data) {
            Ok(n) => self.pending.extend_from_slice(&data[n..]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.pending.extend_from_slice(data),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// A masking key for a frame sluice sends a backend (RFC 6455 §5.3 wants
/// it unpredictable; std's randomly seeded hasher is enough for that).
fn mask_key() -> [u8; 4] {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    (h.finish() as u32).to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::*;

    const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    /// A frame as a peer sends it; masked (as a client must) with `KEY`.
    fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        let m = if masked { 0x80 } else { 0 };
        if payload.len() < 126 {
            f.push(m | payload.len() as u8);
        } else {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        if masked {
            f.extend_from_slice(&KEY);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
        } else {
            f.extend_from_slice(payload);
        }
        f
    }

    fn close(code: u16, masked: bool) -> Vec<u8> {
        frame(true, OP_CLOSE, &code.to_be_bytes(), masked)
    }

    /// One frame read by an application: opcode, masked, unmasked payload;
    /// `None` at the end of the stream.
    async fn read_frame(s: &mut TcpStream) -> Option<(u8, bool, Vec<u8>)> {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).await.ok()?;
        let masked = h[1] & 0x80 != 0;
        let len = match h[1] & 0x7F {
            126 => s.read_u16().await.ok()? as usize,
            127 => s.read_u64().await.ok()? as usize,
            n => n as usize,
        };
        let mut key = [0u8; 4];
        if masked {
            s.read_exact(&mut key).await.ok()?;
        }
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).await.ok()?;
        if masked {
            p.iter_mut().enumerate().for_each(|(i, b)| *b ^= key[i % 4]);
        }
        Some((h[0] & 0x0F, masked, p))
    }

    fn close_code(payload: &[u8]) -> u16 {
        u16::from_be_bytes([payload[0], payload[1]])
    }

    async fn expect_eof(s: &mut TcpStream) {
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut b))
            .await
            .expect("the tunnel closed the socket")
            .unwrap_or(0);
        assert_eq!(n, 0, "unexpected bytes {:?}", &b[..n]);
    }

    async fn nothing_for(s: &mut TcpStream, d: Duration) {
        let mut b = [0u8; 64];
        if let Ok(r) = tokio::time::timeout(d, s.read(&mut b)).await {
            panic!("expected silence, got {r:?}");
        }
    }

    /// A running tunnel between two test applications.
    struct Rig {
        /// The client application's socket.
        client: TcpStream,
        /// The backend application's socket.
        server: TcpStream,
        shutdown: CancellationToken,
        run: JoinHandle<bool>,
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (tunnel_side, _) = l.accept().await.unwrap();
        (app, tunnel_side)
    }

    /// `client_pre` / `server_pre`: bytes read past the heads.
    async fn rig(client_pre: &[u8], server_pre: &[u8]) -> Rig {
        let (client, c) = pair().await;
        let (server, s) = pair().await;
        let shutdown = CancellationToken::new();
        let mut t = Tunnel::new(
            (ClientIo::from(c), Bytes::copy_from_slice(client_pre)),
            (s, Bytes::copy_from_slice(server_pre)),
        )
        .unwrap();
        let token = shutdown.clone();
        let run = tokio::spawn(async move { t.run(&token, &GoingAway::default()).await });
        Rig {
            client,
            server,
            shutdown,
            run,
        }
    }

    /// The tunnel ends before the grace is over, returning `cut`, and
    /// closes both sockets.
    async fn closes_within_the_grace(mut r: Rig, start: Instant, cut: bool) {
        assert_eq!(ends(r.run, CLOSE_GRACE).await, cut);
        assert!(start.elapsed() < CLOSE_GRACE);
        expect_eof(&mut r.client).await;
        expect_eof(&mut r.server).await;
    }

    async fn ends(run: JoinHandle<bool>, within: Duration) -> bool {
        tokio::time::timeout(within, run)
            .await
            .expect("the tunnel ended")
            .unwrap()
    }

    #[tokio::test]
    async fn bytes_pass_verbatim_both_ways_leftovers_first() {
        let text = frame(true, 0x1, b"hello backend", true);
        let (first, rest) = text.split_at(5);
        let from_server = frame(true, 0x2, &[7; 300], false);
        let mut r = rig(first, &from_server).await;
        let mut more = rest.to_vec();
        more.extend(frame(false, 0x1, b"frag", true));
        more.extend(frame(true, 0x9, b"ping", true));
        more.extend(frame(true, 0x0, b"ment", true));
        r.client.write_all(&more).await.unwrap();
        let mut want = text.clone();
        want.extend_from_slice(&more[rest.len()..]);
        let mut got = vec![0u8; want.len()];
        r.server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);

        let pong = frame(true, 0xA, b"ping", false);
        r.server.write_all(&pong).await.unwrap();
        let mut got = vec![0u8; from_server.len() + pong.len()];
        r.client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [from_server, pong].concat());
        assert!(!r.run.is_finished());
    }

    #[tokio::test]
    async fn a_slow_receiver_still_gets_every_byte() {
        let mut r = rig(&[], &[]).await;
        let payload: Vec<u8> = (0..60_000u32).map(|i| (i % 253) as u8).collect();
        let f = frame(true, 0x2, &payload, true);
        let writer = tokio::spawn(async move {
            for _ in 0..80 {
                r.client.write_all(&f).await.unwrap();
            }
            r.client
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..80 {
            let (op, masked, p) = read_frame(&mut r.server).await.unwrap();
            assert_eq!((op, masked), (0x2, true));
            assert!(p == payload);
        }
        let _client = writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_close_from_either_side_is_passed_on_and_ends_the_tunnel() {
        for client_first in [true, false] {
            let mut r = rig(&[], &[]).await;
            let start = Instant::now();
            let (first, second) = if client_first {
                (&mut r.client, &mut r.server)
            } else {
                (&mut r.server, &mut r.client)
            };
            first.write_all(&close(1000, client_first)).await.unwrap();
            let (op, masked, p) = read_frame(second).await.unwrap();
            assert_eq!((op, masked, close_code(&p)), (OP_CLOSE, client_first, 1000));
            // The other side may finish a message before it answers.
            second
                .write_all(&frame(true, 0x1, b"last", !client_first))
                .await
                .unwrap();
            second.write_all(&close(1000, !client_first)).await.unwrap();
            assert_eq!(read_frame(first).await.unwrap().2, b"last");
            let (op, _, p) = read_frame(first).await.unwrap();
            assert_eq!((op, close_code(&p)), (OP_CLOSE, 1000));
            closes_within_the_grace(r, start, false).await;
        }
    }

    #[tokio::test]
    async fn at_the_deadline_both_sides_get_close_1001() {
        let mut r = rig(&[], &[]).await;
        r.client
            .write_all(&frame(true, 0x1, b"before", true))
            .await
            .unwrap();
        assert_eq!(read_frame(&mut r.server).await.unwrap().2, b"before");
        let start = Instant::now();
        r.shutdown.cancel();
        let (op, masked, p) = read_frame(&mut r.client).await.unwrap();
        assert_eq!((op, masked, close_code(&p)), (OP_CLOSE, false, 1001));
        assert_eq!(&p[2..], GOING_AWAY_REASON.as_bytes());
        let (op, masked, p) = read_frame(&mut r.server).await.unwrap();
        assert_eq!((op, masked, close_code(&p)), (OP_CLOSE, true, 1001));
        // Frames sent after sluice's Close are not passed on.
        r.server
            .write_all(&frame(true, 0x1, b"late", false))
            .await
            .unwrap();
        r.server.write_all(&close(1001, false)).await.unwrap();
        r.client.write_all(&close(1001, true)).await.unwrap();
        closes_within_the_grace(r, start, true).await;
    }

    #[tokio::test]
    async fn at_the_deadline_a_frame_under_way_is_finished_first() {
        let mut r = rig(&[], &[]).await;
        let big = frame(true, 0x2, &[9; 100], true);
        let (head, tail) = big.split_at(40);
        r.client.write_all(head).await.unwrap();
        let mut got = vec![0u8; head.len()];
        r.server.read_exact(&mut got).await.unwrap();
        r.shutdown.cancel();
        // Towards the client the stream is between frames: Close at once.
        let (op, _, p) = read_frame(&mut r.client).await.unwrap();
        assert_eq!((op, close_code(&p)), (OP_CLOSE, 1001));
        // Towards the backend a frame is under way: no Close yet.
        nothing_for(&mut r.server, Duration::from_millis(100)).await;
        let mut rest = tail.to_vec();
        rest.extend(frame(true, 0x1, b"dropped", true));
        rest.extend(close(1001, true));
        r.client.write_all(&rest).await.unwrap();
        let mut got = vec![0u8; tail.len()];
        r.server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, tail);
        let (op, masked, p) = read_frame(&mut r.server).await.unwrap();
        assert_eq!((op, masked, close_code(&p)), (OP_CLOSE, true, 1001));
        r.server.write_all(&close(1001, false)).await.unwrap();
        assert!(ends(r.run, Duration::from_secs(1)).await);
        expect_eof(&mut r.server).await;
    }

    #[tokio::test]
    async fn a_frame_not_finished_within_the_grace_is_cut() {
        let mut r = rig(&[], &[]).await;
        let big = frame(true, 0x2, &[9; 100], false);
        r.server.write_all(&big[..50]).await.unwrap();
        let mut got = vec![0u8; 50];
        r.client.read_exact(&mut got).await.unwrap();
        let start = Instant::now();
        r.shutdown.cancel();
        // The backend gets its Close, but cannot answer in the middle of
        // its own frame, which it never finishes.
        let (op, masked, p) = read_frame(&mut r.server).await.unwrap();
        assert_eq!((op, masked, close_code(&p)), (OP_CLOSE, true, 1001));
        assert!(ends(r.run, Duration::from_secs(3)).await);
        assert!(start.elapsed() >= CLOSE_GRACE);
        // The client never got a Close in the middle of its frame.
        expect_eof(&mut r.client).await;
    }

    #[tokio::test]
    async fn a_side_ending_without_close_closes_the_other_without_one() {
        // The backend vanishes after a last message: the client gets the
        // message, then the end of the stream, no Close frame.
        let mut r = rig(&[], &[]).await;
        let last = frame(true, 0x1, b"last words", false);
        r.server.write_all(&last).await.unwrap();
        drop(r.server);
        let (op, _, p) = read_frame(&mut r.client).await.unwrap();
        assert_eq!((op, &p[..]), (0x1, &b"last words"[..]));
        assert!(!ends(r.run, Duration::from_secs(1)).await);
        expect_eof(&mut r.client).await;

        // The client vanishes: the backend's connection just ends too.
        let mut r = rig(&[], &[]).await;
        drop(r.client);
        expect_eof(&mut r.server).await;
        assert!(!ends(r.run, Duration::from_secs(1)).await);
    }
}
