//! [`ProxyBody`]: every response body sluice sends a client, a backend's
//! streamed body or one sluice made itself.
//!
//! A backend's streamed body watches its connection's shutdown token for
//! that backend: when a drain deadline (the backend's or the listener's)
//! cancels it, the body fails and the client's connection ends after what
//! already arrived (R3); a write waiting for a client that does not read
//! ends too ([`Cuttable`]). No message reaches the connection for it.
//!
//! A body carries its request's [`AccessRecord`]: it counts the bytes it
//! passes on and whether a deadline cut it, and drops the record (which
//! accounts the request) when the body itself is dropped, after its last
//! byte or as it is abandoned.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::access_record::AccessRecord;
use crate::backend::WorkGuard;
use crate::http1::Cuttable;
use crate::upstream::{UpstreamBody, UpstreamError};

/// A body that never waits is still cut within this many frames.
const WATCH_EVERY: u8 = 32;

pin_project! {
    /// Every response body sluice sends a client, with its request's
    /// record (none on a `101`: the tunnel takes the record).
    pub(crate) struct ProxyBody {
        #[pin]
        source: Source,
        record: Option<AccessRecord>,
    }
}

pin_project! {
    /// Where a body's bytes come from.
    #[project = SourceProj]
    enum Source {
        /// A backend's body, streamed; the guard counts the request in
        /// flight until the body is dropped, the token's future cuts it at
        /// a drain deadline. A body that fails (the backend closed or
        /// stalled mid-body, or the deadline came) ends the client's
        /// connection after what arrived.
        Upstream {
            inner: UpstreamBody,
            #[pin]
            cut: Option<WaitForCancellationFutureOwned>,
            work: Option<WorkGuard>,
            // Frames since the token was last looked at.
            unwatched: u8,
        },
        /// A body sluice made itself.
        Full { data: Option<Bytes> },
    }
}

impl ProxyBody {
    fn of(source: Source) -> Self {
        ProxyBody {
            source,
            record: None,
        }
    }

    pub fn text(s: String) -> Self {
        Self::of(Source::Full {
            data: Some(Bytes::from(s)),
        })
    }

    pub fn empty() -> Self {
        Self::of(Source::Full { data: None })
    }

    /// The body ends its request: `record` is accounted when it drops.
    pub fn with_record(mut self, record: AccessRecord) -> Self {
        self.record = Some(record);
        self
    }

    /// A backend's body; with the work it counts and the token that cuts
    /// it, unless it was read whole with its head.
    pub fn upstream(inner: UpstreamBody, work: Option<(WorkGuard, CancellationToken)>) -> Self {
        let (work, cut) = match work {
            Some((work, token)) => (Some(work), Some(token.cancelled_owned())),
            None => (None, None),
        };
        Self::of(Source::Upstream {
            inner,
            cut,
            work,
            unwatched: 0,
        })
    }
}

impl Cuttable for ProxyBody {
    /// Also watched while a write waits for a client that does not read.
    fn poll_cut(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let polled = match this.source.project() {
            SourceProj::Upstream { cut, .. } => match cut.as_pin_mut() {
                Some(cut) => cut.poll(cx),
                None => Poll::Pending,
            },
            SourceProj::Full { .. } => Poll::Pending,
        };
        if let (Poll::Ready(()), Some(record)) = (polled, this.record.as_mut()) {
            record.cut = true;
        }
        polled
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.project();
        let polled = match this.source.project() {
            SourceProj::Upstream {
                inner,
                cut,
                unwatched,
                ..
            } => {
                let polled = Pin::new(inner).poll_frame(cx);
                // Looking at the token takes two uncontended locks: it is
                // watched while the body waits for the backend, and every
                // WATCH_EVERY frames of a backend that never pauses.
                *unwatched = unwatched.wrapping_add(1);
                let watch = polled.is_pending() || *unwatched >= WATCH_EVERY;
                if let (true, Some(cut)) = (watch, cut.as_pin_mut()) {
                    *unwatched = 0;
                    if cut.poll(cx).is_ready() {
                        if let Some(record) = this.record.as_mut() {
                            record.cut = true;
                        }
                        return Poll::Ready(Some(Err(UpstreamError::DrainDeadline)));
                    }
                }
                polled
            }
            SourceProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        };
        if let (Poll::Ready(Some(Ok(frame))), Some(record)) = (&polled, this.record.as_mut()) {
            if let Some(data) = frame.data_ref() {
                record.bytes_out += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Upstream { inner, .. } => inner.is_end_stream(),
            Source::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Upstream { inner, .. } => inner.size_hint(),
            Source::Full { data: Some(d) } => SizeHint::with_exact(d.len() as u64),
            Source::Full { data: None } => SizeHint::with_exact(0),
        }
    }
}
