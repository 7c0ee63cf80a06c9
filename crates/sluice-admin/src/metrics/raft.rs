//! Per-node Raft families: term, leader, commit and applied index,
//! members, each follower's lag (on the leader), and how long the writes
//! this node took needed to be committed and applied
//! (`sluice_write_duration_seconds`: admin API writes and the node's own
//! reports alike, measured in one place, sluice-raft's `write_all`). `sluice_raft_leader_id` is 0 when this node knows no
//! leader (node ids start at 1).

use sluice_raft::write_latency::WRITE_BUCKETS_SECONDS;
use sluice_raft::RaftFigures;

use super::exposition::{Family, Kind, Labels};

/// The Raft families of `r`.
pub(crate) fn families(node: &Labels, r: &RaftFigures) -> Vec<Family> {
    use Kind::{Gauge, Histogram};
    let gauge = |name, help, value: u64| {
        let mut f = Family::new(name, Gauge, help);
        f.sample(node, value);
        f
    };
    let mut lag = Family::new(
        "sluice_raft_follower_lag_entries",
        Gauge,
        "Log entries a member is behind the leader's last entry; reported by the leader only.",
    );
    for (follower, behind) in &r.follower_lag {
        lag.sample(&node.with("follower", &follower.to_string()), behind);
    }
    let mut writes = Family::new(
        "sluice_write_duration_seconds",
        Histogram,
        "Time from a write reaching this node (an admin API write, or this node's report of a bind, a health view or a finished drain) to the leader's answer that it is committed and applied.",
    );
    let w = &r.writes;
    writes.histogram(
        node,
        &WRITE_BUCKETS_SECONDS,
        &w.cumulative,
        w.count,
        w.sum_seconds,
    );
    vec![
        gauge("sluice_raft_term", "The Raft term this node is in.", r.term),
        gauge(
            "sluice_raft_leader_id",
            "Id of the leader this node follows (itself included); 0 when it knows none.",
            r.leader.unwrap_or(0),
        ),
        gauge(
            "sluice_raft_is_leader",
            "1 while this node leads, else 0.",
            u64::from(r.is_leader),
        ),
        gauge(
            "sluice_raft_commit_index",
            "Index of the last log entry this node knows committed.",
            r.commit_index,
        ),
        gauge(
            "sluice_raft_applied_index",
            "Index of the last log entry applied to this node's state.",
            r.applied_index,
        ),
        gauge(
            "sluice_raft_members",
            "Voting members of the cluster, as this node knows the membership.",
            r.voters,
        ),
        lag,
        writes,
    ]
}
