//! [`Progress`]: where a request's exchange stands, for telling whose
//! silence a request timeout ended, and how much of the client's body went
//! to the backend.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Where a request's exchange stands, for telling whose silence a request
/// timeout ended: the client's (its body) or the backend's (its answer).
/// Lives on the request's stack; only the request's own task touches it.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    waiting_for_client: AtomicBool,
    body_bytes: AtomicU64,
}

impl Progress {
    /// Whether the exchange is waiting for more of the client's body.
    pub fn waiting_for_client(&self) -> bool {
        self.waiting_for_client.load(Ordering::Relaxed)
    }

    /// Bytes of the client's body sent to the backend (the last exchange's,
    /// when the request was sent again).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::Relaxed)
    }

    pub(super) fn set_body_bytes(&self, bytes: u64) {
        self.body_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(super) fn set_waiting_for_client(&self, waiting: bool) {
        self.waiting_for_client.store(waiting, Ordering::Relaxed);
    }
}
