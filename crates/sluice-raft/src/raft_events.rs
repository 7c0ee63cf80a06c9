//! One INFO line per Raft event an operator follows: the node's Raft
//! started, a leader was elected or lost, the membership changed.
//!
//! Why: openraft tells these at INFO among dozens of lines about its own
//! routine (some of them kilobyte-long struct dumps), so the node's filter
//! keeps it at `warn` by default (the binary's `log_filter.rs`); these lines
//! are what is left to read, one short line per event.
//!
//! How: a task follows this node's Raft metrics and compares each with the
//! one before ([`changes`]); it ends with the Raft core. Metrics that
//! change faster than the task runs are seen once, at their latest (a
//! leader elected and lost in between leaves no line). Snapshots are logged
//! by the state machine, which knows their size.

use std::collections::BTreeSet;
use std::fmt;

use openraft::{BasicNode, RaftMetrics};
use tracing::info;

use crate::leadership::Metrics;

/// What the lines are about, taken from one `RaftMetrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    term: u64,
    leader: Option<u64>,
    voters: BTreeSet<u64>,
    learners: BTreeSet<u64>,
}

impl Seen {
    fn of(m: &RaftMetrics<u64, BasicNode>) -> Seen {
        let membership = m.membership_config.membership();
        Seen {
            term: m.current_term,
            leader: m.current_leader,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
        }
    }
}

/// One event, as logged.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The first metrics of this process.
    Started {
        term: u64,
        voters: Ids,
        learners: Ids,
    },
    /// A leader for `term` is known.
    Elected { term: u64, leader: u64 },
    /// The leader of before is no longer known (an election is under way).
    LeaderLost { term: u64, was: u64 },
    /// Members joined, left, or learners became voters.
    Membership {
        voters: Ids,
        learners: Ids,
        joined: Ids,
        left: Ids,
        promoted: Ids,
    },
}

/// Node ids, written `1,2,3` (empty: none).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Ids(Vec<u64>);

impl Ids {
    fn of<'a>(ids: impl IntoIterator<Item = &'a u64>) -> Ids {
        Ids(ids.into_iter().copied().collect())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Ids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// What changed from `before` (`None`: the process's first metrics) to
/// `now`, in the order it is logged.
pub(crate) fn changes(before: Option<&Seen>, now: &Seen) -> Vec<Change> {
    let mut out = Vec::new();
    let Some(before) = before else {
        out.push(Change::Started {
            term: now.term,
            voters: Ids::of(&now.voters),
            learners: Ids::of(&now.learners),
        });
        if let Some(leader) = now.leader {
            out.push(Change::Elected {
                term: now.term,
                leader,
            });
        }
        return out;
    };
    if before.voters != now.voters || before.learners != now.learners {
        let was: BTreeSet<u64> = before.voters.union(&before.learners).copied().collect();
        let is: BTreeSet<u64> = now.voters.union(&now.learners).copied().collect();
        out.push(Change::Membership {
            voters: Ids::of(&now.voters),
            learners: Ids::of(&now.learners),
            joined: Ids::of(is.difference(&was)),
            left: Ids::of(was.difference(&is)),
            promoted: Ids::of(before.learners.intersection(&now.voters)),
        });
    }
    match (before.leader, now.leader) {
        (_, Some(leader)) if (before.leader, before.term) != (now.leader, now.term) => {
            out.push(Change::Elected {
                term: now.term,
                leader,
            });
        }
        (Some(was), None) => out.push(Change::LeaderLost {
            term: now.term,
            was,
        }),
        _ => {}
    }
    out
}

impl Change {
    fn log(&self) {
        match self {
            Change::Started {
                term,
                voters,
                learners,
            } => {
                if voters.is_empty() && learners.is_empty() {
                    info!(term, "raft started: not a member of a cluster yet");
                } else {
                    info!(term, %voters, %learners, "raft started");
                }
            }
            Change::Elected { term, leader } => info!(term, leader, "leader elected"),
            Change::LeaderLost { term, was } => {
                info!(term, was, "leader lost: an election is under way");
            }
            Change::Membership {
                voters,
                learners,
                joined,
                left,
                promoted,
            } => {
                let joined = (!joined.is_empty()).then_some(tracing::field::display(joined));
                let left = (!left.is_empty()).then_some(tracing::field::display(left));
                let promoted = (!promoted.is_empty()).then_some(tracing::field::display(promoted));
                info!(%voters, %learners, joined, left, promoted, "membership changed");
            }
        }
    }
}

/// Logs the changes of `metrics` until the Raft core ends.
pub(crate) fn spawn(mut metrics: Metrics) {
    tokio::spawn(async move {
        let mut before: Option<Seen> = None;
        loop {
            let now = Seen::of(&metrics.borrow_and_update());
            for change in changes(before.as_ref(), &now) {
                change.log();
            }
            before = Some(now);
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(term: u64, leader: Option<u64>, voters: &[u64], learners: &[u64]) -> Seen {
        Seen {
            term,
            leader,
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
        }
    }

    fn ids(ids: &[u64]) -> Ids {
        Ids(ids.to_vec())
    }

    #[test]
    fn the_first_metrics_say_where_the_node_starts() {
        let now = seen(4, Some(1), &[1, 2, 3], &[]);
        assert_eq!(
            changes(None, &now),
            [
                Change::Started {
                    term: 4,
                    voters: ids(&[1, 2, 3]),
                    learners: ids(&[])
                },
                Change::Elected { term: 4, leader: 1 }
            ]
        );
        assert_eq!(changes(Some(&now), &now), [], "nothing changed: no line");
    }

    #[test]
    fn an_election_is_one_line_and_a_lost_leader_one() {
        let led = seen(1, Some(1), &[1, 2], &[]);
        let electing = seen(2, None, &[1, 2], &[]);
        let re_led = seen(2, Some(2), &[1, 2], &[]);
        assert_eq!(
            changes(Some(&led), &electing),
            [Change::LeaderLost { term: 2, was: 1 }]
        );
        assert_eq!(
            changes(Some(&electing), &re_led),
            [Change::Elected { term: 2, leader: 2 }]
        );
        // The same node elected again in a later term is a new election.
        let again = seen(3, Some(2), &[1, 2], &[]);
        assert_eq!(
            changes(Some(&re_led), &again),
            [Change::Elected { term: 3, leader: 2 }]
        );
        // A term that moves on without a leader is no line of its own.
        let later = seen(5, None, &[1, 2], &[]);
        assert_eq!(changes(Some(&electing), &later), []);
    }

    #[test]
    fn membership_changes_name_who_joined_left_or_was_promoted() {
        let one = seen(1, Some(1), &[1], &[]);
        let learner = seen(1, Some(1), &[1], &[2]);
        let voter = seen(1, Some(1), &[1, 2], &[]);
        let removed = seen(1, Some(1), &[1], &[]);
        assert_eq!(
            changes(Some(&one), &learner),
            [Change::Membership {
                voters: ids(&[1]),
                learners: ids(&[2]),
                joined: ids(&[2]),
                left: ids(&[]),
                promoted: ids(&[])
            }]
        );
        assert_eq!(
            changes(Some(&learner), &voter),
            [Change::Membership {
                voters: ids(&[1, 2]),
                learners: ids(&[]),
                joined: ids(&[]),
                left: ids(&[]),
                promoted: ids(&[2])
            }]
        );
        assert_eq!(
            changes(Some(&voter), &removed),
            [Change::Membership {
                voters: ids(&[1]),
                learners: ids(&[]),
                joined: ids(&[]),
                left: ids(&[2]),
                promoted: ids(&[])
            }]
        );
    }

    #[test]
    fn ids_are_written_comma_separated() {
        assert_eq!(ids(&[1, 2, 3]).to_string(), "1,2,3");
        assert_eq!(ids(&[]).to_string(), "");
    }
}
