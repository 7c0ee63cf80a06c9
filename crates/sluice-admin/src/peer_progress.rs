//! How far each peer's data plane has got: one long poll per peer, shared by
//! every write that waits for it.
//!
//! Why: a write is answered once every reachable member routes by it (C2).
//! Asking each peer once per write costs two HTTP calls per write on a
//! three-node cluster; a follower of the peer's progress costs one call per
//! change of the peer's applied index, however many writes wait on it.
//!
//! How: [`PeerProgress::wait_for`] starts, on first use, a task per peer that
//! long-polls `GET /v1/cluster/applied?at_least=<known+1>` and publishes the
//! answers on a watch channel. A peer that fails to answer, or answers
//! without an index (its Raft core stopped), is marked unreachable (waiters stop waiting for it, it catches up on its own, C4)
//! and asked again after [`RETRY`]. A task ends when its peer leaves the
//! membership.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_model::NodeId;
use sluice_raft::RaftNode;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::applied_path::APPLIED_PATH;

/// Pause before asking a peer that failed to answer again.
const RETRY: Duration = Duration::from_millis(200);

/// What this node knows of a peer's data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    /// Log index the peer routes by, as last heard.
    applied: u64,
    /// Whether its last answer came (false: it failed, or none yet after a
    /// failure).
    reachable: bool,
}

/// The peers' progress, followed on demand.
pub(crate) struct PeerProgress {
    node: Arc<RaftNode>,
    peers: Mutex<HashMap<String, watch::Receiver<Progress>>>,
}

impl PeerProgress {
    pub(crate) fn new(node: Arc<RaftNode>) -> Arc<Self> {
        Arc::new(PeerProgress {
            node,
            peers: Mutex::new(HashMap::new()),
        })
    }

    /// Waits until every other member routes by `index`, is unreachable, or
    /// `deadline` passes; returns (and logs) the members that did not get
    /// there, sorted.
    pub(crate) async fn wait_for(self: &Arc<Self>, index: u64, deadline: Instant) -> Vec<NodeId> {
        let me = self.node.id();
        let peers: Vec<(NodeId, String)> = self
            .node
            .status()
            .members
            .into_iter()
            .filter(|m| m.node != me)
            .map(|m| (m.node, m.addr))
            .collect();
        let waits = peers.into_iter().map(|(node, addr)| {
            let mut progress = self.follow(&addr);
            async move {
                let reached = progress.wait_for(|p| p.applied >= index || !p.reachable);
                match tokio::time::timeout_at(deadline, reached).await {
                    Ok(Ok(p)) if p.applied >= index => None,
                    Ok(Ok(_)) => {
                        debug!(peer = %addr, index, "peer not reachable; it catches up on its own");
                        Some(node)
                    }
                    Ok(Err(_)) | Err(_) => {
                        warn!(peer = %addr, index, "peer did not route by the write in time");
                        Some(node)
                    }
                }
            }
        });
        let mut pending: Vec<NodeId> = futures_util::future::join_all(waits)
            .await
            .into_iter()
            .flatten()
            .collect();
        pending.sort_unstable();
        pending
    }

    /// The progress of `addr`, starting its follower if none runs.
    fn follow(self: &Arc<Self>, addr: &str) -> watch::Receiver<Progress> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = peers.get(addr) {
            if rx.has_changed().is_ok() {
                return rx.clone();
            }
        }
        let (tx, rx) = watch::channel(Progress {
            applied: 0,
            reachable: true,
        });
        peers.insert(addr.to_owned(), rx.clone());
        tokio::spawn(self.clone().poll(addr.to_owned(), tx));
        rx
    }

    /// The follower of one peer: long polls until the peer leaves the
    /// membership.
    async fn poll(self: Arc<Self>, addr: String, tx: watch::Sender<Progress>) {
        let mut known = 0u64;
        while self.is_member(&addr) {
            // After a failure, ask for an answer at once: it tells the peer
            // is back without waiting for its next change.
            let path = if tx.borrow().reachable {
                format!("{APPLIED_PATH}?at_least={}", known + 1)
            } else {
                APPLIED_PATH.to_owned()
            };
            let answer = self.node.get_json::<serde_json::Value>(&addr, &path).await;
            // An answer without an index (503 `raft_stopped`: the peer's Raft
            // core stopped) counts as no answer: its data plane will not move.
            match answer.map(|a| a["applied"].as_u64().ok_or(a)) {
                Ok(Ok(applied)) => {
                    known = applied;
                    tx.send_replace(Progress {
                        applied: known,
                        reachable: true,
                    });
                }
                Ok(Err(refusal)) => {
                    debug!(peer = %addr, answer = %refusal, "peer cannot report its progress");
                    tx.send_modify(|p| p.reachable = false);
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => {
                    debug!(peer = %addr, error = %e, "peer progress unknown");
                    tx.send_modify(|p| p.reachable = false);
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers
            .get(&addr)
            .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
        {
            peers.remove(&addr);
        }
        debug!(peer = %addr, "stopped following a node that left the cluster");
    }

    fn is_member(&self, addr: &str) -> bool {
        let me = self.node.id();
        self.node
            .status()
            .members
            .iter()
            .any(|m| m.addr == addr && m.node != me)
    }
}
