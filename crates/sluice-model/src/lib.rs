//! sluice's pure domain model: what a cluster is (groups, backends,
//! listeners, drains), the [`Command`]s that change it and the deterministic
//! [`State::apply`] that every node runs on the same command log.
//!
//! Why pure: replication (Raft) only works if applying the same commands in
//! the same order gives the same state on every node. So nothing here reads a
//! clock, a socket or a random number: a command that needs the time (a
//! removal, whose drain deadline is absolute) carries the time the proposer
//! stamped on it, and `apply` computes the deadline from that.
//!
//! How it is used: the admin API validates and builds a [`Command`], Raft
//! (`sluice-raft`) orders it — the leader gives it its time through
//! [`Command::stamp`] — and every node calls [`State::apply`], which
//! dispatches each command to its own function (groups, backends,
//! listeners, drains, health reports) and never panics: a refusal is a
//! [`ModelError`], serializable so it crosses the log and the wire typed.
//! The data plane reads the resulting [`State`] and diffs it against the
//! previous one to start listeners, route, and schedule drains.
//!
//! The drain rules of the design brief that live here: R1 (a draining backend
//! is never routable), R2 (a drain completes when every node reports it
//! finished), R4 (drain disabled means deadline = removal time), R5 (re-adding
//! a draining backend only changes what happens after the drain), R6 (a
//! replicated health failure drains when the group drains), R7 (nothing but
//! completion touches a drain's deadline), R8 (a failure before the first
//! pass under the current health-check revision does not drain), fail open,
//! C6's majority rule for the replicated health, and R10's slow-start ramps
//! (started from leader-stamped times; effective weights are computed for a
//! given `now`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backends;
mod certs;
mod command;
mod drains;
mod error;
mod excerpt;
mod groups;
mod health;
mod health_reports;
mod ids;
mod limits;
mod listeners;
mod nodes;
mod ramp;
mod slow_start;
mod state;
mod types;

pub use certs::{validate_cert_name, MAX_CHAIN_PEM, MAX_KEY_PEM, MAX_LISTENER_CERTS};
pub use command::{Applied, Command};
pub use error::ModelError;
pub use health::{
    BackendHealth, HealthCheck, HealthCheckUpdate, NodeHealth, ProbeMethod,
    DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_PATH, DEFAULT_HEALTH_THRESHOLD,
    DEFAULT_HEALTH_TIMEOUT_MS,
};
pub use ids::{DrainId, NodeId, UnixMillis};
pub use limits::{
    validate_backend_addr, validate_drain_timeout, validate_group_name, validate_health_check,
    validate_health_interval, validate_health_threshold, validate_health_timeout,
    validate_node_drain_timeout, validate_port, validate_request_timeout, validate_slow_start,
    validate_weight, DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_WEIGHT,
    MAX_DRAIN_TIMEOUT_MS, MAX_HEALTH_INTERVAL_MS, MAX_HEALTH_TIMEOUT_MS, MAX_REQUEST_TIMEOUT_MS,
    MAX_SLOW_START_MS, MAX_WEIGHT, MIN_HEALTH_INTERVAL_MS, MIN_HEALTH_TIMEOUT_MS,
    MIN_REQUEST_TIMEOUT_MS, MIN_SLOW_START_MS,
};
pub use ramp::{Ramp, RAMP_SCALE};
pub use state::State;
pub use types::{
    AfterDrain, Backend, BackendStatus, BindStatus, Cert, CertInfo, Drain, DrainCause, DrainPolicy,
    Group, Listener, ListenerDrain, NodeDrain, NodeDrainReason, SecretPem,
};
