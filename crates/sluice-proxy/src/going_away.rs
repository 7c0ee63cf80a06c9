//! The order of work at a drain deadline: every tunnel of the backend sends
//! its client the Close 1001 first, and only then does any of them go on
//! with the rest of closing (the backend's Close, waiting for answers,
//! closing sockets, ending actors). Without it that rest, which costs far
//! more than one write, interleaves with the Close frames still to send and
//! the last client hears much later.
//!
//! The backend arms the barrier with its count of open tunnels just before
//! it cancels their tokens; each tunnel checks in after its write. A tunnel
//! never waits longer than [`MAX_WAIT`], whatever the count says.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Longest a tunnel waits for the others.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// One backend's barrier (see the module docs).
#[derive(Default)]
pub(crate) struct GoingAway {
    pending: AtomicUsize,
    all_told: Notify,
}

impl GoingAway {
    /// The deadline came with `tunnels` open tunnels.
    pub fn arm(&self, tunnels: usize) {
        self.pending.store(tunnels, Ordering::Release);
    }

    /// This tunnel's client got its Close; waits until every armed tunnel's
    /// client did.
    pub async fn client_told(&self) {
        let all_told = self.all_told.notified();
        tokio::pin!(all_told);
        all_told.as_mut().enable();
        let before = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        match before {
            Ok(1) => self.all_told.notify_waiters(),
            Ok(_) => {
                let _ = tokio::time::timeout(MAX_WAIT, all_told).await;
            }
            // Not armed (no deadline for this backend): nothing to wait for.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    // Paused time: the sleep below (shorter than MAX_WAIT) ends only once
    // the spawned tasks have run as far as they can; no wall-clock margin.
    #[tokio::test(start_paused = true)]
    async fn nobody_goes_on_before_the_last_checks_in() {
        let barrier = Arc::new(GoingAway::default());
        barrier.arm(3);
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (b, d) = (barrier.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                b.client_told().await;
                d.fetch_add(1, Ordering::SeqCst);
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(done.load(Ordering::SeqCst), 0, "two of three checked in");
        barrier.client_told().await;
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unarmed_or_stuck_barrier_does_not_hold_a_tunnel() {
        let barrier = GoingAway::default();
        barrier.client_told().await; // not armed: returns at once
        barrier.arm(2);
        let start = tokio::time::Instant::now();
        barrier.client_told().await; // the other never comes
        assert_eq!(start.elapsed(), MAX_WAIT);
    }
}
