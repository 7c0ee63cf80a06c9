//! sluice's replication layer: the openraft type configuration, the sled
//! storage a node's Raft runs on, and the node's cluster operations.
//!
//! - [`types`]: [`TypeConfig`] — a log entry carries a [`Request`] (model
//!   commands in order), applying it answers a [`Response`] (an [`Outcome`]
//!   per command).
//! - [`open`]: one sled database per node holding the [`LogStore`] (log,
//!   vote) and the [`StateMachineStore`] (model state, snapshots).
//! - [`codec`]: the single bincode encoding used on disk and on the wire.
//! - [`network`]: Raft RPC over HTTP to the peers' admin ports.
//! - [`RaftNode`]: init, join, remove, status, and writes from any node;
//!   [`group_commit`] batches writes into shared entries on the leader and
//!   into shared forwarded calls on a follower.
//!
//! Every write that must survive a crash is flushed to disk before openraft
//! is told it happened, and the state machine is persisted after each
//! applied batch, so a restarted node has its state before it serves (design
//! rule C5). The rest of the node reads the state through
//! [`StateMachineStore::current`] and follows it through
//! [`StateMachineStore::subscribe`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cluster;
pub mod codec;
pub mod group_commit;
mod log_store;
mod member_client;
pub mod network;
mod state_machine;
mod store;
pub mod types;

pub use cluster::{
    ClusterConfig, ClusterError, ClusterStatus, ForwardedWrite, MemberStatus, NodeIdentity,
    RaftNode, WriteOutcome, FORWARDED_HEADER, SELF_PATH, WRITE_PATH,
};
pub use codec::{decode, encode, CodecError};
pub use log_store::LogStore;
pub use state_machine::{LoadError, StateMachineStore, DEDUP_WINDOW};
pub use store::{open, OpenError};
pub use types::{
    Entry, LogId, LogState, Membership, NodeId, Outcome, Raft, Request, RequestId, Response,
    Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote,
};
