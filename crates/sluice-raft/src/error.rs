//! [`ClusterError`]: why a cluster operation or a write failed. It travels
//! from the leader to the follower that forwarded a write, so it is
//! serializable (new variants go at the end: the wire names a variant by
//! its position).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a cluster operation failed.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum ClusterError {
    /// The store could not be opened.
    #[error("cannot open the raft store: {0}")]
    Open(String),
    /// openraft refused or failed.
    #[error("raft: {0}")]
    Raft(String),
    /// No leader is known (an election is under way or no quorum); the
    /// write was not applied and may be retried.
    #[error("no leader is elected right now (tried for {waited:?}); retry when the cluster has a quorum")]
    NoLeader {
        /// How long it waited.
        waited: Duration,
    },
    /// The leader (or a joining node) could not be reached.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// Whom.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The operation needs an initialised cluster.
    #[error("this node is not part of an initialised cluster yet (run `sluice cluster init` on the first node, `sluice cluster join` for the others)")]
    NotInitialized,
    /// Init on a node that already has a cluster.
    #[error("this node already belongs to an initialised cluster")]
    AlreadyInitialized,
    /// The write reached a leader, but its commit was not confirmed: that
    /// leader cannot reach a majority, or was replaced and no new leader
    /// confirmed it in time. It may still be applied.
    #[error("the write was not confirmed within {waited:?}: the leader cannot reach a majority of the cluster or was replaced; the outcome is unknown (it may still be applied), check the state before retrying")]
    CommitTimeout {
        /// How long it waited.
        waited: Duration,
    },
    /// The node is not a member of the cluster.
    #[error("node {node} is not a member of the cluster")]
    NodeNotFound {
        /// The node id asked for.
        node: u64,
    },
    /// The node is shutting down: its batching task is gone.
    #[error("the raft node is shutting down")]
    ShuttingDown,
    /// The leader answered a forwarded write with something other than its
    /// outcomes (an error status, or a body that does not decode).
    #[error("{addr} answered {answer}")]
    BadAnswer {
        /// The URL asked.
        addr: String,
        /// What came back.
        answer: String,
    },
    /// A forwarded write could not be encoded.
    #[error("cannot encode a forwarded write: {reason}")]
    Encode {
        /// The codec's error.
        reason: String,
    },
    /// A write's commands, ids and outcomes do not pair up one to one.
    #[error("{got} {what} for {commands} commands")]
    Mismatch {
        /// What was counted (`request ids`, `outcomes`).
        what: String,
        /// How many there were.
        got: usize,
        /// How many commands.
        commands: usize,
    },
    /// The member client's TLS could not be set up.
    #[error("cannot set up TLS to the other members: {reason}")]
    Tls {
        /// rustls's reason.
        reason: String,
    },
}

impl ClusterError {
    pub(crate) fn raft(e: impl std::fmt::Display) -> Self {
        ClusterError::Raft(e.to_string())
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClusterError::NoLeader { .. }
                | ClusterError::Unreachable { .. }
                | ClusterError::CommitTimeout { .. }
        )
    }
}

/// An error and its sources on one line, each source once. hyper's own
/// message is only "client error (Connect)"; the reason (an untrusted
/// certificate, a refused connection) is in a source below it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
