//! Node-wide data-plane counters (atomics, read by `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::listener_counters::ListenerCounterMap;

/// Counters of this node's data plane.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Client connections accepted.
    pub connections_accepted: AtomicU64,
    /// Client connections open now.
    pub connections_open: AtomicU64,
    /// Requests answered by a backend.
    pub requests_proxied: AtomicU64,
    /// Requests answered by sluice itself with an error status that is not
    /// the client's fault (no backend, backend failed or timed out, drain).
    pub requests_failed: AtomicU64,
    /// Requests refused as the client's fault (4xx by sluice: malformed,
    /// unsupported, or a request body that stalled).
    pub requests_rejected: AtomicU64,
    /// Requests and tunnels cut by a drain deadline (R3/R4).
    pub drain_cuts: AtomicU64,
    /// WebSocket tunnels opened.
    pub tunnels_opened: AtomicU64,
    /// Connection actors that crashed (each lost only its own connection).
    pub connection_crashes: AtomicU64,
    /// TLS handshakes with clients that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// The same per running listener, by port.
    pub(crate) listeners: ListenerCounterMap,
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
