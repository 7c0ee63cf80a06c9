//! Per-node families: the data plane's node-wide counters, readiness (the
//! same answer as `/readyz`), this node's own drain, the state's drains and
//! revision, and what runs (`sluice_build_info`, start time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use sluice_model::State;
use sluice_proxy::{DataPlane, Metrics};

use super::exposition::{Family, Kind, Labels};

/// When this process started serving its admin API (Unix ms): set by
/// [`mark_started`] as the router is built.
static STARTED: LazyLock<u64> = LazyLock::new(sluice_clock::now_ms);

/// Records the start time now (later calls keep the first).
pub(crate) fn mark_started() {
    LazyLock::force(&STARTED);
}

/// The commit the binary was built from, when the build said
/// (`SLUICE_BUILD_COMMIT` in the build's environment).
const COMMIT: Option<&str> = option_env!("SLUICE_BUILD_COMMIT");

/// What the node families read besides the state and the data plane.
pub(crate) struct NodeView {
    /// Whether `/readyz` answers 200.
    pub(crate) ready: bool,
}

/// The per-node families.
pub(crate) fn families(
    node: &Labels,
    state: &State,
    dp: &DataPlane,
    view: NodeView,
) -> Vec<Family> {
    use Kind::{Counter, Gauge};
    let m: &Metrics = dp.metrics();
    let one = |name, kind, help, value: u64| {
        let mut f = Family::new(name, kind, help);
        f.sample(node, value);
        f
    };
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut build = Family::new(
        "sluice_build_info",
        Gauge,
        "1, labelled with the running sluice's version (and commit, when the build recorded it).",
    );
    let mut labels = node.with("version", env!("CARGO_PKG_VERSION"));
    if let Some(commit) = COMMIT.filter(|c| !c.is_empty()) {
        labels = labels.with("commit", commit);
    }
    build.sample(&labels, 1);
    let mut started = Family::new(
        "sluice_process_start_time_seconds",
        Gauge,
        "When this node's process started serving (Unix seconds).",
    );
    started.sample(node, *STARTED as f64 / 1000.0);
    vec![
        one(
            "sluice_connections_accepted_total",
            Counter,
            "Client connections accepted.",
            c(&m.connections_accepted),
        ),
        one(
            "sluice_connections_open",
            Gauge,
            "Client connections open now.",
            c(&m.connections_open),
        ),
        one(
            "sluice_requests_proxied_total",
            Counter,
            "Requests answered by a backend.",
            c(&m.requests_proxied),
        ),
        one(
            "sluice_requests_failed_total",
            Counter,
            "Requests answered by sluice with an error status that is not the client's fault.",
            c(&m.requests_failed),
        ),
        one(
            "sluice_requests_rejected_total",
            Counter,
            "Requests refused as the client's fault (malformed, unsupported, body stalled).",
            c(&m.requests_rejected),
        ),
        one(
            "sluice_drain_cuts_total",
            Counter,
            "Requests and tunnels closed by a drain deadline.",
            c(&m.drain_cuts),
        ),
        one(
            "sluice_tunnels_opened_total",
            Counter,
            "WebSocket tunnels opened.",
            c(&m.tunnels_opened),
        ),
        one(
            "sluice_access_log_dropped_total",
            Counter,
            "Access-log lines dropped because the log's writer could not keep up.",
            dp.access_log_dropped(),
        ),
        one(
            "sluice_connection_crashes_total",
            Counter,
            "Connection actors that crashed.",
            c(&m.connection_crashes),
        ),
        one(
            "sluice_tls_handshake_failures_total",
            Counter,
            "TLS handshakes with clients that failed or timed out.",
            c(&m.tls_handshake_failures),
        ),
        one(
            "sluice_node_ready",
            Gauge,
            "1 while /readyz answers 200 (Raft runs, the node does not drain itself), else 0.",
            u64::from(view.ready),
        ),
        one(
            "sluice_node_draining",
            Gauge,
            "1 while this node drains itself (node drain or stopping), else 0.",
            u64::from(dp.node_drain().is_some()),
        ),
        one(
            "sluice_drains_active",
            Gauge,
            "Drains in progress cluster-wide.",
            state.drains.len() as u64,
        ),
        one(
            "sluice_state_revision",
            Gauge,
            "Commands applied to the state.",
            state.revision,
        ),
        build,
        started,
    ]
}
