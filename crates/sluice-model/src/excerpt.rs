//! The part of the state an operator's command touched, as it stands right
//! after the command was applied: carried back with the commit, it is the
//! write's answer wherever the write was sent (N2), whatever the answering
//! node has applied yet.

use std::collections::BTreeMap;

use imbl::OrdMap;

use crate::{BackendStatus, Cert, Command, Group, SecretPem, State};

impl State {
    /// The objects `command` touched, with the drains and member nodes their
    /// views need; `None` for the nodes' own reports. A deleted object is
    /// simply absent. Costs the touched objects, never the whole state.
    pub fn excerpt(&self, command: &Command) -> Option<State> {
        let mut out = State {
            groups: OrdMap::new(),
            listeners: BTreeMap::new(),
            drains: OrdMap::new(),
            listener_drains: BTreeMap::new(),
            node_drains: BTreeMap::new(),
            certs: OrdMap::new(),
            nodes: self.nodes.clone(),
            next_drain: self.next_drain,
            revision: self.revision,
        };
        match command {
            Command::CreateGroup { name, .. }
            | Command::UpdateGroup { name, .. }
            | Command::DeleteGroup { name, .. } => {
                if let Some(g) = self.groups.get(name) {
                    self.copy_drains_of(g, g.backends.keys(), &mut out);
                    out.groups.insert(name.clone(), g.clone());
                }
                out.listener_drains.extend(
                    self.listener_drains
                        .iter()
                        .filter(|(_, d)| &d.group == name)
                        .map(|(id, d)| (*id, d.clone())),
                );
            }
            Command::AddBackend { group, addr, .. }
            | Command::SetBackend { group, addr, .. }
            | Command::RemoveBackend { group, addr, .. } => {
                if let Some(g) = self.groups.get(group) {
                    let mut shell = Group {
                        backends: OrdMap::new(),
                        ..group_settings(g)
                    };
                    if let Some(b) = g.backends.get(addr) {
                        shell.backends.insert(addr.clone(), b.clone());
                    }
                    self.copy_drains_of(g, std::iter::once(addr), &mut out);
                    out.groups.insert(group.clone(), shell);
                }
            }
            Command::AddListener { port, .. }
            | Command::UpdateListener { port, .. }
            | Command::RemoveListener { port, .. } => {
                if let Some(l) = self.listeners.get(port) {
                    out.listeners.insert(*port, l.clone());
                }
                if let Some(d) = self.listener_drain_of(*port) {
                    out.listener_drains.insert(d.id, d.clone());
                }
            }
            Command::DrainNode { node, .. } | Command::UndrainNode { node } => {
                if let Some(d) = self.node_drains.get(node) {
                    out.node_drains.insert(*node, d.clone());
                }
            }
            Command::AddCert {
                cert: Cert { name, .. },
            }
            | Command::UpdateCert {
                cert: Cert { name, .. },
            }
            | Command::RemoveCert { name } => {
                // Without its key: an answer never carries it.
                if let Some(c) = self.certs.get(name) {
                    let shown = Cert {
                        key_pem: SecretPem(String::new()),
                        ..c.clone()
                    };
                    out.certs.insert(name.clone(), shown);
                }
                for port in self.listeners_using(name) {
                    if let Some(l) = self.listeners.get(&port) {
                        out.listeners.insert(port, l.clone());
                    }
                }
            }
            Command::ListenerReport { .. }
            | Command::DrainFinished { .. }
            | Command::NodeRestarted { .. }
            | Command::NodeDrainFinished { .. }
            | Command::HealthReport { .. }
            | Command::SetNodes { .. } => return None,
        }
        Some(out)
    }

    fn copy_drains_of<'a>(
        &self,
        g: &Group,
        addrs: impl Iterator<Item = &'a String>,
        out: &mut State,
    ) {
        for addr in addrs {
            if let Some(BackendStatus::Draining { drain }) = g.backends.get(addr).map(|b| b.status)
            {
                if let Some(d) = self.drains.get(&drain) {
                    out.drains.insert(drain, d.clone());
                }
            }
        }
    }
}

/// A group's settings without its backends.
fn group_settings(g: &Group) -> Group {
    Group {
        name: g.name.clone(),
        drain: g.drain,
        backends: OrdMap::new(),
        health: g.health.clone(),
        health_revision: g.health_revision,
        slow_start_ms: g.slow_start_ms,
        deleting: g.deleting,
    }
}
