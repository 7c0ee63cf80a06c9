//! The replicated state and the pure `apply` that changes it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::limits::{
    validate_backend_addr, validate_drain_timeout, validate_group_name, validate_health_check,
    validate_slow_start, validate_weight,
};
use crate::{
    AfterDrain, Applied, Backend, BackendStatus, Command, Drain, DrainCause, DrainId, Group,
    Listener, ListenerDrain, ModelError, NodeHealth, NodeId, UnixMillis,
};

/// Everything the cluster agrees on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Server groups by name.
    pub groups: BTreeMap<String, Group>,
    /// Listeners by port.
    pub listeners: BTreeMap<u16, Listener>,
    /// Drains in progress by id.
    pub drains: BTreeMap<DrainId, Drain>,
    /// Removed listeners whose connections drain, by id; each leaves the
    /// state with the first leader-stamped command at or past its deadline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listener_drains: BTreeMap<DrainId, ListenerDrain>,
    /// Member nodes: a drain completes when all of them finished.
    pub nodes: BTreeSet<NodeId>,
    /// Id the next drain gets.
    pub next_drain: u64,
    /// Number of commands applied successfully.
    pub revision: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            groups: BTreeMap::new(),
            listeners: BTreeMap::new(),
            drains: BTreeMap::new(),
            listener_drains: BTreeMap::new(),
            nodes: BTreeSet::new(),
            next_drain: 1,
            revision: 0,
        }
    }
}

impl State {
    /// A state whose drains wait for the given nodes.
    pub fn with_nodes(nodes: impl IntoIterator<Item = NodeId>) -> Self {
        State {
            nodes: nodes.into_iter().collect(),
            ..State::default()
        }
    }

    /// Applies one command. On error the state is unchanged.
    pub fn apply(&mut self, command: &Command) -> Result<Applied, ModelError> {
        let applied = self.apply_inner(command)?;
        self.revision += 1;
        if let Some(at) = command.stamped_at() {
            self.listener_drains.retain(|_, d| d.deadline > at);
        }
        Ok(applied)
    }

    fn apply_inner(&mut self, command: &Command) -> Result<Applied, ModelError> {
        match command {
            Command::CreateGroup {
                name,
                drain,
                slow_start_ms,
            } => {
                validate_group_name(name)?;
                validate_drain_timeout(drain.timeout_ms)?;
                if let Some(ms) = slow_start_ms {
                    validate_slow_start(*ms)?;
                }
                if self.groups.contains_key(name) {
                    return Err(ModelError::GroupExists {
                        group: name.clone(),
                    });
                }
                self.groups.insert(
                    name.clone(),
                    Group {
                        name: name.clone(),
                        drain: *drain,
                        backends: BTreeMap::new(),
                        health: Default::default(),
                        health_revision: 0,
                        slow_start_ms: *slow_start_ms,
                        deleting: false,
                    },
                );
                Ok(Applied::Done)
            }
            Command::UpdateGroup {
                name,
                drain_enabled,
                drain_timeout_ms,
                health,
                slow_start_ms,
            } => {
                if drain_enabled.is_none()
                    && drain_timeout_ms.is_none()
                    && slow_start_ms.is_none()
                    && health.is_empty()
                {
                    return Err(ModelError::NothingToUpdate {
                        fields: "drain_enabled, drain_timeout_ms, slow_start_ms, health",
                    });
                }
                if let Some(ms) = drain_timeout_ms {
                    validate_drain_timeout(*ms)?;
                }
                if let Some(ms) = slow_start_ms.filter(|ms| *ms != 0) {
                    validate_slow_start(ms)?;
                }
                let group = self.live_group_mut(name)?;
                let check = health.applied_to(&group.health);
                validate_health_check(&check)?;
                if let Some(enabled) = drain_enabled {
                    group.drain.enabled = *enabled;
                }
                if let Some(ms) = drain_timeout_ms {
                    group.drain.timeout_ms = *ms;
                }
                if let Some(ms) = slow_start_ms {
                    group.slow_start_ms = (*ms != 0).then_some(*ms);
                }
                // R8: a new revision needs a new first pass before a
                // failure drains. Drains in progress are untouched (R7).
                if check != group.health {
                    group.health = check;
                    group.health_revision += 1;
                    for b in group.backends.values_mut() {
                        b.health.proven = false;
                    }
                }
                Ok(Applied::Done)
            }
            Command::AddBackend {
                group,
                addr,
                weight,
                at,
            } => {
                validate_backend_addr(addr)?;
                validate_weight(u32::from(*weight))?;
                let g = self.live_group_mut(group)?;
                match g.backends.get_mut(addr) {
                    None => {
                        g.backends.insert(
                            addr.clone(),
                            Backend {
                                addr: addr.clone(),
                                weight: *weight,
                                status: BackendStatus::Active,
                                health: Default::default(),
                                ramp: None,
                                maintenance: false,
                            },
                        );
                        g.begin_ramp(addr, *at);
                        Ok(Applied::Done)
                    }
                    Some(b) => match b.status {
                        BackendStatus::Active => {
                            let woke = b.weight == 0 && *weight > 0;
                            b.weight = *weight;
                            if woke || *weight == 0 {
                                g.begin_ramp(addr, *at);
                            }
                            Ok(Applied::Done)
                        }
                        BackendStatus::Draining { drain } => {
                            let Some(d) = self.drains.get_mut(&drain) else {
                                return Err(ModelError::DrainNotFound { drain });
                            };
                            d.after = AfterDrain::Reactivate { weight: *weight };
                            Ok(Applied::Draining {
                                drain,
                                deadline: d.deadline,
                                started: false,
                            })
                        }
                    },
                }
            }
            Command::RemoveBackend { group, addr, at } => {
                self.group_mut(group)?;
                self.start_removal(group, addr, *at)
            }
            Command::AddListener {
                port,
                group,
                request_timeout_ms,
            } => self.add_listener(*port, group, *request_timeout_ms),
            Command::UpdateListener {
                port,
                group,
                request_timeout_ms,
            } => self.update_listener(*port, group.as_deref(), *request_timeout_ms),
            Command::RemoveListener { port, at } => self.remove_listener(*port, *at),
            Command::ListenerReport {
                port,
                generation,
                node,
                bound,
                detail,
            } => Ok(self.listener_report(*port, *generation, *node, *bound, detail)),
            Command::DeleteGroup { name, force, at } => self.delete_group(name, *force, *at),
            Command::SetBackend {
                group,
                addr,
                weight,
                maintenance,
                at,
            } => self.set_backend(group, addr, *weight, *maintenance, *at),
            Command::DrainFinished { drain, node, at } => {
                let d = self
                    .drains
                    .get_mut(drain)
                    .ok_or(ModelError::DrainNotFound { drain: *drain })?;
                d.finished.insert(*node);
                if self.complete_if_finished(*drain, Some(*at)) {
                    Ok(Applied::DrainCompleted { drain: *drain })
                } else {
                    Ok(Applied::Done)
                }
            }
            Command::HealthReport {
                group,
                backend,
                node,
                revision,
                healthy,
                passed,
                detail,
                at,
            } => {
                let report = NodeHealth {
                    revision: *revision,
                    healthy: *healthy,
                    passed: *passed,
                    detail: detail.clone(),
                    at: *at,
                };
                self.health_report(group, backend, *node, report)
            }
            Command::SetNodes { nodes } => {
                self.nodes = nodes.iter().copied().collect();
                let ids: Vec<DrainId> = self.drains.keys().copied().collect();
                for id in ids {
                    self.complete_if_finished(id, None);
                }
                Ok(Applied::Done)
            }
        }
    }

    /// Records a node's health view; on a replicated flip to unhealthy of a
    /// backend that passed under this revision, starts an R6 drain when
    /// the group drains (R8 otherwise: unhealthy, not drained).
    fn health_report(
        &mut self,
        group: &str,
        backend: &str,
        node: NodeId,
        report: NodeHealth,
    ) -> Result<Applied, ModelError> {
        let id = DrainId(self.next_drain);
        let members = self.nodes.clone();
        let g = self.group_mut(group)?;
        let (policy, checked, revision) = (g.drain, g.health.enabled, g.health_revision);
        let b = g.backend_mut(backend)?;
        if report.revision != revision || !checked {
            // Formed under an older configuration, or checks are off.
            return Ok(Applied::Done);
        }
        let at: UnixMillis = report.at;
        let Some(healthy) = b.health.record(&members, node, report) else {
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

    /// Ends a drain once every member node has finished it (R2), and does
    /// what was asked for afterwards (R5). A reactivated backend ramps from
    /// `at` (the drain's deadline when the command carries no time, as a
    /// membership change). Returns whether it ended.
    fn complete_if_finished(&mut self, id: DrainId, at: Option<UnixMillis>) -> bool {
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

    /// Starts the drain of `addr` in `group` removed at `at` (R1), or makes
    /// a drain in progress end in removal.
    fn start_removal(
        &mut self,
        group: &str,
        addr: &str,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        let id = DrainId(self.next_drain);
        let g = self.group_mut(group)?;
        let policy = g.drain;
        let b = g.backend_mut(addr)?;
        if let BackendStatus::Draining { drain } = b.status {
            let Some(d) = self.drains.get_mut(&drain) else {
                return Err(ModelError::DrainNotFound { drain });
            };
            d.after = AfterDrain::Remove;
            return Ok(Applied::Draining {
                drain,
                deadline: d.deadline,
                started: false,
            });
        }
        b.status = BackendStatus::Draining { drain: id };
        let deadline = policy.deadline_from(at);
        self.next_drain += 1;
        self.drains.insert(
            id,
            Drain {
                id,
                group: group.to_string(),
                backend: addr.to_string(),
                cause: DrainCause::Removed,
                started_at: at,
                deadline,
                finished: BTreeSet::new(),
                after: AfterDrain::Remove,
            },
        );
        Ok(Applied::Draining {
            drain: id,
            deadline,
            started: true,
        })
    }

    /// Deletes a group, or with `force` drains its listeners and backends
    /// and deletes it when the last drain completes.
    fn delete_group(
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

    /// Changes a backend's weight or maintenance state.
    fn set_backend(
        &mut self,
        group: &str,
        addr: &str,
        weight: Option<u8>,
        maintenance: Option<bool>,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        if weight.is_none() && maintenance.is_none() {
            return Err(ModelError::NothingToUpdate {
                fields: "weight, maintenance",
            });
        }
        if let Some(w) = weight {
            validate_weight(u32::from(w))?;
        }
        let g = self.live_group_mut(group)?;
        let b = g.backend_mut(addr)?;
        if b.status != BackendStatus::Active {
            return Err(ModelError::BackendDraining {
                group: group.to_string(),
                backend: addr.to_string(),
            });
        }
        let took_work = b.weight > 0 && !b.maintenance;
        if let Some(w) = weight {
            b.weight = w;
        }
        if let Some(m) = maintenance {
            b.maintenance = m;
        }
        let takes_work = b.weight > 0 && !b.maintenance;
        if took_work != takes_work || (weight.is_some() && !takes_work) {
            g.begin_ramp(addr, at);
        }
        Ok(Applied::Done)
    }

    /// A group that takes changes: it exists and is not being deleted.
    pub(crate) fn live_group_mut(&mut self, name: &str) -> Result<&mut Group, ModelError> {
        let g = self.group_mut(name)?;
        if g.deleting {
            return Err(ModelError::GroupDeleting {
                group: name.to_string(),
            });
        }
        Ok(g)
    }

    pub(crate) fn group_mut(&mut self, name: &str) -> Result<&mut Group, ModelError> {
        self.groups
            .get_mut(name)
            .ok_or_else(|| ModelError::GroupNotFound {
                group: name.to_string(),
            })
    }

    /// The drain a backend is in, if any.
    pub fn drain_of(&self, group: &str, addr: &str) -> Option<&Drain> {
        match self.groups.get(group)?.backends.get(addr)?.status {
            BackendStatus::Draining { drain } => self.drains.get(&drain),
            BackendStatus::Active => None,
        }
    }
}
