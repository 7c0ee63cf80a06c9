//! sluice's data plane: listeners that accept client connections (HTTP/1.1,
//! or HTTP/2 with prior knowledge: `http2/`), route each request by an
//! immutable routing snapshot, forward it over pooled upstream HTTP/1.1
//! connections, relay WebSocket tunnels, and drain backends on command.
//!
//! Why actors: a drain is a lifecycle event that has to reach exactly the
//! connections holding work on one backend, at one deadline. Actors carry that
//! control flow; bytes never go through a mailbox. The request path reads an
//! [`arc_swap`] snapshot and a few atomics: no message, lock or allocation per
//! request that a snapshot or an atomic can avoid.
//!
//! The supervision tree (one per node, `supervision.rs`):
//!
//! ```text
//! DataPlaneSupervisor
//! ├── StateApplier   plans each applied State against the last one
//! │                  (plan.rs), then acts: swaps the routing snapshot,
//! │                  starts and stops backends and listeners, starts drains
//! ├── Listeners ── Listener(port) ── Connection (per client connection
//! │                                   with requests under way)
//! └── Backends  ── Backend(group, addr), which runs its own drain
//! ```
//!
//! Every message between them is in `messages.rs`, with the drain sequence
//! at its top. A backend's drain: the `StateApplier` (applier.rs) sends
//! `StartDrain` to the `Backend` (backend.rs), which keeps the drain's state
//! (drain.rs) and a timer for the absolute deadline, and reports
//! [`DataPlaneEvents::drain_finished`] (events.rs) once, as soon as no work
//! is left. A `Connection` (connection.rs) registers a token with a
//! `Backend` once, the first time it sends that backend work; at the
//! deadline the `Backend` cancels each token, once, and the work ends on
//! it: a waiting request answers `500` with `Connection: close` (R3,
//! connection.rs), a streaming response is cut (proxy_body.rs), a tunnel
//! closes with Close 1001 on both sides (tunnel/). A crashed `Connection`
//! loses only itself.
//!
//! The node's own drain (N1) is the applier's too: the replicated drain of
//! this node (for this process) or one started by [`DataPlane::drain_locally`]
//! (a stop); every `Listener` ends keep-alive, accepts for the accept grace,
//! then closes its socket and idle connections, and at the deadline ends
//! what is left as above. [`DataPlane::node_drain`] says how far it got.
//!
//! Logs carry where they come from: spans `state_applier`,
//! `listener{port, generation}`, `backend{group, backend}` (with the drain
//! id on each drain line), `connection{peer}` under its listener's span
//! (made once per connection, never per request) and `health{group,
//! backend}`. The node's id is on every line of the process (the binary's
//! log format), so no span repeats it.
//!
//! Health: the `StateApplier` runs one probe task per checked backend; a
//! backend this node's own probes see failing leaves this node's routing
//! snapshot at once (C6), and the node's view is reported for the
//! replicated health. A probe or connect that fails for a reason of this
//! node's own (no descriptor, memory or port) is "unknown", never the
//! backend's failure (N3).
//!
//! Slow start (R10): while a backend ramps, the `StateApplier` rebuilds the
//! routing snapshot on a timer with the effective weights of the moment;
//! requests never compute weights.
//!
//! TLS: a listener that names certificates terminates TLS. The
//! `StateApplier` builds its rustls configuration (tls_configs.rs: SNI
//! among them, the first the default) and swaps it into the listener's
//! slot whenever they change; each connection does its handshake in its own
//! task (tls_handshake.rs) and is then served like a plain one over a
//! [`client_io::ClientIo`] (tls_io.rs drives rustls by readiness).
//!
//! Accounting: each request carries an `AccessRecord` (access_record.rs)
//! from its head to its end, moved into its response body or its tunnel
//! and accounted once as it drops: into its backend's `BackendTraffic`
//! atomics (what [`DataPlane::backend_traffic`] reads) and, when the node
//! has one, into the [`AccessLog`] (access_log/: formatted on the request's
//! thread, written in batches by one thread). The drain a request ended
//! under comes from the `DrainMark` its backend and its listener publish.
//!
//! Use [`DataPlane::start`] to run it (with the [`DataPlaneEvents`] it
//! reports to) and [`DataPlane::apply`] to hand it each new
//! [`sluice_model::State`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access_log;
mod access_record;
mod applier;
mod backend;
mod backend_traffic;
mod chunked;
mod client_io;
mod client_socket;
mod connection;
mod data_plane;
mod drain;
mod drain_mark;
mod error;
mod events;
mod forward;
mod going_away;
mod header_rules;
mod health;
mod health_view;
mod http1;
mod http2;
mod latency_histogram;
mod listener;
mod listener_counters;
mod local_trouble;
mod log_limit;
mod messages;
mod metrics;
mod per_backend;
mod plan;
#[cfg(test)]
mod plan_properties;
mod proxy_body;
mod published;
mod ready_io;
mod routing;
mod settings;
mod supervision;
#[cfg(feature = "test-headers")]
mod test_headers;
mod tls_configs;
mod tls_handshake;
mod tls_io;
mod traffic_snapshot;
mod tunnel;
mod upstream;
mod wall_deadline;

pub use access_log::{AccessLog, AccessLogFormat, AccessLogOutput, AccessLogSettings};
pub use data_plane::DataPlane;
pub use error::ProxyError;
pub use events::DataPlaneEvents;
pub use health_view::{LocalHealth, ProbeReport};
pub use listener_counters::ListenerFigures;
pub use metrics::Metrics;
pub use published::{BackendStats, Holds, ListenerStatus, NodeDrainStatus};
pub use settings::ProxySettings;
pub use traffic_snapshot::{HistogramSnapshot, TrafficSnapshot, LATENCY_BUCKETS_SECONDS};

#[cfg(test)]
mod tests;
