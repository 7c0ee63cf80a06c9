//! A drain's end: each node reports it finished; when every member has
//! (R2), the drain completes and what was asked for afterwards happens —
//! removal, or reactivation of a backend re-added meanwhile (R5). A change
//! of membership can complete drains too.

use crate::{AfterDrain, Applied, BackendStatus, DrainId, ModelError, NodeId, State, UnixMillis};

impl State {
    /// [`Command::DrainFinished`](crate::Command::DrainFinished).
    pub(crate) fn drain_finished(
        &mut self,
        drain: DrainId,
        node: NodeId,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        let d = self
            .drains
            .get_mut(&drain)
            .ok_or(ModelError::DrainNotFound { drain })?;
        d.finished.insert(node);
        if self.complete_if_finished(drain, Some(at)) {
            Ok(Applied::DrainCompleted { drain })
        } else {
            Ok(Applied::Done)
        }
    }

    /// [`Command::SetNodes`](crate::Command::SetNodes): the members whose
    /// reports drains wait for; drains every remaining member finished
    /// complete now.
    pub(crate) fn set_nodes(&mut self, nodes: &[NodeId]) -> Result<Applied, ModelError> {
        self.nodes = nodes.iter().copied().collect();
        let members = &self.nodes;
        self.node_drains.retain(|n, _| members.contains(n));
        let ids: Vec<DrainId> = self.drains.keys().copied().collect();
        for id in ids {
            self.complete_if_finished(id, None);
        }
        Ok(Applied::Done)
    }

    /// Ends a drain once every member node has finished it (R2), and does
    /// what was asked for afterwards (R5). A reactivated backend ramps from
    /// `at` (the drain's deadline when the command carries no time, as a
    /// membership change). Returns whether it ended.
    pub(crate) fn complete_if_finished(&mut self, id: DrainId, at: Option<UnixMillis>) -> bool {
        let Some(d) = self.drains.get(&id) else {
            return false;
        };
        if !self.nodes.is_subset(&d.finished) {
            return false;
        }
        let Some(d) = self.drains.remove(&id) else {
            return false;
        };
        if let Some(g) = self.groups.get_mut(&d.group) {
            match d.after {
                AfterDrain::Remove => {
                    g.backends.remove(&d.backend);
                    if g.deleting && g.backends.is_empty() {
                        self.groups.remove(&d.group);
                    }
                }
                AfterDrain::Reactivate { weight } => {
                    if let Some(b) = g.backends.get_mut(&d.backend) {
                        b.status = BackendStatus::Active;
                        b.weight = weight;
                        g.begin_ramp(&d.backend, at.unwrap_or(d.deadline));
                    }
                }
            }
        }
        true
    }
}
