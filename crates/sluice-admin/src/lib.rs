//! sluice's admin API: JSON over HTTP under `/v1/…` for groups, backends and
//! listeners, `/livez` and `/readyz` for probes, `/metrics` for Prometheus.
//!
//! Why a separate crate: the API is one client of the command store and the
//! data plane, the CLI is another client of the API; keeping the routes, the
//! auth and the views here keeps the binary's `main` thin.
//!
//! How: [`CommandStore`] proposes commands through Raft (`sluice-raft`; a
//! follower forwards to the leader) and answers once every reachable node's
//! data plane routes by the result (this node's progress comes from
//! `sluice-bridge`, the peers' from `peer_progress.rs`). [`router`] builds the axum router over
//! an [`AdminContext`]: reads (`routes.rs`, with `?consistent=true` handled
//! by one layer, `consistent.rs`), writes (`writes.rs`), cluster operations
//! (`cluster_routes.rs`), certificates (`cert_routes.rs`, which checks
//! an upload with `sluice-tls` before it proposes), and the Raft RPC server of `sluice-raft` merged in
//! on the same port. Every write takes the [`auth::Authorized`] extractor
//! (the bearer token), and leaves an audit line, accepted or refused
//! (`audit.rs`). The JSON bodies live in [`api`], shared with the CLI.
//! [`serve`] serves the router in plain HTTP or TLS; over TLS the routes
//! only members call need a member's certificate (`member_only.rs`).
//! `GET /` serves the dashboard (`dashboard.rs`), a page over
//! `/v1/overview` (`overview.rs`), which gathers every member's
//! `/v1/local` (`local_view.rs`).
#![forbid(unsafe_code)]

pub mod api;
mod applied_path;
mod audit;
pub mod auth;
mod cert_routes;
mod cluster_routes;
mod consistent;
mod context;
mod dashboard;
#[cfg(feature = "test-clock")]
mod debug_clock;
mod error;
mod extract;
mod local_view;
mod member_only;
mod metrics;
mod node_routes;
mod overview;
mod peer_progress;
mod routes;
mod serve;
mod store;
mod views;
mod writes;

pub use applied_path::APPLIED_PATH;
pub use context::AdminContext;
pub use error::ApiError;
pub use member_only::PeerCertificate;
pub use routes::router;
pub use serve::serve;
pub use store::{CommandStore, StoreError, Submitted, PROPAGATION_WAIT};
