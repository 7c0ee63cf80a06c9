//! A response body read from its upstream connection as the client side
//! pulls it: framed by `Content-Length`, by chunks (RFC 9112 §7.1; chunk
//! extensions and trailers are dropped) or by the connection's close. At its
//! end a reusable connection goes back to the pool; dropped early, the
//! connection closes. The backend may stay silent for at most the body's
//! idle time at once (the listener's request timeout): a stalled body ends
//! with an error, so the client's connection is cut instead of held.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::conn::{Conn, READ_CHUNK};
use super::error::UpstreamError;
use super::pool::UpstreamPool;
use crate::chunked::{decode, ChunkError, Chunked, Decoded};

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A backend's response body.
pub(crate) struct UpstreamBody {
    state: State,
    /// The connection while the body is still being read from it.
    conn: Option<Conn>,
    keep_alive: bool,
    pool: Weak<UpstreamPool>,
    /// The longest silence allowed while the body is read.
    idle: Duration,
    /// Armed the first time a read has to wait (small answers read whole
    /// never need it), with when the body last made progress.
    stall: Option<(Pin<Box<Sleep>>, Instant)>,
}

enum State {
    /// Read whole with the head (or no body at all).
    Whole(Option<Bytes>),
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

// === impl UpstreamBody ===

impl UpstreamBody {
    pub(super) fn new(
        mut conn: Conn,
        framing: Framing,
        keep_alive: bool,
        idle: Duration,
        pool: &Arc<UpstreamPool>,
    ) -> UpstreamBody {
        let state = match framing {
            Framing::Empty => State::Whole(None),
            Framing::Length(0) => State::Whole(None),
            Framing::Length(n) if conn.buf.len() as u64 >= n => {
                State::Whole(Some(conn.buf.split_to(n as usize).freeze()))
            }
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunked::Size),
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = UpstreamBody {
            state,
            conn: Some(conn),
            keep_alive,
            pool: Arc::downgrade(pool),
            idle,
            stall: None,
        };
        if let State::Whole(_) = body.state {
            // Complete already: the connection can serve the next request
            // before this answer even reaches the client.
            body.finish(true);
        }
        body
    }

    /// Whether the whole body was read with the head: nothing more comes
    /// from the backend.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Whole(_))
    }

    /// The body is read to its end (`clean`) or abandoned.
    fn finish(&mut self, clean: bool) {
        if !matches!(self.state, State::Whole(_)) {
            self.state = State::Done;
        }
        if let Some(conn) = self.conn.take() {
            if clean && self.keep_alive && conn.buf.is_empty() {
                if let Some(pool) = self.pool.upgrade() {
                    pool.push_idle(conn);
                }
            }
        }
    }

    fn fail(&mut self, error: UpstreamError) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        self.finish(false);
        Poll::Ready(Some(Err(error)))
    }
}

/// Reads more from the connection into its buffer; `Ok(0)` at EOF. While
/// it waits, the stall timer runs: a silence longer than `idle` fails.
fn poll_fill(
    conn: &mut Conn,
    stall: &mut Option<(Pin<Box<Sleep>>, Instant)>,
    idle: Duration,
    cx: &mut Context<'_>,
) -> Poll<Result<usize, UpstreamError>> {
    if conn.buf.capacity() - conn.buf.len() < 1024 {
        conn.buf.reserve(READ_CHUNK);
    }
    match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
        Poll::Ready(r) => {
            if let Some((_, last)) = stall {
                *last = Instant::now();
            }
            Poll::Ready(r.map_err(|source| UpstreamError::Io { source }))
        }
        Poll::Pending => {
            let (timer, last) = stall.get_or_insert_with(|| {
                let now = Instant::now();
                (Box::pin(tokio::time::sleep_until(now + idle)), now)
            });
            loop {
                ready!(timer.as_mut().poll(cx));
                let due = *last + idle;
                if due <= Instant::now() {
                    return Poll::Ready(Err(UpstreamError::BodyStalled {
                        idle_ms: idle.as_millis() as u64,
                    }));
                }
                // Progress since the timer was set: wait from the last read.
                timer.as_mut().reset(due);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Whole(data) => return Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    let Some(conn) = this.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    if !conn.buf.is_empty() {
                        let take = (*left).min(conn.buf.len() as u64);
                        let data = conn.buf.split_to(take as usize).freeze();
                        *left -= take;
                        if *left == 0 {
                            this.finish(true);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match ready!(poll_fill(conn, &mut this.stall, this.idle, cx)) {
                        Ok(0) => return this.fail(UpstreamError::Closed),
                        Ok(_) => {}
                        Err(e) => return this.fail(e),
                    }
                }
                State::Chunked(dec) => {
                    let Some(conn) = this.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match decode(dec, &mut conn.buf) {
                        Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Decoded::End) => {
                            this.finish(true);
                            return Poll::Ready(None);
                        }
                        Ok(Decoded::NeedMore) => {}
                        Err(ChunkError { reason }) => {
                            return this.fail(UpstreamError::Invalid { reason })
                        }
                    }
                    match ready!(poll_fill(conn, &mut this.stall, this.idle, cx)) {
                        Ok(0) => return this.fail(UpstreamError::Closed),
                        Ok(_) => {}
                        Err(e) => return this.fail(e),
                    }
                }
                State::UntilClose => {
                    let Some(conn) = this.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match ready!(poll_fill(conn, &mut this.stall, this.idle, cx)) {
                        Ok(0) => {
                            this.finish(false);
                            return Poll::Ready(None);
                        }
                        Ok(_) => {}
                        Err(e) => return this.fail(e),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Whole(Some(d)) => SizeHint::with_exact(d.len() as u64),
            State::Whole(None) | State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(*n),
            State::Chunked(_) | State::UntilClose => SizeHint::default(),
        }
    }
}
