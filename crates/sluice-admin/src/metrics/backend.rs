//! Per-backend families (labels `group`, `backend` = its address): traffic
//! through this node (responses by class, sluice's own errors by code,
//! bytes, connections, latency histograms), live work, health and state.
//!
//! Every backend of the replicated state has series, a removed one too:
//! the state keeps it, `Draining`, until its drain ends on every node, so
//! its series go when the drain ends. Traffic series exist while this
//! node's data plane runs the backend, from its first request through this
//! node: at 100,000 backends most never see one, and a scrape stays the
//! size of what carries traffic plus a few gauges per backend.
//!
//! `sluice_backend_state` has one series per state, exactly one of them 1:
//! the state routing gives it, as the dashboard shows it
//! ([`routing_state`]), by this precedence: `draining` (removed, or failed
//! its health checks and drains) > `maintenance` > `unhealthy` (the cluster
//! agreed it fails its checks) > `slow_start` (ramping up its weight) >
//! `active`.
//! `sluice_backend_healthy` is this node's own view (its probes after the
//! thresholds), absent while this node does not probe the backend (checks
//! off, weight 0, maintenance, draining, not yet probed): a split between
//! nodes shows as differing values.

use sluice_model::{BackendStatus, State};
use sluice_proxy::{DataPlane, LATENCY_BUCKETS_SECONDS};

use super::exposition::{Family, Kind, Labels};
use crate::api::RoutingState;
use crate::local_view::routing_state;

/// Label values of `sluice_backend_responses_total`'s `class`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// `sluice_backend_state`'s series, with their `state` label values.
const STATES: [(RoutingState, &str); 5] = [
    (RoutingState::Active, "active"),
    (RoutingState::Draining, "draining"),
    (RoutingState::Maintenance, "maintenance"),
    (RoutingState::Unhealthy, "unhealthy"),
    (RoutingState::SlowStart, "slow_start"),
];

/// The per-backend families.
struct BackendFamilies {
    responses: Family,
    errors: Family,
    bytes_in: Family,
    bytes_out: Family,
    connections_open: Family,
    in_flight: Family,
    tunnels: Family,
    time_to_first_byte: Family,
    response_time: Family,
    healthy: Family,
    state: Family,
    draining: Family,
    drain_deadline: Family,
    weight: Family,
}

impl BackendFamilies {
    fn new() -> Self {
        use Kind::{Counter, Gauge, Histogram};
        BackendFamilies {
            responses: Family::new(
                "sluice_backend_responses_total",
                Counter,
                "Responses to requests routed to the backend through this node, by status class (sluice's own answers included).",
            ),
            errors: Family::new(
                "sluice_backend_errors_total",
                Counter,
                "Answers sluice made itself instead of the backend's, by their x-sluice-error code.",
            ),
            bytes_in: Family::new(
                "sluice_backend_bytes_in_total",
                Counter,
                "Bytes received from clients for the backend (request bodies, tunnel bytes).",
            ),
            bytes_out: Family::new(
                "sluice_backend_bytes_out_total",
                Counter,
                "Bytes sent to clients from the backend (response bodies, tunnel bytes).",
            ),
            connections_open: Family::new(
                "sluice_backend_connections_open",
                Gauge,
                "Connections from this node to the backend open now (in use or pooled).",
            ),
            in_flight: Family::new(
                "sluice_backend_in_flight",
                Gauge,
                "Requests in flight to a backend through this node.",
            ),
            tunnels: Family::new(
                "sluice_backend_tunnels",
                Gauge,
                "Open WebSocket tunnels to a backend through this node.",
            ),
            time_to_first_byte: Family::new(
                "sluice_backend_time_to_first_byte_seconds",
                Histogram,
                "Time from a request's arrival to its response head.",
            ),
            response_time: Family::new(
                "sluice_backend_response_seconds",
                Histogram,
                "Time from a request's arrival to its response's last byte.",
            ),
            healthy: Family::new(
                "sluice_backend_healthy",
                Gauge,
                "This node's view of the backend's health checks (1 healthy, 0 failing); absent while this node does not probe it.",
            ),
            state: Family::new(
                "sluice_backend_state",
                Gauge,
                "1 for the backend's state (draining > maintenance > unhealthy > slow_start > active), 0 for the others.",
            ),
            draining: Family::new(
                "sluice_backend_draining",
                Gauge,
                "1 while the backend drains.",
            ),
            drain_deadline: Family::new(
                "sluice_backend_drain_deadline_seconds",
                Gauge,
                "When the backend's drain closes what is left (Unix seconds); only while it drains.",
            ),
            weight: Family::new(
                "sluice_backend_weight",
                Gauge,
                "The backend's configured weight.",
            ),
        }
    }

    fn into_vec(self) -> Vec<Family> {
        vec![
            self.responses,
            self.errors,
            self.bytes_in,
            self.bytes_out,
            self.connections_open,
            self.in_flight,
            self.tunnels,
            self.time_to_first_byte,
            self.response_time,
            self.healthy,
            self.state,
            self.draining,
            self.drain_deadline,
            self.weight,
        ]
    }
}

/// The per-backend families of every backend in `state`, at `now` (Unix ms).
pub(crate) fn families(node: &Labels, state: &State, dp: &DataPlane, now: u64) -> Vec<Family> {
    let mut f = BackendFamilies::new();
    for g in state.groups.values() {
        for b in g.backends.values() {
            let labels = node.with("group", &g.name).with("backend", &b.addr);
            if let Some(t) = dp.backend_traffic(&g.name, &b.addr) {
                for (class, n) in CLASSES.iter().zip(t.responses_by_class) {
                    f.responses.sample(&labels.with("class", class), n);
                }
                for (code, n) in &t.errors_by_code {
                    f.errors.sample(&labels.with("code", code), n);
                }
                f.bytes_in.sample(&labels, t.bytes_in);
                f.bytes_out.sample(&labels, t.bytes_out);
                f.connections_open.sample(&labels, t.connections_open);
                let h = &t.time_to_first_byte;
                f.time_to_first_byte.histogram(
                    &labels,
                    &LATENCY_BUCKETS_SECONDS,
                    &h.cumulative,
                    h.count,
                    h.sum_seconds,
                );
                let h = &t.total_time;
                f.response_time.histogram(
                    &labels,
                    &LATENCY_BUCKETS_SECONDS,
                    &h.cumulative,
                    h.count,
                    h.sum_seconds,
                );
            }
            let live = dp.backend_stats(&g.name, &b.addr);
            f.in_flight.sample(&labels, live.in_flight);
            f.tunnels.sample(&labels, live.tunnels);
            if let Some(h) = dp.local_health(&g.name, &b.addr) {
                f.healthy.sample(&labels, u8::from(h.healthy));
            }
            let current = routing_state(g, b, now);
            for (s, name) in STATES {
                f.state
                    .sample(&labels.with("state", name), u8::from(s == current));
            }
            let drain = match b.status {
                BackendStatus::Draining { drain } => state.drains.get(&drain),
                BackendStatus::Active => None,
            };
            f.draining.sample(&labels, u8::from(drain.is_some()));
            if let Some(d) = drain {
                f.drain_deadline.sample(&labels, d.deadline as f64 / 1000.0);
            }
            f.weight.sample(&labels, b.weight);
        }
    }
    f.into_vec()
}
