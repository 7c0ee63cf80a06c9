//! A node's health view of a backend, recorded in the replicated state:
//! a majority of current views flips the backend's health (C6); a flip to
//! unhealthy of a backend that passed under the current revision drains it
//! when the group drains (R6, R8); a flip to healthy starts its ramp (R10).

use std::collections::BTreeSet;

use crate::{
    AfterDrain, Applied, BackendStatus, Drain, DrainCause, DrainId, ModelError, NodeHealth, NodeId,
    State, UnixMillis,
};

impl State {
    /// [`Command::HealthReport`](crate::Command::HealthReport): records a
    /// node's health view; on a replicated flip to unhealthy of a
    /// backend that passed under this revision, starts an R6 drain when
    /// the group drains (R8 otherwise: unhealthy, not drained).
    pub(crate) fn health_report(
        &mut self,
        group: &str,
        backend: &str,
        node: NodeId,
        view: NodeHealth,
    ) -> Result<Applied, ModelError> {
        let id = DrainId(self.next_drain);
        let members = self.nodes.clone();
        let g = self.group_mut(group)?;
        let (policy, checked, revision) = (g.drain, g.health.enabled, g.health_revision);
        let b = g.backend_mut(backend)?;
        if view.revision != revision || !checked {
            // Formed under an older configuration, or checks are off.
            return Ok(Applied::Done);
        }
        let at: UnixMillis = view.at;
        let Some(healthy) = b.health.record(&members, node, view) else {
            return Ok(Applied::Done);
        };
        b.health.since = at;
        if healthy && b.status == BackendStatus::Active {
            g.begin_ramp(backend, at);
            return Ok(Applied::Done);
        }
        let drains = !healthy
            && policy.enabled
            && b.health.proven
            && b.weight > 0
            && !b.maintenance
            && b.status == BackendStatus::Active;
        if !drains {
            return Ok(Applied::Done);
        }
        b.status = BackendStatus::Draining { drain: id };
        let deadline = at.saturating_add(policy.timeout_ms);
        let weight = b.weight;
        self.next_drain += 1;
        self.drains.insert(
            id,
            Drain {
                id,
                group: group.to_string(),
                backend: backend.to_string(),
                cause: DrainCause::HealthCheckFailed,
                started_at: at,
                deadline,
                finished: BTreeSet::new(),
                after: AfterDrain::Reactivate { weight },
            },
        );
        Ok(Applied::Draining {
            drain: id,
            deadline,
            started: true,
        })
    }
}
