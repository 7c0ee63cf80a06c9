//! Per-listener connection counters: connections accepted, open now, and
//! failed TLS handshakes, for `/metrics` (`listener` label = port).
//!
//! Each running listener registers its [`ListenerCounters`] under its port
//! in the node's [`ListenerCounterMap`] and unregisters them when it stops.
//! The accept loop bumps them with relaxed atomics (two per accepted
//! connection); the listener actor counts a connection's end from the
//! supervision event it already handles; only a failed TLS handshake, off
//! the request path, looks its listener up under the map's mutex.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One listener's counters.
#[derive(Debug, Default)]
pub(crate) struct ListenerCounters {
    accepted: AtomicU64,
    active: AtomicU64,
    tls_handshake_failures: AtomicU64,
}

/// A listener's counters read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerFigures {
    /// Client connections accepted since the listener started here.
    pub accepted: u64,
    /// Client connections open now.
    pub active: u64,
    /// TLS handshakes with clients that failed or timed out.
    pub tls_handshake_failures: u64,
}

// === impl ListenerCounters ===

impl ListenerCounters {
    /// A connection was accepted and is about to be served.
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection counted by [`Self::accepted`] ended (or never started).
    /// Never below zero: a connection whose start failed may also be
    /// reported as ended.
    pub(crate) fn ended(&self) {
        let _ = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    fn figures(&self) -> ListenerFigures {
        ListenerFigures {
            accepted: self.accepted.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            tls_handshake_failures: self.tls_handshake_failures.load(Ordering::Relaxed),
        }
    }
}

/// The running listeners' counters by port.
#[derive(Debug, Default)]
pub(crate) struct ListenerCounterMap(Mutex<BTreeMap<u16, Arc<ListenerCounters>>>);

// === impl ListenerCounterMap ===

impl ListenerCounterMap {
    /// Fresh counters for a listener starting on `port` (they replace a
    /// draining listener's of the same port).
    pub(crate) fn register(&self, port: u16) -> Arc<ListenerCounters> {
        let counters = Arc::new(ListenerCounters::default());
        self.lock().insert(port, counters.clone());
        counters
    }

    /// Drops `counters` of the listener on `port` that stopped, unless a
    /// newer listener of the port registered its own.
    pub(crate) fn unregister(&self, port: u16, counters: &Arc<ListenerCounters>) {
        let mut map = self.lock();
        if map.get(&port).is_some_and(|c| Arc::ptr_eq(c, counters)) {
            map.remove(&port);
        }
    }

    /// Counts a failed TLS handshake on the listener of `port`.
    pub(crate) fn tls_handshake_failed(&self, port: u16) {
        if let Some(c) = self.lock().get(&port) {
            c.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters of the listener on `port`, if one runs here.
    pub(crate) fn figures(&self, port: u16) -> Option<ListenerFigures> {
        self.lock().get(&port).map(|c| c.figures())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u16, Arc<ListenerCounters>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_counts_its_connections_and_its_port_outlives_a_stale_unregister() {
        let map = ListenerCounterMap::default();
        let old = map.register(8080);
        old.accepted();
        old.accepted();
        old.ended();
        old.ended();
        old.ended();
        map.tls_handshake_failed(8080);
        assert_eq!(
            map.figures(8080),
            Some(ListenerFigures {
                accepted: 2,
                active: 0,
                tls_handshake_failures: 1
            })
        );
        let new = map.register(8080);
        map.unregister(8080, &old);
        assert_eq!(map.figures(8080), Some(ListenerFigures::default()));
        map.unregister(8080, &new);
        assert_eq!(map.figures(8080), None);
        map.tls_handshake_failed(8080);
    }
}
