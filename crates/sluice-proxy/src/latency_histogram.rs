//! [`LatencyHistogram`]: a Prometheus-style histogram of durations over
//! [`LATENCY_BUCKETS_SECONDS`], kept in atomics so that the request path
//! records an observation with three relaxed additions and no lock.
//!
//! Each observation lands in one bucket (not cumulative while recorded);
//! a snapshot adds them up into the cumulative counts Prometheus wants.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::traffic_snapshot::{HistogramSnapshot, LATENCY_BUCKETS_SECONDS};

/// Bucket bounds in microseconds, as [`LATENCY_BUCKETS_SECONDS`].
const BOUNDS_MICROS: [u64; LATENCY_BUCKETS_SECONDS.len()] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// Durations observed, by bucket (the last one is `+Inf`), with their sum.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn observe(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_MICROS.partition_point(|&bound| bound < micros);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts so far, cumulative per bound.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(BOUNDS_MICROS.len());
        for bucket in &self.buckets[..BOUNDS_MICROS.len()] {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let count = running + self.buckets[BOUNDS_MICROS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
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
    fn the_bounds_match_the_published_buckets() {
        for (micros, seconds) in BOUNDS_MICROS.iter().zip(LATENCY_BUCKETS_SECONDS) {
            assert_eq!(*micros as f64 / 1e6, seconds);
        }
    }

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(1_000)); // le 0.001 (inclusive)
        h.observe(Duration::from_micros(1_001)); // le 0.0025
        h.observe(Duration::from_millis(300)); // le 0.5
        h.observe(Duration::from_secs(11)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[7], 2); // le 0.25
        assert_eq!(s.cumulative[8], 3); // le 0.5
        assert_eq!(s.cumulative[11], 3); // le 10
        assert_eq!(s.count, 4);
        assert!(
            (s.sum_seconds - 11.302_001).abs() < 1e-9,
            "{}",
            s.sum_seconds
        );
    }
}
