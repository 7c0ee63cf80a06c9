//! The bridge between replication and the data plane, both ways.
//!
//! What: applied states flow in — every state the Raft state machine
//! applies reaches [`sluice_proxy::DataPlane::apply`], and the log index the
//! data plane routes by is published ([`Bridge::applied_index`],
//! [`Bridge::wait_applied`]). Events flow out — drains finished (R2), this
//! node's health views (C6) and its listener binds go back into the log as
//! `DrainFinished`, `HealthReport` and `ListenerReport` commands.
//!
//! Why one crate: both directions are the same conversation between the
//! node's Raft core and its data plane; one owner keeps the ordering rules
//! (C5: the restored state is applied before any listener accepts traffic)
//! and the reporting rules (batching, retries, no resent refusals) in one
//! place, below the admin API and the binary.
//!
//! How: [`events`] makes the sink the data plane reports to (created before
//! the Raft node exists) and the queue behind it. [`Bridge::start`] applies
//! the node's current state, then spawns the feed of newer states and one
//! batching loop that writes the queued events through
//! [`sluice_raft::RaftNode::write_all`]: the newest report per key, at most
//! 256 per call, a failed call made again a second later, a refused report
//! never sent again.
#![forbid(unsafe_code)]

mod bridge;
mod error;
mod events;
mod reports;
mod writer;

pub use bridge::Bridge;
pub use error::BridgeError;
pub use events::{events, EventQueue, EventSink};
