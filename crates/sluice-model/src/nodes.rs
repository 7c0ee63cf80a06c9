//! A node's own drain (N1): started by an operator (`node drain`) or by the
//! node itself as it stops (SIGTERM), with an absolute deadline stamped by
//! the leader like any drain (C3). The data plane of the drained node reads
//! it; every other node only shows it.
//!
//! An operator's drain lasts until `node undrain`, across restarts. A
//! stopping drain belongs to the process that stopped: it names that
//! process's incarnation, the node's next process ignores it and clears it
//! ([`Command::NodeRestarted`](crate::Command::NodeRestarted)).

use crate::limits::validate_node_drain_timeout;
use crate::{Applied, DrainId, ModelError, NodeDrain, NodeDrainReason, NodeId, State, UnixMillis};

impl State {
    /// [`Command::DrainNode`](crate::Command::DrainNode). Draining a node
    /// that drains keeps its drain and deadline, with two exceptions: an
    /// operator's drain asked while the node stops makes the drain the
    /// operator's (it outlives the stopping process), and a stop of another
    /// process replaces an earlier process's stop. A stop during an
    /// operator's drain changes nothing here: the node drains until its own
    /// stop deadline anyway, and the operator's drain must survive the
    /// restart.
    pub(crate) fn drain_node(
        &mut self,
        node: NodeId,
        timeout_ms: u64,
        reason: NodeDrainReason,
        incarnation: Option<u64>,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        validate_node_drain_timeout(timeout_ms)?;
        if !self.nodes.contains(&node) {
            return Err(ModelError::NodeNotFound { node });
        }
        let deadline = at.saturating_add(timeout_ms);
        if let Some(d) = self.node_drains.get_mut(&node) {
            match (d.reason, reason) {
                (NodeDrainReason::Stopping, NodeDrainReason::Operator) => {
                    d.reason = NodeDrainReason::Operator;
                    d.incarnation = None;
                }
                (NodeDrainReason::Stopping, NodeDrainReason::Stopping)
                    if d.incarnation != incarnation =>
                {
                    d.incarnation = incarnation;
                    d.deadline = d.deadline.min(deadline);
                }
                _ => {}
            }
            return Ok(Applied::Draining {
                drain: d.drain,
                deadline: d.deadline,
                started: false,
            });
        }
        let drain = DrainId(self.next_drain);
        self.next_drain += 1;
        self.node_drains.insert(
            node,
            NodeDrain {
                drain,
                reason,
                incarnation: match reason {
                    NodeDrainReason::Operator => None,
                    NodeDrainReason::Stopping => incarnation,
                },
                started: at,
                deadline,
                finished: false,
            },
        );
        Ok(Applied::Draining {
            drain,
            deadline,
            started: true,
        })
    }

    /// [`Command::UndrainNode`](crate::Command::UndrainNode).
    pub(crate) fn undrain_node(&mut self, node: NodeId) -> Result<Applied, ModelError> {
        match self.node_drains.remove(&node) {
            Some(_) => Ok(Applied::Done),
            None if self.nodes.contains(&node) => Err(ModelError::NodeNotDraining { node }),
            None => Err(ModelError::NodeNotFound { node }),
        }
    }

    /// [`Command::NodeRestarted`](crate::Command::NodeRestarted): a stopping
    /// drain of an earlier process of the node ends.
    pub(crate) fn node_restarted(&mut self, node: NodeId, incarnation: u64) -> Applied {
        let earlier_stop = self.node_drains.get(&node).is_some_and(|d| {
            d.reason == NodeDrainReason::Stopping && d.incarnation != Some(incarnation)
        });
        if earlier_stop {
            self.node_drains.remove(&node);
        }
        Applied::Done
    }

    /// [`Command::NodeDrainFinished`](crate::Command::NodeDrainFinished): a
    /// report about an earlier drain of the node changes nothing.
    pub(crate) fn node_drain_finished(&mut self, node: NodeId, drain: DrainId) -> Applied {
        if let Some(d) = self.node_drains.get_mut(&node) {
            if d.drain == drain {
                d.finished = true;
            }
        }
        Applied::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    fn drain(node: NodeId, timeout_ms: u64, at: UnixMillis) -> Command {
        Command::DrainNode {
            node,
            timeout_ms,
            reason: NodeDrainReason::Operator,
            incarnation: None,
            at,
        }
    }

    fn stop(node: NodeId, timeout_ms: u64, incarnation: u64, at: UnixMillis) -> Command {
        Command::DrainNode {
            node,
            timeout_ms,
            reason: NodeDrainReason::Stopping,
            incarnation: Some(incarnation),
            at,
        }
    }

    #[test]
    fn a_drain_is_stamped_kept_and_undone() {
        let mut s = State::with_nodes([1, 2, 3]);
        let first = s.apply(&drain(2, 60_000, 1_000)).unwrap();
        assert_eq!(
            first,
            Applied::Draining {
                drain: DrainId(1),
                deadline: 61_000,
                started: true
            }
        );
        // Asked again: the same drain and deadline.
        let again = s.apply(&drain(2, 5_000, 9_000)).unwrap();
        assert_eq!(
            again,
            Applied::Draining {
                drain: DrainId(1),
                deadline: 61_000,
                started: false
            }
        );
        s.apply(&Command::UndrainNode { node: 2 }).unwrap();
        assert!(s.node_drains.is_empty());
        assert_eq!(
            s.apply(&Command::UndrainNode { node: 2 }).unwrap_err(),
            ModelError::NodeNotDraining { node: 2 }
        );
    }

    #[test]
    fn unknown_nodes_and_long_timeouts_are_refused() {
        let mut s = State::with_nodes([1]);
        assert_eq!(
            s.apply(&drain(7, 1_000, 1)).unwrap_err(),
            ModelError::NodeNotFound { node: 7 }
        );
        assert!(matches!(
            s.apply(&drain(1, 3_600_001, 1)).unwrap_err(),
            ModelError::OutOfRange { .. }
        ));
        assert_eq!(s.revision, 0);
    }

    #[test]
    fn an_operator_drain_outlives_a_stop_and_takes_over_a_stop() {
        let mut s = State::with_nodes([1, 2]);
        s.apply(&drain(2, 60_000, 0)).unwrap();
        s.apply(&stop(2, 10_000, 77, 1_000)).unwrap();
        let d = &s.node_drains[&2];
        assert_eq!(
            (d.reason, d.incarnation, d.deadline),
            (NodeDrainReason::Operator, None, 60_000)
        );
        assert!(d.applies_to(78), "the next process still drains");
        // An operator drains a stopping node: the drain becomes theirs.
        let mut s = State::with_nodes([1, 2]);
        s.apply(&stop(2, 10_000, 77, 0)).unwrap();
        s.apply(&drain(2, 60_000, 1_000)).unwrap();
        let d = &s.node_drains[&2];
        assert_eq!(
            (d.reason, d.incarnation, d.deadline),
            (NodeDrainReason::Operator, None, 10_000)
        );
        // The stop of the node's next process replaces the earlier one.
        let mut s = State::with_nodes([1, 2]);
        s.apply(&stop(2, 10_000, 77, 0)).unwrap();
        s.apply(&stop(2, 5_000, 78, 1_000)).unwrap();
        let d = &s.node_drains[&2];
        assert_eq!((d.incarnation, d.deadline), (Some(78), 6_000));
    }

    #[test]
    fn a_restarted_node_clears_only_an_earlier_process_stop() {
        let mut s = State::with_nodes([1, 2]);
        s.apply(&stop(2, 10_000, 77, 0)).unwrap();
        s.apply(&Command::NodeRestarted {
            node: 2,
            incarnation: 77,
        })
        .unwrap();
        assert!(s.node_drains.contains_key(&2), "its own stop stays");
        s.apply(&Command::NodeRestarted {
            node: 2,
            incarnation: 78,
        })
        .unwrap();
        assert!(s.node_drains.is_empty());
        // An operator's drain outlives restarts.
        s.apply(&drain(2, 10_000, 0)).unwrap();
        s.apply(&Command::NodeRestarted {
            node: 2,
            incarnation: 79,
        })
        .unwrap();
        assert!(s.node_drains[&2].applies_to(79));
    }

    #[test]
    fn finished_reports_only_count_for_the_current_drain_and_members_leave_with_theirs() {
        let mut s = State::with_nodes([1, 2]);
        s.apply(&drain(2, 10_000, 0)).unwrap();
        s.apply(&Command::NodeDrainFinished {
            node: 2,
            drain: DrainId(99),
        })
        .unwrap();
        assert!(!s.node_drains[&2].finished);
        s.apply(&Command::NodeDrainFinished {
            node: 2,
            drain: DrainId(1),
        })
        .unwrap();
        assert!(s.node_drains[&2].finished);
        s.apply(&Command::SetNodes { nodes: vec![1] }).unwrap();
        assert!(s.node_drains.is_empty());
    }
}
