//! [`Progress`]: where a request's exchange stands, for telling whose
//! silence a request timeout ended.

use std::sync::atomic::{AtomicBool, Ordering};

/// Where a request's exchange stands, for telling whose silence a request
/// timeout ended: the client's (its body) or the backend's (its answer).
/// Lives on the request's stack; only the request's own task touches it.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    waiting_for_client: AtomicBool,
}

impl Progress {
    /// Whether the exchange is waiting for more of the client's body.
    pub fn waiting_for_client(&self) -> bool {
        self.waiting_for_client.load(Ordering::Relaxed)
    }

    pub(super) fn set_waiting_for_client(&self, waiting: bool) {
        self.waiting_for_client.store(waiting, Ordering::Relaxed);
    }
}
