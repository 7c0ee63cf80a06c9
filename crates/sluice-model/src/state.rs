//! The replicated state and the pure `apply` that changes it: one line per
//! command, dispatched to the command's function (`groups.rs`,
//! `backends.rs`, `listeners.rs`, `drains.rs`, `health_reports.rs`,
//! `nodes.rs`).

use std::collections::{BTreeMap, BTreeSet};

use imbl::OrdMap;

use serde::{Deserialize, Serialize};

use crate::{
    Applied, BackendStatus, Cert, Command, Drain, DrainId, Group, Listener, ListenerDrain,
    ModelError, NodeDrain, NodeHealth, NodeId,
};

/// Everything the cluster agrees on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Server groups by name.
    pub groups: OrdMap<String, Group>,
    /// Listeners by port.
    pub listeners: BTreeMap<u16, Listener>,
    /// Drains in progress by id.
    pub drains: OrdMap<DrainId, Drain>,
    /// Removed listeners whose connections drain, by id; each leaves the
    /// state with the first leader-stamped command at or past its deadline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listener_drains: BTreeMap<DrainId, ListenerDrain>,
    /// Nodes that drain themselves (N1), by node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_drains: BTreeMap<NodeId, NodeDrain>,
    /// Certificates by name.
    #[serde(default, skip_serializing_if = "OrdMap::is_empty")]
    pub certs: OrdMap<String, Cert>,
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
            groups: OrdMap::new(),
            listeners: BTreeMap::new(),
            drains: OrdMap::new(),
            listener_drains: BTreeMap::new(),
            node_drains: BTreeMap::new(),
            certs: OrdMap::new(),
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

    /// One line per command: each has its function, in the file of its
    /// concern (groups, backends, listeners, drains, health reports).
    fn apply_inner(&mut self, command: &Command) -> Result<Applied, ModelError> {
        match command {
            Command::CreateGroup {
                name,
                drain,
                slow_start_ms,
            } => self.create_group(name, *drain, *slow_start_ms),
            Command::UpdateGroup {
                name,
                drain_enabled,
                drain_timeout_ms,
                health,
                slow_start_ms,
            } => self.update_group(
                name,
                *drain_enabled,
                *drain_timeout_ms,
                health,
                *slow_start_ms,
            ),
            Command::DeleteGroup { name, force, at } => self.delete_group(name, *force, *at),
            Command::AddBackend {
                group,
                addr,
                weight,
                at,
            } => self.add_backend(group, addr, *weight, *at),
            Command::SetBackend {
                group,
                addr,
                weight,
                maintenance,
                at,
            } => self.set_backend(group, addr, *weight, *maintenance, *at),
            Command::RemoveBackend { group, addr, at } => self.remove_backend(group, addr, *at),
            Command::AddListener {
                port,
                group,
                request_timeout_ms,
                tls,
            } => self.add_listener(*port, group, *request_timeout_ms, tls),
            Command::UpdateListener {
                port,
                group,
                request_timeout_ms,
                tls,
            } => self.update_listener(*port, group.as_deref(), *request_timeout_ms, tls.as_deref()),
            Command::RemoveListener { port, at } => self.remove_listener(*port, *at),
            Command::ListenerReport {
                port,
                generation,
                node,
                bound,
                detail,
            } => Ok(self.listener_report(*port, *generation, *node, *bound, detail)),
            Command::DrainFinished { drain, node, at } => self.drain_finished(*drain, *node, *at),
            Command::HealthReport {
                group,
                backend,
                node,
                revision,
                healthy,
                passed,
                detail,
                at,
            } => self.health_report(
                group,
                backend,
                *node,
                NodeHealth {
                    revision: *revision,
                    healthy: *healthy,
                    passed: *passed,
                    detail: detail.clone(),
                    at: *at,
                },
            ),
            Command::DrainNode {
                node,
                timeout_ms,
                reason,
                incarnation,
                at,
            } => self.drain_node(*node, *timeout_ms, *reason, *incarnation, *at),
            Command::UndrainNode { node } => self.undrain_node(*node),
            Command::NodeRestarted { node, incarnation } => {
                Ok(self.node_restarted(*node, *incarnation))
            }
            Command::NodeDrainFinished { node, drain } => {
                Ok(self.node_drain_finished(*node, *drain))
            }
            Command::SetNodes { nodes } => self.set_nodes(nodes),
            Command::AddCert { cert } => self.put_cert(cert, false),
            Command::UpdateCert { cert } => self.put_cert(cert, true),
            Command::RemoveCert { name } => self.remove_cert(name),
        }
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
