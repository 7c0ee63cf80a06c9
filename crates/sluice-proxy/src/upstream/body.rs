//! A response body read from its upstream connection as the client side
//! pulls it: framed by `Content-Length`, by chunks (RFC 9112 §7.1; chunk
//! extensions and trailers are dropped) or by the connection's close. At its
//! end a reusable connection goes back to the pool; dropped early, the
//! connection closes.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

use super::exchange::{Conn, READ_CHUNK};
use super::pool::UpstreamPool;
use super::UpstreamError;

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
}

enum State {
    /// Read whole with the head (or no body at all).
    Whole(Option<Bytes>),
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

// === impl UpstreamBody ===

impl UpstreamBody {
    pub(super) fn new(
        mut conn: Conn,
        framing: Framing,
        keep_alive: bool,
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

/// Reads more from the connection into its buffer; `Ok(0)` at EOF.
fn poll_fill(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<Result<usize, UpstreamError>> {
    if conn.buf.capacity() - conn.buf.len() < 1024 {
        conn.buf.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf)
        .map_err(|source| UpstreamError::Io { source })
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
                    match ready!(poll_fill(conn, cx)) {
                        Ok(0) => return this.fail(UpstreamError::Closed),
                        Ok(_) => {}
                        Err(e) => return this.fail(e),
                    }
                }
                State::Chunked(dec) => {
                    let Some(conn) = this.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    match decode_chunked(dec, &mut conn.buf) {
                        Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Decoded::End) => {
                            this.finish(true);
                            return Poll::Ready(None);
                        }
                        Ok(Decoded::NeedMore) => {}
                        Err(e) => return this.fail(e),
                    }
                    match ready!(poll_fill(conn, cx)) {
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
                    match ready!(poll_fill(conn, cx)) {
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

// === chunked decoding ===

enum Decoded {
    Data(Bytes),
    End,
    NeedMore,
}

/// Decodes what `buf` holds of a chunked body, consuming it.
fn decode_chunked(state: &mut Chunked, buf: &mut BytesMut) -> Result<Decoded, UpstreamError> {
    let invalid = |reason| UpstreamError::Invalid { reason };
    loop {
        match *state {
            Chunked::Size => {
                let Some(line) = take_line(buf)? else {
                    return Ok(Decoded::NeedMore);
                };
                let digits = line[..]
                    .split(|b| *b == b';')
                    .next()
                    .unwrap_or(b"")
                    .trim_ascii();
                let size = std::str::from_utf8(digits)
                    .ok()
                    .filter(|d| !d.is_empty() && d.len() <= 16)
                    .and_then(|d| u64::from_str_radix(d, 16).ok())
                    .ok_or(invalid("bad chunk size"))?;
                *state = if size == 0 {
                    Chunked::Trailers
                } else {
                    Chunked::Data(size)
                };
            }
            Chunked::Data(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = left.min(buf.len() as u64);
                let data = buf.split_to(take as usize).freeze();
                *state = if take == left {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(left - take)
                };
                return Ok(Decoded::Data(data));
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Decoded::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(invalid("chunk not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunked::Size;
            }
            Chunked::Trailers => {
                let Some(line) = take_line(buf)? else {
                    return Ok(Decoded::NeedMore);
                };
                if line.is_empty() {
                    return Ok(Decoded::End);
                }
            }
        }
    }
}

/// Takes one CRLF-terminated line off `buf` (without its CRLF).
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, UpstreamError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let mut line = buf.split_to(end + 2);
            line.truncate(end);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(UpstreamError::Invalid {
            reason: "chunk line too long",
        }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<Vec<u8>, UpstreamError> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decode_chunked(&mut state, &mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok(out),
                Decoded::NeedMore => {
                    assert!(fed < input.len(), "ran out of input");
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let input = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in 1..=input.len() {
            assert_eq!(
                decode_all(input, step).unwrap(),
                b"Wikipedia in\r\n\r\nchunks.",
                "step {step}"
            );
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        for bad in [&b"zz\r\n"[..], b"4\r\nWikiXX", b"\r\n"] {
            assert!(
                decode_all(bad, 64).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
