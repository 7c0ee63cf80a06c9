//! A listener's life: added, updated, bound (or not) on each node, removed
//! and drained.

use crate::limits::validate_request_timeout;
use crate::{
    validate_port, Applied, BindStatus, DrainId, Listener, ListenerDrain, ModelError, NodeId,
    State, UnixMillis,
};

impl State {
    pub(crate) fn add_listener(
        &mut self,
        port: u16,
        group: &str,
        request_timeout_ms: u64,
        tls: &[String],
    ) -> Result<Applied, ModelError> {
        validate_request_timeout(request_timeout_ms)?;
        validate_port(u32::from(port))?;
        self.live_group_mut(group)?;
        self.check_listener_certs(tls)?;
        if self.listeners.contains_key(&port) {
            return Err(ModelError::ListenerExists { port });
        }
        self.listeners.insert(
            port,
            Listener {
                port,
                group: group.to_string(),
                request_timeout_ms,
                // The revision this command gives the state.
                generation: self.revision + 1,
                nodes: Default::default(),
                tls: tls.to_vec(),
            },
        );
        Ok(Applied::Done)
    }

    pub(crate) fn update_listener(
        &mut self,
        port: u16,
        group: Option<&str>,
        request_timeout_ms: Option<u64>,
        tls: Option<&[String]>,
    ) -> Result<Applied, ModelError> {
        if group.is_none() && request_timeout_ms.is_none() && tls.is_none() {
            return Err(ModelError::NothingToUpdate {
                fields: "group, request_timeout_ms, tls".into(),
            });
        }
        if let Some(tls) = tls {
            self.check_listener_certs(tls)?;
        }
        if let Some(ms) = request_timeout_ms {
            validate_request_timeout(ms)?;
        }
        if let Some(g) = group {
            self.live_group_mut(g)?;
        }
        let l = self
            .listeners
            .get_mut(&port)
            .ok_or(ModelError::ListenerNotFound { port })?;
        if let Some(g) = group {
            l.group = g.to_string();
        }
        if let Some(ms) = request_timeout_ms {
            l.request_timeout_ms = ms;
        }
        if let Some(tls) = tls {
            l.tls = tls.to_vec();
        }
        Ok(Applied::Done)
    }

    /// Takes the listener out; its connections drain until the group's
    /// deadline (at once when the group does not drain).
    pub(crate) fn remove_listener(
        &mut self,
        port: u16,
        at: UnixMillis,
    ) -> Result<Applied, ModelError> {
        let l = self
            .listeners
            .remove(&port)
            .ok_or(ModelError::ListenerNotFound { port })?;
        let deadline = self
            .groups
            .get(&l.group)
            .map(|g| g.drain.deadline_from(at))
            .unwrap_or(at);
        let id = DrainId(self.next_drain);
        self.next_drain += 1;
        self.listener_drains.insert(
            id,
            ListenerDrain {
                id,
                port,
                generation: l.generation,
                group: l.group,
                request_timeout_ms: l.request_timeout_ms,
                started_at: at,
                deadline,
            },
        );
        Ok(Applied::Draining {
            drain: id,
            deadline,
            started: true,
        })
    }

    /// Records a node's bind attempt; one for a listener that is gone or
    /// was replaced is no news.
    pub(crate) fn listener_report(
        &mut self,
        port: u16,
        generation: u64,
        node: NodeId,
        bound: bool,
        detail: &str,
    ) -> Applied {
        if let Some(l) = self
            .listeners
            .get_mut(&port)
            .filter(|l| l.generation == generation)
        {
            l.nodes.insert(
                node,
                BindStatus {
                    bound,
                    detail: detail.to_string(),
                },
            );
        }
        Applied::Done
    }

    /// The drain of the newest removed listener on `port`, if it drains.
    pub fn listener_drain_of(&self, port: u16) -> Option<&ListenerDrain> {
        self.listener_drains.values().rev().find(|d| d.port == port)
    }
}
