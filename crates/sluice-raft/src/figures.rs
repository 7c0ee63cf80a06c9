//! [`RaftFigures`]: this node's Raft as numbers to alert on — term, leader,
//! commit and applied index, members, each follower's lag (on the leader)
//! and write durations — read from openraft's metrics, the log store's
//! committed index and [`WriteLatency`](crate::write_latency::WriteLatency)
//! without waiting on the Raft core.

use std::sync::atomic::Ordering;

use openraft::ServerState;

use crate::cluster::RaftNode;
use crate::write_latency::WriteLatencySnapshot;

/// This node's Raft at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftFigures {
    /// Current term.
    pub term: u64,
    /// The leader this node follows (itself included); `None` when it knows
    /// none, or its Raft core stopped.
    pub leader: Option<u64>,
    /// Whether this node leads now.
    pub is_leader: bool,
    /// Index of the last entry known committed (0: none).
    pub commit_index: u64,
    /// Index of the last entry applied to the state machine (0: none).
    pub applied_index: u64,
    /// Voters of the membership in force.
    pub voters: u64,
    /// On the leader: entries each other member (voter or learner) is
    /// behind the leader's last log index, by node id; empty elsewhere.
    pub follower_lag: Vec<(u64, u64)>,
    /// Durations of writes taken by this node.
    pub writes: WriteLatencySnapshot,
}

// === impl RaftNode ===

impl RaftNode {
    /// This node's Raft figures now.
    pub fn figures(&self) -> RaftFigures {
        let stopped = self.stopped().is_some();
        let m = self.raft().metrics().borrow().clone();
        let leader = m.current_leader.filter(|_| !stopped);
        let last_log = m.last_log_index.unwrap_or(0);
        let mut follower_lag: Vec<(u64, u64)> = m
            .replication
            .iter()
            .flat_map(|r| r.iter())
            .filter(|(id, _)| **id != m.id)
            .map(|(id, matched)| {
                let matched = matched.as_ref().map_or(0, |l| l.index);
                (*id, last_log.saturating_sub(matched))
            })
            .collect();
        follower_lag.sort_unstable();
        RaftFigures {
            term: m.current_term,
            leader,
            is_leader: !stopped && m.state == ServerState::Leader,
            commit_index: self.committed.load(Ordering::Relaxed),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            voters: m.membership_config.membership().voter_ids().count() as u64,
            follower_lag,
            writes: self.write_latency.snapshot(),
        }
    }
}
