//! A client's request body, read from its socket as the upstream side pulls
//! it: framed by `Content-Length` or by chunks. It owns the connection's
//! read buffer while it lives (bytes past the head are its first bytes) and
//! hands it back when dropped, with whether it was read to its end: bytes
//! after it are the next request, and a body left unread means the
//! connection cannot carry another one. An HTTP/2 stream's body
//! ([`crate::http2`]) is read by hyper's server and passed through.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use thiserror::Error;

use super::request::BodyFraming;
use crate::chunked::{self, ChunkError, Chunked};
use crate::client_io::ClientIo;
use crate::ready_io::ReadyIo;

/// Read buffer growth step.
const READ_CHUNK: usize = 8 * 1024;

/// Why a request body could not be read (downstream: the client's fault).
#[derive(Debug, Error)]
pub(crate) enum RequestBodyError {
    /// The body's chunked coding is malformed.
    #[error("malformed chunked body: {reason}")]
    Malformed { reason: &'static str },
    /// The client closed its connection before the body was whole.
    #[error("connection closed before the request body was complete")]
    Closed,
    /// Reading the client's socket failed.
    #[error("reading the request body failed: {source}")]
    Io { source: std::io::Error },
    /// The HTTP/2 stream's body failed (the client reset the stream, or
    /// its frames broke the protocol).
    #[error("reading the HTTP/2 request body failed: {source}")]
    Stream { source: hyper::Error },
}

/// Where a body hands the read buffer back: the buffer, and whether the
/// body was read to its end.
pub(crate) type BufferHome = Arc<Mutex<Option<(BytesMut, bool)>>>;

/// A request body (possibly none). Boxed while reading: requests without
/// a body, the most, carry two words through the upstream side.
pub(crate) enum RequestBody {
    Empty,
    Http1(Box<Reading>),
    /// An HTTP/2 stream's body.
    Http2(Box<Incoming>),
}

pub(crate) struct Reading {
    io: Arc<ClientIo>,
    buf: BytesMut,
    state: State,
    /// `100 Continue` is owed to the client before the first read.
    expect_continue: bool,
    home: BufferHome,
}

enum State {
    Length(u64),
    Chunked(Chunked),
    Done,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

// === impl RequestBody ===

impl RequestBody {
    /// A request without a body.
    pub fn empty() -> RequestBody {
        RequestBody::Empty
    }

    /// An HTTP/2 stream's body, as hyper's server hands it over.
    pub fn http2(body: Incoming) -> RequestBody {
        RequestBody::Http2(Box::new(body))
    }

    /// A body framed as `framing`, read from `io` after the bytes already
    /// in `buf`; the buffer goes back to `home` when the body is dropped.
    pub fn new(
        io: Arc<ClientIo>,
        buf: BytesMut,
        framing: BodyFraming,
        expect_continue: bool,
        home: BufferHome,
    ) -> RequestBody {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::Chunked(Chunked::Size),
        };
        RequestBody::Http1(Box::new(Reading {
            io,
            buf,
            state,
            expect_continue,
            home,
        }))
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let complete = matches!(self.state, State::Done);
        let buf = std::mem::take(&mut self.buf);
        *self.home.lock().unwrap_or_else(|p| p.into_inner()) = Some((buf, complete));
    }
}

impl Reading {
    /// Reads more from the socket into the buffer; `Ok(0)` at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, RequestBodyError>> {
        if self.expect_continue {
            // The client waits for this before it sends the body; the
            // socket has nothing else queued, so one small write goes out.
            self.expect_continue = false;
            let _ = self.io.try_write(CONTINUE);
        }
        loop {
            ready!(self.io.poll_read_ready(cx))
                .map_err(|source| RequestBodyError::Io { source })?;
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(READ_CHUNK);
            }
            match self.io.try_read_buf(&mut self.buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(source) => return Poll::Ready(Err(RequestBodyError::Io { source })),
            }
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let r = match self.get_mut() {
            RequestBody::Empty => return Poll::Ready(None),
            RequestBody::Http2(stream) => {
                return Pin::new(stream.as_mut())
                    .poll_frame(cx)
                    .map_err(|source| RequestBodyError::Stream { source })
            }
            RequestBody::Http1(r) => r,
        };
        loop {
            match &mut r.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if !r.buf.is_empty() {
                        let take = (*left).min(r.buf.len() as u64);
                        let data = r.buf.split_to(take as usize).freeze();
                        *left -= take;
                        if *left == 0 {
                            r.state = State::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(dec) => match chunked::decode(dec, &mut r.buf) {
                    Ok(chunked::Decoded::Data(data)) => {
                        return Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Ok(chunked::Decoded::End) => {
                        r.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Ok(chunked::Decoded::NeedMore) => {}
                    Err(ChunkError { reason }) => {
                        return Poll::Ready(Some(Err(RequestBodyError::Malformed { reason })))
                    }
                },
            }
            if ready!(r.poll_fill(cx))? == 0 {
                return Poll::Ready(Some(Err(RequestBodyError::Closed)));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Http1(r) => matches!(r.state, State::Done),
            RequestBody::Http2(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Http2(stream) => stream.size_hint(),
            RequestBody::Http1(r) => match &r.state {
                State::Done => SizeHint::with_exact(0),
                State::Length(n) => SizeHint::with_exact(*n),
                State::Chunked(_) => SizeHint::default(),
            },
        }
    }
}
