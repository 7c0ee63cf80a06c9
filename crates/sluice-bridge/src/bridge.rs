//! The running bridge: the feed of applied states into the data plane, the
//! log index it routes by, and the reporting loop started beside it.

use std::sync::Arc;

use sluice_proxy::DataPlane;
use sluice_raft::RaftNode;
use tokio::sync::watch;
use tracing::warn;

use crate::error::BridgeError;
use crate::events::EventQueue;
use crate::reports::run_reports;

/// Joins one node's Raft core and its data plane.
pub struct Bridge {
    node: Arc<RaftNode>,
    data_plane: Arc<DataPlane>,
    applied: watch::Receiver<u64>,
}

impl Bridge {
    /// Applies `node`'s current state to `data_plane` (before any listener
    /// accepts traffic, C5), then feeds it every newer applied state in the
    /// background, and writes the events of `queue` to the log.
    pub async fn start(
        node: Arc<RaftNode>,
        data_plane: Arc<DataPlane>,
        queue: EventQueue,
    ) -> Result<Arc<Bridge>, BridgeError> {
        let mut states = node.subscribe_indexed();
        let (index, state) = states.borrow_and_update().clone();
        data_plane
            .apply(state)
            .await
            .map_err(|source| BridgeError::DataPlaneRefused { index, source })?;
        let (applied_tx, applied) = watch::channel(index);
        let feed = data_plane.clone();
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                let (index, state) = states.borrow_and_update().clone();
                if let Err(e) = feed.apply(state).await {
                    warn!(index, error = %e, "data plane did not take the new state");
                    break;
                }
                applied_tx.send_if_modified(|current| {
                    let newer = index > *current;
                    if newer {
                        *current = index;
                    }
                    newer
                });
            }
        });
        tokio::spawn(run_reports(node.id(), node.clone(), queue));
        Ok(Arc::new(Bridge {
            node,
            data_plane,
            applied,
        }))
    }

    /// The Raft node.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// The data plane it feeds.
    pub fn data_plane(&self) -> &Arc<DataPlane> {
        &self.data_plane
    }

    /// Log index this node's data plane routes by.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Resolves once this node's data plane routes by `index` or later, or
    /// at once when the feed stopped (the data plane refused a state).
    pub async fn wait_applied(&self, index: u64) {
        let mut applied = self.applied.clone();
        let _ = applied.wait_for(|applied| *applied >= index).await;
    }

    /// The log index the data plane routes by, as it moves.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }
}
