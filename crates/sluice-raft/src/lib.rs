//! sluice's replication layer: the openraft type configuration, the sled
//! storage a node's Raft runs on, the member-to-member protocol (client and
//! server) and the node's cluster operations.
//!
//! - [`types`]: [`TypeConfig`] — a log entry carries a [`Request`] (model
//!   commands in order), applying it answers a [`Response`] (an [`Outcome`]
//!   per command; a refused command carries the model's typed error).
//! - [`open`]: one sled database per node holding the [`LogStore`] (log,
//!   vote, committed id) and the [`StateMachineStore`] (model state in
//!   memory, snapshots on disk).
//! - [`codec`]: the single bincode encoding used on disk and on the wire.
//! - [`wire`]: the contract between members on the admin port — paths, the
//!   one-hop header, forwarded writes. Its clients are [`network`] (Raft
//!   RPCs) and the member client; its server is [`rpc_server`], an axum
//!   router the admin server merges. [`bearer`] checks the cluster token;
//!   [`tls`] is a member's TLS identity when the cluster's traffic is
//!   encrypted (`transport.rs` sends over it, the admin server serves it).
//! - [`RaftNode`]: init, join, remove, status, figures for `/metrics`
//!   ([`RaftFigures`], with [`write_latency`]), and writes from any node;
//!   [`group_commit`] batches writes into shared entries on the leader
//!   (stamped through the model's `Command::stamp`) and into shared
//!   forwarded calls on a follower. Errors are [`ClusterError`].
//! - `raft_events.rs`: one INFO line per Raft event an operator follows
//!   (started, leader elected or lost, membership changed), from the
//!   node's Raft metrics.
//!
//! Every write that must survive a crash is flushed to disk before openraft
//! is told it happened. The state machine writes nothing per apply: it
//! persists snapshots, and a restarted node re-applies the committed log
//! after its snapshot inside `Raft::new`, so it has its state before it
//! serves (design rule C5). The rest of the node reads the state through
//! [`StateMachineStore::current`] and follows it through
//! [`StateMachineStore::subscribe`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bearer;
mod cluster;
pub mod codec;
mod error;
mod figures;
pub mod group_commit;
mod leadership;
mod legacy_outcome;
mod log_store;
mod member_client;
pub mod network;
mod raft_events;
pub mod rpc_server;
mod state_machine;
mod status;
mod store;
pub mod tls;
mod transport;
pub mod types;
pub mod wire;
pub mod write_latency;

pub use cluster::{ClusterConfig, RaftNode, WRITE_LIMIT};
pub use codec::{decode, encode, CodecError};
pub use error::error_chain;
pub use error::ClusterError;
pub use figures::RaftFigures;
pub use log_store::LogStore;
pub use state_machine::{LoadError, StateMachineStore, DEDUP_WINDOW};
pub use status::{ClusterStatus, MemberHolds, MemberStatus};
pub use store::{open, OpenError};
pub use types::{
    Entry, LogId, LogState, Membership, NodeId, Outcome, Raft, Request, RequestId, Response,
    Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote,
};
pub use wire::{
    ForwardedWrite, NodeIdentity, WriteOutcome, FORWARDED_HEADER, SELF_PATH, WRITE_PATH,
};
