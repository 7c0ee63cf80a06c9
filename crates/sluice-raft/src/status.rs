//! [`ClusterStatus`]: the cluster as one node sees it — members, roles,
//! how far each has applied and, on the leader, replication lag — built
//! from this node's Raft metrics ([`RaftNode::status`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::cluster::RaftNode;

/// One member in [`ClusterStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberStatus {
    /// Node id.
    pub node: u64,
    /// Admin URL.
    pub addr: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    /// Log index its data plane runs (asked by the leader), else the last
    /// index the leader knows it matched.
    pub last_applied: Option<u64>,
    /// Entries it is behind the leader (known on the leader only).
    pub lag: Option<u64>,
    /// Whether the leader reached it just now (the admin API probes it).
    pub reachable: bool,
    /// Its own drain, if it drains (N1; filled in by the admin API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<sluice_model::NodeDrain>,
    /// What it holds, as it answered just now (filled in by the admin API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<MemberHolds>,
}

/// What a member holds: client connections, requests in flight, tunnels.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberHolds {
    /// Open client connections.
    pub connections: u64,
    /// Requests in flight to backends.
    pub requests: u64,
    /// Open WebSocket tunnels.
    pub tunnels: u64,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterStatus {
    /// The answering node.
    pub node: u64,
    /// Current leader, if known.
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Members, voters first.
    pub members: Vec<MemberStatus>,
    /// Why this node's Raft core stopped (a storage error, a panic); absent
    /// while it runs. A stopped node names no leader and its other fields
    /// are its last view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

// === impl RaftNode ===

impl RaftNode {
    /// The cluster as this node sees it (the leader sees replication).
    pub fn status(&self) -> ClusterStatus {
        let stopped = self.stopped();
        let m = self.raft().metrics().borrow().clone();
        // A stopped core's last metrics may still name a leader (itself
        // included): it follows none.
        let leader = m.current_leader.filter(|_| stopped.is_none());
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let last_log = m.last_log_index.unwrap_or(0);
        let mut members = Vec::new();
        for (id, node) in membership.nodes() {
            let role = if Some(*id) == leader {
                "leader"
            } else if voters.contains(id) {
                "follower"
            } else {
                "learner"
            };
            let (last_applied, lag, reachable) = if *id == m.id {
                (
                    m.last_applied.map(|l| l.index),
                    m.replication.as_ref().map(|_| 0),
                    true,
                )
            } else if let Some(repl) = &m.replication {
                let matched = repl.get(id).cloned().flatten().map(|l| l.index);
                let reachable = matched.is_some_and(|i| last_log.saturating_sub(i) < 1000);
                (
                    matched,
                    Some(last_log.saturating_sub(matched.unwrap_or(0))),
                    reachable,
                )
            } else {
                (None, None, true)
            };
            members.push(MemberStatus {
                node: *id,
                addr: node.addr.clone(),
                role: role.into(),
                last_applied,
                lag,
                reachable,
                drain: None,
                holds: None,
            });
        }
        members.sort_by_key(|mm| (!voters.contains(&mm.node), mm.node));
        ClusterStatus {
            node: m.id,
            leader,
            term: m.current_term,
            members,
            stopped,
        }
    }
}
