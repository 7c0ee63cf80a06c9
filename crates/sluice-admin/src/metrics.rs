//! `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use sluice_model::{BackendStatus, State};
use sluice_proxy::DataPlane;

pub(crate) fn render(node: u64, state: &State, dp: &DataPlane) -> String {
    let m = dp.metrics();
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}"
        );
    };
    let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    metric(
        "sluice_connections_accepted_total",
        "counter",
        "Client connections accepted.",
        c(&m.connections_accepted),
    );
    metric(
        "sluice_connections_open",
        "gauge",
        "Client connections open now.",
        c(&m.connections_open),
    );
    metric(
        "sluice_requests_proxied_total",
        "counter",
        "Requests answered by a backend.",
        c(&m.requests_proxied),
    );
    metric(
        "sluice_requests_failed_total",
        "counter",
        "Requests answered by sluice with an error status that is not the client's fault.",
        c(&m.requests_failed),
    );
    metric(
        "sluice_requests_rejected_total",
        "counter",
        "Requests refused as the client's fault (malformed, unsupported, body stalled).",
        c(&m.requests_rejected),
    );
    metric(
        "sluice_drain_cuts_total",
        "counter",
        "Requests and tunnels closed by a drain deadline.",
        c(&m.drain_cuts),
    );
    metric(
        "sluice_tunnels_opened_total",
        "counter",
        "WebSocket tunnels opened.",
        c(&m.tunnels_opened),
    );
    metric(
        "sluice_access_log_dropped_total",
        "counter",
        "Access-log lines dropped because the log's writer could not keep up.",
        dp.access_log_dropped(),
    );
    metric(
        "sluice_connection_crashes_total",
        "counter",
        "Connection actors that crashed.",
        c(&m.connection_crashes),
    );
    metric(
        "sluice_tls_handshake_failures_total",
        "counter",
        "TLS handshakes with clients that failed or timed out.",
        c(&m.tls_handshake_failures),
    );
    metric(
        "sluice_drains_active",
        "gauge",
        "Drains in progress cluster-wide.",
        state.drains.len() as u64,
    );
    metric(
        "sluice_state_revision",
        "gauge",
        "Commands applied to the state.",
        state.revision,
    );
    let _ = writeln!(out, "# HELP sluice_backend_in_flight Requests in flight to a backend through this node.\n# TYPE sluice_backend_in_flight gauge");
    let mut tunnels = String::new();
    let mut draining = String::new();
    for g in state.groups.values() {
        for b in g.backends.values() {
            let s = dp.backend_stats(&g.name, &b.addr);
            let labels = format!(
                "node=\"{node}\",group=\"{}\",backend=\"{}\"",
                g.name, b.addr
            );
            let _ = writeln!(out, "sluice_backend_in_flight{{{labels}}} {}", s.in_flight);
            let _ = writeln!(tunnels, "sluice_backend_tunnels{{{labels}}} {}", s.tunnels);
            let d = u8::from(matches!(b.status, BackendStatus::Draining { .. }));
            let _ = writeln!(draining, "sluice_backend_draining{{{labels}}} {d}");
        }
    }
    let _ = writeln!(out, "# HELP sluice_backend_tunnels Open WebSocket tunnels to a backend through this node.\n# TYPE sluice_backend_tunnels gauge\n{tunnels}# HELP sluice_backend_draining 1 while the backend drains.\n# TYPE sluice_backend_draining gauge\n{draining}");
    out
}
