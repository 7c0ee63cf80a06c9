//! [`Published`]: what the state applier publishes for readers (the admin
//! API through [`crate::DataPlane`]): each listener's bind, each backend's
//! live work counters, this node's health views. Not on the request path:
//! readers and the applier meet under plain mutexes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sluice_model::{DrainId, UnixMillis};
use tokio::sync::watch;

use crate::backend::BackendRuntime;
use crate::health_view::LocalHealth;

/// Whether a listener is bound on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    /// `ip:port` it binds.
    pub bind: String,
    /// `listening`, or why not.
    pub status: String,
}

impl ListenerStatus {
    pub(crate) fn listening(addr: std::net::SocketAddr) -> Self {
        ListenerStatus {
            bind: addr.to_string(),
            status: "listening".into(),
        }
    }
}

/// Live work on one backend through this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Requests in flight.
    pub in_flight: u64,
    /// Open WebSocket tunnels.
    pub tunnels: u64,
}

/// This node's own drain as its data plane runs it (N1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeDrainStatus {
    /// The replicated drain; `None` while only this node knows (a stop
    /// whose drain the cluster has not recorded, or could not: C4).
    pub drain: Option<DrainId>,
    /// When what is left is closed (Unix ms).
    pub deadline: UnixMillis,
    /// When the listeners stop accepting (Unix ms).
    pub accept_until: UnixMillis,
    /// Whether the node accepts no more and holds no client connection.
    pub finished: bool,
}

/// What this node holds now: client connections, requests in flight and
/// WebSocket tunnels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holds {
    /// Open client connections.
    pub connections: u64,
    /// Requests in flight to backends.
    pub requests: u64,
    /// Open WebSocket tunnels.
    pub tunnels: u64,
}

/// A backend by group and address.
pub(crate) type BackendKey = (Arc<str>, Arc<str>);

/// What the applier publishes for readers (the admin API); not on the
/// request path.
#[derive(Default)]
pub(crate) struct Published {
    pub(crate) listeners: Mutex<BTreeMap<u16, ListenerStatus>>,
    pub(crate) backends: Mutex<HashMap<BackendKey, Arc<BackendRuntime>>>,
    pub(crate) health: Mutex<HashMap<BackendKey, LocalHealth>>,
    pub(crate) node_drain: watch::Sender<Option<NodeDrainStatus>>,
}

impl Published {
    pub(crate) fn publish_node_drain(&self, status: Option<NodeDrainStatus>) {
        self.node_drain.send_if_modified(|now| {
            let changed = *now != status;
            *now = status;
            changed
        });
    }

    pub(crate) fn publish_listeners(&self, listeners: BTreeMap<u16, ListenerStatus>) {
        *self.listeners.lock().unwrap_or_else(|p| p.into_inner()) = listeners;
    }

    /// Shows a backend that runs (or runs anew) on this node.
    pub(crate) fn show_backend(&self, key: BackendKey, runtime: Arc<BackendRuntime>) {
        self.backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, runtime);
    }

    /// A backend that left this node.
    pub(crate) fn forget_backend(&self, key: &BackendKey) {
        self.backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// This node's view of one backend, or none (no longer probed).
    pub(crate) fn publish_health_of(&self, key: BackendKey, health: Option<LocalHealth>) {
        let mut all = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match health {
            Some(h) => {
                all.insert(key, h);
            }
            None => {
                all.remove(&key);
            }
        }
    }

    /// A backend this node no longer probes.
    pub(crate) fn forget_health(&self, key: &BackendKey) {
        self.publish_health_of(key.clone(), None);
    }
}
