//! Per-listener families (label `listener` = its port): connections this
//! node accepted and holds on it, failed TLS handshakes (TLS listeners),
//! and whether this node has its port bound (`sluice_listener_up`, for
//! listeners of the state: a removed one has none). A removed listener's
//! connection counts stay while it drains, until its last connection ends.

use std::collections::BTreeSet;

use sluice_model::State;
use sluice_proxy::DataPlane;

use super::exposition::{Family, Kind, Labels};

/// The per-listener families of every listener in `state`, draining ones
/// included.
pub(crate) fn families(node: &Labels, state: &State, dp: &DataPlane) -> Vec<Family> {
    let mut accepted = Family::new(
        "sluice_listener_connections_accepted_total",
        Kind::Counter,
        "Client connections the listener accepted on this node since it started here.",
    );
    let mut active = Family::new(
        "sluice_listener_connections_active",
        Kind::Gauge,
        "Client connections open on the listener on this node.",
    );
    let mut tls_failures = Family::new(
        "sluice_listener_tls_handshake_failures_total",
        Kind::Counter,
        "TLS handshakes with clients that failed or timed out on the listener (TLS listeners).",
    );
    let mut up = Family::new(
        "sluice_listener_up",
        Kind::Gauge,
        "1 while this node has the listener's port bound, else 0.",
    );
    let tls: BTreeSet<u16> = state
        .listeners
        .values()
        .filter(|l| !l.tls.is_empty())
        .map(|l| l.port)
        .collect();
    let ports: BTreeSet<u16> = state
        .listeners
        .keys()
        .copied()
        .chain(state.listener_drains.values().map(|d| d.port))
        .collect();
    for port in ports {
        let labels = node.with("listener", &port.to_string());
        if let Some(c) = dp.listener_figures(port) {
            accepted.sample(&labels, c.accepted);
            active.sample(&labels, c.active);
            if tls.contains(&port) {
                tls_failures.sample(&labels, c.tls_handshake_failures);
            }
        }
        if state.listeners.contains_key(&port) {
            let bound = dp
                .listener_status(port)
                .is_some_and(|s| s.status == "listening");
            up.sample(&labels, u8::from(bound));
        }
    }
    vec![accepted, active, tls_failures, up]
}
