//! A request's timeout served by its connection's one timer.
//!
//! The handler sets the deadline once it knows the request's timeout (its
//! listener's, after routing) and clears it when the timed part is over;
//! the connection's server, which polls the handler, keeps its timer no
//! later than the deadline and marks it expired when the timer fires. The
//! handler reads the mark: it is polled again by the same task right after
//! the mark is set, so the mark needs no waker.
//!
//! Why: a timer entry of its own per request is two registrations in the
//! runtime's timer wheel (each a lock); the connection's timer, reset to a
//! later moment request after request, extends in place without one.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

/// No deadline set.
const NONE: u64 = 0;

/// The deadline of the request a connection is answering, if it has one.
#[derive(Debug, Default)]
pub(crate) struct RequestDeadline {
    /// Nanoseconds after [`epoch`] plus one; [`NONE`] when unset.
    at: AtomicU64,
    /// The connection's timer reached `at`.
    expired: AtomicBool,
}

impl RequestDeadline {
    /// The handler: the timed part of a request ends at `at`.
    fn set(&self, at: Instant) {
        self.expired.store(false, Ordering::Relaxed);
        let nanos = at.saturating_duration_since(epoch()).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX - 1);
        self.at.store(nanos + 1, Ordering::Relaxed);
    }

    /// The handler: the timed part is over (or was dropped).
    fn clear(&self) {
        self.at.store(NONE, Ordering::Relaxed);
        self.expired.store(false, Ordering::Relaxed);
    }

    /// The server: when the handler's request times out, if it set when.
    pub(super) fn due(&self) -> Option<Instant> {
        match self.at.load(Ordering::Relaxed) {
            NONE => None,
            n => Some(epoch() + Duration::from_nanos(n - 1)),
        }
    }

    /// The server: the timer reached the deadline.
    pub(super) fn expire(&self) {
        self.expired.store(true, Ordering::Relaxed);
    }

    fn expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }
}

/// Where a request's timeout comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RequestTimer<'a> {
    /// The HTTP/1 connection's timer (see the module docs).
    Connection(&'a RequestDeadline),
    /// A timer of the request's own (an HTTP/2 stream: its connection's
    /// streams run side by side).
    Own,
}

/// The request's timeout elapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

impl RequestTimer<'_> {
    /// Runs `work` for at most `timeout`.
    pub(crate) async fn bound<F: Future>(
        self,
        timeout: Duration,
        work: F,
    ) -> Result<F::Output, TimedOut> {
        match self {
            RequestTimer::Own => tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| TimedOut),
            RequestTimer::Connection(deadline) => {
                deadline.set(Instant::now() + timeout);
                // Cleared however this ends, dropped mid-way included.
                let _set = Cleared(deadline);
                let mut work = pin!(work);
                poll_fn(|cx| {
                    if let Poll::Ready(out) = work.as_mut().poll(cx) {
                        return Poll::Ready(Ok(out));
                    }
                    if deadline.expired() {
                        return Poll::Ready(Err(TimedOut));
                    }
                    Poll::Pending
                })
                .await
            }
        }
    }
}

/// Clears a deadline when dropped.
struct Cleared<'a>(&'a RequestDeadline);

impl Drop for Cleared<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// The moment deadlines are counted from: an hour before the first one was
/// asked for (a test runtime's paused clock may lag the real one).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
    })
}
