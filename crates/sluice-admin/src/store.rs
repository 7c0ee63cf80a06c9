//! The command store: commands go through Raft ([`RaftNode::write`]: on the
//! leader, or forwarded to it), and a write is answered with what the leader
//! applied (N2) once every reachable member's data plane routes by the state
//! that includes it (C2). A member that is unreachable, or does not get
//! there within [`PROPAGATION_WAIT`], is named in the answer as pending and
//! catches up on its own (C4); the members' progress is followed by
//! [`PeerProgress`]. Each node's data plane is fed from its own state
//! machine by the [`Bridge`], which also tells the index it routes by.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_bridge::Bridge;
use sluice_model::{Applied, Command, ModelError, NodeId, State};
use sluice_proxy::DataPlane;
use sluice_raft::{ClusterError, Outcome, RaftNode};
use thiserror::Error;
use tracing::warn;

use crate::peer_progress::PeerProgress;

/// Longest a write waits for other members to route by it.
pub const PROPAGATION_WAIT: Duration = Duration::from_secs(2);

// The cluster routes still name the path from here.

/// Why a command was not applied.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The model refused the command (bad value, unknown name, ...); the
    /// log holds it, the state did not change.
    #[error(transparent)]
    Rejected(ModelError),
    /// Replication failed or has no leader now.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// A committed write, as the leader applied it.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// What applying the command did.
    pub applied: Applied,
    /// The objects it touched as they stood right after it, on the leader
    /// ([`State::excerpt`]).
    pub excerpt: State,
    /// Index of its log entry.
    pub log_index: u64,
    /// Members (this node included) whose data plane did not route by it
    /// yet when the wait ended, or that could not be asked.
    pub pending: Vec<NodeId>,
}

/// Orders commands through Raft and tracks what the data plane runs.
pub struct CommandStore {
    bridge: Arc<Bridge>,
    peers: Arc<PeerProgress>,
}

impl CommandStore {
    /// A store writing through `bridge`'s Raft node and waiting on the data
    /// plane it feeds.
    pub fn new(bridge: Arc<Bridge>) -> Self {
        CommandStore {
            peers: PeerProgress::new(bridge.node().clone()),
            bridge,
        }
    }

    /// The bridge between this node's Raft core and its data plane.
    pub fn bridge(&self) -> &Arc<Bridge> {
        &self.bridge
    }

    /// The last applied state (local read).
    pub fn current(&self) -> Arc<State> {
        self.bridge.node().current()
    }

    /// The Raft node.
    pub fn node(&self) -> &Arc<RaftNode> {
        self.bridge.node()
    }

    /// The data plane the bridge feeds.
    pub fn data_plane(&self) -> &Arc<DataPlane> {
        self.bridge.data_plane()
    }

    /// Log index this node's data plane routes by.
    pub fn applied_index(&self) -> u64 {
        self.bridge.applied_index()
    }

    /// Proposes one command; returns the leader's outcome once it is
    /// committed and every reachable member routes by it (or the wait
    /// ended: see [`Submitted::pending`]). A refused command changed
    /// nothing, so nothing is waited for.
    pub async fn submit(&self, command: Command) -> Result<Submitted, StoreError> {
        let written = self.node().write(command).await?;
        match written.outcome {
            Outcome::Applied { applied, excerpt } => {
                let pending = self.wait_everywhere(written.log_index).await;
                Ok(Submitted {
                    applied,
                    excerpt: excerpt.unwrap_or_default(),
                    log_index: written.log_index,
                    pending,
                })
            }
            Outcome::Rejected { error } => Err(StoreError::Rejected(error)),
        }
    }

    /// Resolves once this node's data plane runs `index` or later.
    pub async fn wait_applied(&self, index: u64) {
        self.bridge.wait_applied(index).await;
    }

    /// Waits until every member routes by `index`, at most
    /// [`PROPAGATION_WAIT`]; returns the members that did not (this node
    /// included), without waiting for those that cannot be asked.
    async fn wait_everywhere(&self, index: u64) -> Vec<NodeId> {
        let deadline = Instant::now() + PROPAGATION_WAIT;
        let (mine, mut pending) = tokio::join!(
            tokio::time::timeout_at(deadline.into(), self.wait_applied(index)),
            self.peers.wait_for(index, deadline.into())
        );
        if mine.is_err() {
            warn!(index, "this node's data plane did not catch up in time");
            pending.push(self.node().id());
            pending.sort_unstable();
        }
        pending
    }
}
