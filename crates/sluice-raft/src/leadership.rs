//! Who leads, read from this node's Raft metrics: the leader to forward to
//! ([`leader_addr`]) and the moment that changes ([`leader_changes`]).

use crate::types::Raft;

/// This node's Raft metrics.
pub(crate) type Metrics =
    tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>;

/// The current leader's id and admin URL, if one is known and it is not
/// this node.
pub(crate) fn leader_addr(raft: &Raft) -> Option<(u64, String)> {
    let m = raft.metrics().borrow().clone();
    let leader = m.current_leader?;
    if leader == m.id {
        // Either this node leads (the caller asked `is_leader` first) or its
        // Raft core stopped and its last metrics still name it: never a
        // leader to forward to, or a request would loop back to this node.
        return None;
    }
    let addr = m
        .membership_config
        .membership()
        .get_node(&leader)
        .map(|n| n.addr.clone())?;
    Some((leader, addr))
}

/// Resolves once `metrics` names a leader other than `from`, or the Raft
/// core stops.
pub(crate) async fn leader_changes(metrics: &mut Metrics, from: Option<u64>) {
    loop {
        if metrics.borrow_and_update().current_leader != from {
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
