//! [`WriteLatency`]: how long writes taken by this node (admin API writes
//! and the node's own reports alike) took, from the
//! moment [`RaftNode::write_all`](crate::RaftNode::write_all) got them to
//! the leader's answer that they were committed and applied (re-sends to a
//! new leader included). One place measures it, so the figure means one
//! thing; `/metrics` renders it as `sluice_write_duration_seconds`.
//!
//! How: a fixed set of buckets, each an atomic counter, and the sum in
//! microseconds; a reader copies them into a [`WriteLatencySnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the buckets, as Prometheus `le` labels; the
/// `+Inf` bucket is implied. A write gives up after
/// [`WRITE_LIMIT`](crate::WRITE_LIMIT) (7 s).
pub const WRITE_BUCKETS_SECONDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Durations of confirmed writes (atomics: writers never wait on readers).
#[derive(Debug, Default)]
pub struct WriteLatency {
    /// Writes per bucket (not cumulative), in the order of
    /// [`WRITE_BUCKETS_SECONDS`]; a longer write is only in `count`.
    buckets: [AtomicU64; WRITE_BUCKETS_SECONDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// [`WriteLatency`] read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteLatencySnapshot {
    /// Cumulative counts per bucket of [`WRITE_BUCKETS_SECONDS`], in its
    /// order.
    pub cumulative: Vec<u64>,
    /// Every write (the `+Inf` bucket and `_count`).
    pub count: u64,
    /// Sum of all durations, in seconds.
    pub sum_seconds: f64,
}

// === impl WriteLatency ===

impl WriteLatency {
    /// Counts one write that took `took`.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = WRITE_BUCKETS_SECONDS.iter().position(|le| seconds <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> WriteLatencySnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        // A write is counted in its bucket before `count`: one under way
        // may be in the first only, and no bucket may exceed `count`.
        let count = self.count.load(Ordering::Relaxed).max(total);
        WriteLatencySnapshot {
            cumulative,
            count,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fall_in_the_first_bucket_that_holds_them() {
        let w = WriteLatency::default();
        w.observe(Duration::from_micros(800));
        w.observe(Duration::from_millis(5));
        w.observe(Duration::from_millis(300));
        w.observe(Duration::from_secs(12));
        let s = w.snapshot();
        assert_eq!(
            s.cumulative,
            vec![1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3],
            "0.8 ms ≤ 1 ms, 5 ms ≤ 5 ms, 300 ms ≤ 500 ms, 12 s only in +Inf"
        );
        assert_eq!(s.count, 4);
        assert!((s.sum_seconds - 12.3058).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
