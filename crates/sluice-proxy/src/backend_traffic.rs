//! [`BackendTraffic`]: one backend's traffic through this node, counted by
//! the request path in atomics (responses by status class, sluice's own
//! answers by `x-sluice-error` code, body and tunnel bytes, latency
//! histograms) and copied out as a [`TrafficSnapshot`] for `/metrics`.
//!
//! Each request adds to it once, as it ends (`access_record.rs`), plus its
//! time to first byte when its answer's head is ready: a few relaxed
//! atomic additions, no lock and no map.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::FORWARD_ERROR_CODES;
use crate::latency_histogram::LatencyHistogram;
use crate::traffic_snapshot::TrafficSnapshot;

/// Counters of one backend incarnation's traffic.
#[derive(Debug, Default)]
pub(crate) struct BackendTraffic {
    responses_by_class: [AtomicU64; 5],
    errors_by_code: [AtomicU64; FORWARD_ERROR_CODES.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    time_to_first_byte: LatencyHistogram,
    total_time: LatencyHistogram,
}

/// What one request or tunnel did, as it ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended {
    pub status: u16,
    /// Index into [`FORWARD_ERROR_CODES`] when sluice answered itself.
    pub error: Option<usize>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub took: Duration,
}

impl BackendTraffic {
    /// The answer's head is ready `took` after the request arrived.
    pub fn first_byte(&self, took: Duration) {
        self.time_to_first_byte.observe(took);
    }

    /// A request or tunnel ended.
    pub fn ended(&self, e: Ended) {
        if let Some(class) = status_class(e.status) {
            self.responses_by_class[class].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(slot) = e.error.and_then(|i| self.errors_by_code.get(i)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        if e.bytes_in > 0 {
            self.bytes_in.fetch_add(e.bytes_in, Ordering::Relaxed);
        }
        if e.bytes_out > 0 {
            self.bytes_out.fetch_add(e.bytes_out, Ordering::Relaxed);
        }
        self.total_time.observe(e.took);
    }

    /// The counters now, with the upstream connections open now.
    pub fn snapshot(&self, connections_open: u64) -> TrafficSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TrafficSnapshot {
            responses_by_class: std::array::from_fn(|i| load(&self.responses_by_class[i])),
            errors_by_code: {
                let mut seen: Vec<(&'static str, u64)> = FORWARD_ERROR_CODES
                    .iter()
                    .zip(&self.errors_by_code)
                    .map(|(code, n)| (*code, load(n)))
                    .filter(|(_, n)| *n > 0)
                    .collect();
                seen.sort_unstable_by_key(|(code, _)| *code);
                seen
            },
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            connections_open,
            time_to_first_byte: self.time_to_first_byte.snapshot(),
            total_time: self.total_time.snapshot(),
        }
    }
}

/// `1xx` → 0 … `5xx` → 4; `None` outside 100..=599.
fn status_class(status: u16) -> Option<usize> {
    (100..600)
        .contains(&status)
        .then(|| usize::from(status / 100 - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_counts_its_class_code_bytes_and_time() {
        let t = BackendTraffic::default();
        let ok = Ended {
            status: 200,
            error: None,
            bytes_in: 10,
            bytes_out: 100,
            took: Duration::from_millis(3),
        };
        t.ended(ok);
        t.ended(Ended { status: 204, ..ok });
        t.ended(Ended {
            status: 504,
            error: Some(4),
            bytes_in: 0,
            bytes_out: 0,
            took: Duration::from_secs(1),
        });
        t.ended(Ended { status: 101, ..ok });
        t.first_byte(Duration::from_micros(500));
        let s = t.snapshot(7);
        assert_eq!(s.responses_by_class, [1, 2, 0, 0, 1]);
        assert_eq!(s.errors_by_code, vec![("backend_timeout", 1)]);
        assert_eq!((s.bytes_in, s.bytes_out), (30, 300));
        assert_eq!(s.connections_open, 7);
        assert_eq!(s.total_time.count, 4);
        assert_eq!(s.time_to_first_byte.count, 1);
        assert_eq!(s.time_to_first_byte.cumulative[0], 1);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(100), Some(0));
        assert_eq!(status_class(599), Some(4));
        assert_eq!(status_class(600), None);
        assert_eq!(status_class(99), None);
    }
}
