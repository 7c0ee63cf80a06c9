//! What `/metrics` reads of one backend's traffic through this node: plain
//! numbers copied out of the backend's counters (atomics on the request
//! path), so a reader never holds anything the request path touches.

/// Upper bounds (seconds) of the latency histograms' buckets, as
/// Prometheus `le` labels; the `+Inf` bucket is implied.
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One backend's traffic through this node since its runtime started here
/// (a counter restarts with it, as Prometheus counters may).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficSnapshot {
    /// Responses sent to clients for requests routed to the backend, by
    /// status class: index 0 is `1xx`, …, index 4 is `5xx`. Answers sluice
    /// made itself (504, drain 500, 502) count here too.
    pub responses_by_class: [u64; 5],
    /// Answers sluice made itself instead of the backend's, by the
    /// `x-sluice-error` code they carried (only codes seen, sorted).
    pub errors_by_code: Vec<(&'static str, u64)>,
    /// Bytes received from clients for the backend (request bodies and
    /// tunnel bytes client → backend).
    pub bytes_in: u64,
    /// Bytes sent to clients from the backend (response bodies and tunnel
    /// bytes backend → client).
    pub bytes_out: u64,
    /// Upstream connections to the backend open now (in use or pooled).
    pub connections_open: u64,
    /// Time from the request's arrival to the response head.
    pub time_to_first_byte: HistogramSnapshot,
    /// Time from the request's arrival to the response's last byte.
    pub total_time: HistogramSnapshot,
}

/// A latency histogram read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS_SECONDS`], in its
    /// order (the count of observations ≤ that bound).
    pub cumulative: Vec<u64>,
    /// All observations (the `+Inf` bucket and `_count`).
    pub count: u64,
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
}
