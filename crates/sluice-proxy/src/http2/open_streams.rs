//! [`OpenStreams`]: how many streams an HTTP/2 connection has open, from
//! the request's arrival until its answer's body is dropped, so the
//! connection can close after [`OpenStreams::idle_for`] with none. Per
//! stream: an atomic add and subtract; the waiter is woken only when the
//! count leaves or reaches zero.

use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::Notify;

/// The open streams of one connection.
#[derive(Debug, Default)]
pub(crate) struct OpenStreams {
    count: AtomicUsize,
    changed: Notify,
}

/// One open stream; it closes when dropped.
pub(crate) struct StreamOpen(Arc<OpenStreams>);

impl OpenStreams {
    /// A stream opens.
    pub fn open(self: &Arc<Self>) -> StreamOpen {
        if self.count.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_waiters();
        }
        StreamOpen(self.clone())
    }

    /// Resolves once no stream has been open for `idle` on end.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => return,
                    _ = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

pin_project! {
    /// An answer's body that keeps its stream counted open until hyper
    /// drops it.
    pub(crate) struct StreamBody<B> {
        #[pin]
        inner: B,
        open: StreamOpen,
    }
}

impl<B> StreamBody<B> {
    pub fn new(inner: B, open: StreamOpen) -> StreamBody<B> {
        StreamBody { inner, open }
    }
}

impl<B: Body> Body for StreamBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_stream_s_end() {
        let streams = Arc::new(OpenStreams::default());
        let open = streams.open();
        let waiter = {
            let streams = streams.clone();
            tokio::spawn(async move {
                streams.idle_for(Duration::from_secs(10)).await;
                tokio::time::Instant::now()
            })
        };
        // Open for 30 s: not idle meanwhile.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiter.is_finished());
        let closed_at = tokio::time::Instant::now();
        drop(open);
        // A stream that opens and closes again restarts the count.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(streams.open());
        let idle_at = waiter.await.unwrap();
        assert_eq!(idle_at - closed_at, Duration::from_secs(15));
    }
}
