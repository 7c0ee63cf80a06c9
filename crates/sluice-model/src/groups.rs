//! A group's life: created, updated (drain policy, health checks, slow
//! start), deleted — refused while used, or with `force` drained first.

use crate::limits::{
    validate_drain_timeout, validate_group_name, validate_health_check, validate_slow_start,
};
use crate::{
    Applied, DrainId, DrainPolicy, Group, HealthCheckUpdate, ModelError, State, UnixMillis,
};

impl State {
    /// [`Command::CreateGroup`](crate::Command::CreateGroup).
    pub(crate) fn create_group(
        &mut self,
        name: &str,
        drain: DrainPolicy,
        slow_start_ms: Option<u64>,
    ) -> Result<Applied, ModelError> {
        validate_group_name(name)?;
        validate_drain_timeout(drain.timeout_ms)?;
        if let Some(ms) = slow_start_ms {
            validate_slow_start(ms)?;
        }
        if self.groups.contains_key(name) {
            return Err(ModelError::GroupExists {
                group: name.to_string(),
            });
        }
        self.groups.insert(
            name.to_string(),
            Group {
                name: name.to_string(),
                drain,
                backends: imbl::OrdMap::new(),
                health: Default::default(),
                health_revision: 0,
                slow_start_ms,
                deleting: false,
            },
        );
        Ok(Applied::Done)
    }

    /// [`Command::UpdateGroup`](crate::Command::UpdateGroup). Drains in
    /// progress keep their deadline (R7).
    pub(crate) fn update_group(
        &mut self,
        name: &str,
        drain_enabled: Option<bool>,
        drain_timeout_ms: Option<u64>,
        health: &HealthCheckUpdate,
        slow_start_ms: Option<u64>,
    ) -> Result<Applied, ModelError> {
        if drain_enabled.is_none()
            && drain_timeout_ms.is_none()
            && slow_start_ms.is_none()
            && health.is_empty()
        {
            return Err(ModelError::NothingToUpdate {
                fields: "drain_enabled, drain_timeout_ms, slow_start_ms, health".into(),
            });
        }
        if let Some(ms) = drain_timeout_ms {
            validate_drain_timeout(ms)?;
        }
        if let Some(ms) = slow_start_ms.filter(|ms| *ms != 0) {
            validate_slow_start(ms)?;
        }
        let group = self.live_group_mut(name)?;
        let check = health.applied_to(&group.health);
        validate_health_check(&check)?;
        if let Some(enabled) = drain_enabled {
            group.drain.enabled = enabled;
        }
        if let Some(ms) = drain_timeout_ms {
            group.drain.timeout_ms = ms;
        }
        if let Some(ms) = slow_start_ms {
            group.slow_start_ms = (ms != 0).then_some(ms);
        }
        // R8: a new revision needs a new first pass before a failure
        // drains. Drains in progress are untouched (R7).
        if check != group.health {
            group.health = check;
            group.health_revision += 1;
            let addrs: Vec<String> = group.backends.keys().cloned().collect();
            for addr in addrs {
                if let Some(b) = group.backends.get_mut(&addr) {
                    b.health.proven = false;
                }
            }
        }
        Ok(Applied::Done)
    }

    /// [`Command::DeleteGroup`](crate::Command::DeleteGroup): deletes a
    /// group, or with `force` drains its listeners and backends and deletes
    /// it when the last drain completes.
    pub(crate) fn delete_group(
        &mut self,
        name: &str,
        force: bool,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        let g = self.group_mut(name)?;
        let backends: Vec<String> = g.backends.keys().cloned().collect();
        let listeners: Vec<u16> = self
            .listeners
            .values()
            .filter(|l| l.group == name)
            .map(|l| l.port)
            .collect();
        if !force && (!backends.is_empty() || !listeners.is_empty()) {
            return Err(ModelError::GroupInUse {
                group: name.to_string(),
                backends: backends.len(),
                listeners,
            });
        }
        for port in listeners {
            self.remove_listener(port, at)?;
        }
        for addr in &backends {
            self.start_removal(name, addr, at)?;
        }
        let g = self.group_mut(name)?;
        g.deleting = true;
        if g.backends.is_empty() {
            self.groups.remove(name);
        } else {
            // Drains of idle backends may already be complete (no members).
            let ids: Vec<DrainId> = self
                .drains
                .values()
                .filter(|d| d.group == name)
                .map(|d| d.id)
                .collect();
            for id in ids {
                self.complete_if_finished(id, Some(at));
            }
        }
        Ok(Applied::Done)
    }
}
