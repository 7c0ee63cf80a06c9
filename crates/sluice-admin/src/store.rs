//! The command store: commands go through Raft ([`RaftNode::write`]: on the
//! leader, or forwarded to it), and a write is answered with what the leader
//! applied (N2) once every reachable member's data plane routes by the state
//! that includes it (C2). A member that is unreachable, or does not get
//! there within [`PROPAGATION_WAIT`], is named in the answer as pending and
//! catches up on its own (C4); the members' progress is followed by
//! [`PeerProgress`]. Each node's data plane is fed from its own state
//! machine (see [`CommandStore::start`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_model::{Applied, Command, ModelError, NodeId, State};
use sluice_proxy::DataPlane;
use sluice_raft::{ClusterError, Outcome, RaftNode};
use thiserror::Error;
use tokio::sync::watch;
use tracing::warn;

use crate::peer_progress::PeerProgress;

/// Longest a write waits for other members to route by it.
pub const PROPAGATION_WAIT: Duration = Duration::from_secs(2);

/// Path every node answers with the log index its data plane runs.
pub const APPLIED_PATH: &str = "/v1/cluster/applied";

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
    node: Arc<RaftNode>,
    data_plane: Arc<DataPlane>,
    applied: watch::Receiver<u64>,
    peers: Arc<PeerProgress>,
}

impl CommandStore {
    /// Applies the node's current state to the data plane (before any
    /// listener accepts traffic, C5), then keeps feeding it every applied
    /// state in the background.
    pub async fn start(
        node: Arc<RaftNode>,
        data_plane: Arc<DataPlane>,
    ) -> Result<Self, StoreError> {
        let (tx, applied) = watch::channel(0u64);
        let mut states = node.subscribe_indexed();
        let (index, state) = states.borrow_and_update().clone();
        data_plane
            .apply(state)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        tx.send_replace(index);
        let feed_dp = data_plane.clone();
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                let (index, state) = states.borrow_and_update().clone();
                if let Err(e) = feed_dp.apply(state).await {
                    warn!(error = %e, "data plane did not take the new state");
                    break;
                }
                tx.send_if_modified(|cur| {
                    let newer = index > *cur;
                    if newer {
                        *cur = index;
                    }
                    newer
                });
            }
        });
        Ok(CommandStore {
            peers: PeerProgress::new(node.clone()),
            node,
            data_plane,
            applied,
        })
    }

    /// The last applied state (local read).
    pub fn current(&self) -> Arc<State> {
        self.node.current()
    }

    /// The Raft node.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// The data plane this store feeds.
    pub fn data_plane(&self) -> &Arc<DataPlane> {
        &self.data_plane
    }

    /// Log index this node's data plane routes by.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Proposes one command; returns the leader's outcome once it is
    /// committed and every reachable member routes by it (or the wait
    /// ended: see [`Submitted::pending`]). A refused command changed
    /// nothing, so nothing is waited for.
    pub async fn submit(&self, command: Command) -> Result<Submitted, StoreError> {
        let written = self.node.write(command).await?;
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

    /// Proposes commands in one call without waiting for the other
    /// members (drain reports from the data plane); one outcome each.
    pub async fn submit_quietly(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, StoreError> {
        let written = self.node.write_all(commands).await?;
        Ok(written.into_iter().map(|w| w.outcome).collect())
    }

    /// Resolves once this node's data plane runs `index` or later.
    pub async fn wait_applied(&self, index: u64) {
        let mut mine = self.applied.clone();
        let _ = mine.wait_for(|applied| *applied >= index).await;
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
            pending.push(self.node.id());
            pending.sort_unstable();
        }
        pending
    }
}
