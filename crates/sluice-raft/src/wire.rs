//! The member-to-member contract on the admin port: the paths, the header
//! that limits a request to one hop, and the bodies a forwarded write and a
//! node's identity travel in. The client side is `member_client.rs`
//! and [`crate::network`]; the server side is [`crate::rpc_server`].

use serde::{Deserialize, Serialize};
use sluice_model::Command;

use crate::types::{Outcome, RequestId};

/// Path of each Raft RPC on a node's admin port (bincode bodies, see
/// [`crate::codec`]).
pub mod paths {
    /// AppendEntries.
    pub const APPEND: &str = "/raft/append";
    /// RequestVote.
    pub const VOTE: &str = "/raft/vote";
    /// One InstallSnapshot chunk.
    pub const SNAPSHOT: &str = "/raft/snapshot";
}

/// Path on the leader's admin port that takes forwarded writes.
pub const WRITE_PATH: &str = "/raft/write";
/// Path on every node's admin port that tells who it is.
pub const SELF_PATH: &str = "/v1/cluster/self";
/// Header every call from one member to another carries: a node that gets
/// a call with it answers from itself and never passes it on (one hop).
pub const FORWARDED_HEADER: &str = "x-sluice-forwarded";

/// A committed write: the log index it got and what applying it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// Index of its log entry (shared with the commands batched with it).
    pub log_index: u64,
    /// What applying the command did.
    pub outcome: Outcome,
}

/// Writes a follower forwards to the leader (body of [`WRITE_PATH`]); the
/// answer is `Result<Vec<WriteOutcome>, ClusterError>`, one outcome per
/// command.
///
/// [`ClusterError`]: crate::ClusterError
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedWrite {
    /// The commands, unstamped, in order.
    #[serde(with = "crate::codec::as_json")]
    pub commands: Vec<Command>,
    /// One id per command, chosen by the node that took the write.
    pub ids: Vec<RequestId>,
}

/// Who a node is (answer of [`SELF_PATH`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Node id.
    pub node: u64,
    /// Advertised admin URL.
    pub addr: String,
}
