//! [`DataPlane`]: the handle the node's control side holds to start the data
//! plane, hand it each applied state, and read its live figures.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use ractor::{Actor, ActorRef};
use sluice_model::{DrainId, State};
use tokio::task::JoinHandle;

use crate::applier::ApplierMessage;
use crate::backend::BackendRuntime;
use crate::error::ProxyError;
use crate::health::LocalHealth;
use crate::metrics::Metrics;
use crate::node::{Node, NodeArgs, NodeMessage};
use crate::routing::RoutingTable;
use crate::ProxySettings;

/// Told when this node has no work left on a draining backend, of its view
/// of each backend's health, and of each listener bind attempt.
pub trait DrainReporter: Send + Sync + 'static {
    /// Runs on a `Drain` actor, once per drain and node, as soon as the
    /// backend has no request in flight and no open tunnel here (at once for
    /// an idle backend, R2). It must not block: hand the report to a task
    /// that records it in the replicated state (`DrainFinished`).
    fn drain_finished(&self, drain: DrainId, group: &str, backend: &str);

    /// Runs on a health probe task when this node's view of a backend is
    /// first formed under a health-check revision, flips, or first passes
    /// (C6). It must not block: hand it to a task that logs it
    /// (`HealthReport`). The default drops it.
    fn health_view(&self, report: crate::ProbeReport) {
        let _ = report;
    }

    /// Runs on the state applier after an attempt to bind the listener of
    /// `generation` on `port`: the first attempt for that generation, then
    /// each retry whose outcome differs from the last one reported (bound,
    /// or failed with another reason). `Err` carries why the bind failed.
    /// It must not block: hand it to a task that logs it
    /// (`ListenerReport`). The default drops it.
    fn listener_bound(&self, port: u16, generation: u64, outcome: Result<(), String>) {
        let _ = (port, generation, outcome);
    }
}

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

type BackendKey = (Arc<str>, Arc<str>);

/// What the applier publishes for readers (the admin API); not on the
/// request path.
#[derive(Default)]
pub(crate) struct Shared {
    listeners: Mutex<BTreeMap<u16, ListenerStatus>>,
    backends: Mutex<HashMap<BackendKey, Arc<BackendRuntime>>>,
    health: Mutex<HashMap<BackendKey, LocalHealth>>,
}

impl Shared {
    pub(crate) fn publish(
        &self,
        listeners: BTreeMap<u16, ListenerStatus>,
        backends: HashMap<BackendKey, Arc<BackendRuntime>>,
    ) {
        *self.listeners.lock().unwrap_or_else(|p| p.into_inner()) = listeners;
        *self.backends.lock().unwrap_or_else(|p| p.into_inner()) = backends;
    }

    pub(crate) fn publish_listeners(&self, listeners: BTreeMap<u16, ListenerStatus>) {
        *self.listeners.lock().unwrap_or_else(|p| p.into_inner()) = listeners;
    }

    pub(crate) fn publish_health(&self, health: HashMap<BackendKey, LocalHealth>) {
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = health;
    }
}

/// A running data plane.
pub struct DataPlane {
    node: ActorRef<NodeMessage>,
    applier: ActorRef<ApplierMessage>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl DataPlane {
    /// Starts the supervision tree. Nothing listens until a state with
    /// listeners is applied.
    pub async fn start(
        settings: ProxySettings,
        reporter: Arc<dyn DrainReporter>,
    ) -> Result<DataPlane, ProxyError> {
        let shared = Arc::new(Shared::default());
        let metrics = Arc::new(Metrics::default());
        let (node, handle) = Actor::spawn(
            None,
            Node,
            NodeArgs {
                settings: Arc::new(settings),
                routes: Arc::new(ArcSwap::from_pointee(RoutingTable::default())),
                metrics: metrics.clone(),
                reporter,
                shared: shared.clone(),
            },
        )
        .await
        .map_err(|e| ProxyError::actor("node", e))?;
        let applier =
            ractor::call!(node, NodeMessage::Applier).map_err(|e| ProxyError::actor("node", e))?;
        Ok(DataPlane {
            node,
            applier,
            shared,
            metrics,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Makes the data plane run `state`; returns once new connections and
    /// requests are routed by it.
    pub async fn apply(&self, state: Arc<State>) -> Result<(), ProxyError> {
        ractor::call!(self.applier, ApplierMessage::Apply, state)
            .map_err(|e| ProxyError::actor("state applier", e))
    }

    /// Live work on a backend through this node (zero if unknown).
    pub fn backend_stats(&self, group: &str, addr: &str) -> BackendStats {
        let backends = self
            .shared
            .backends
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        backends
            .get(&(Arc::from(group), Arc::from(addr)))
            .map(|b| BackendStats {
                in_flight: b.in_flight.load(Ordering::Relaxed),
                tunnels: b.tunnels.load(Ordering::Relaxed),
            })
            .unwrap_or_default()
    }

    /// This node's last probe of a backend, if it probes it.
    pub fn local_health(&self, group: &str, addr: &str) -> Option<LocalHealth> {
        self.shared
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(Arc::from(group), Arc::from(addr)))
            .cloned()
    }

    /// Whether a listener is bound here.
    pub fn listener_status(&self, port: u16) -> Option<ListenerStatus> {
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&port)
            .cloned()
    }

    /// The node's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Resolves when the data plane stopped (it only stops on its own when a
    /// core actor failed).
    /// Only the first caller waits; later ones return at once.
    pub async fn stopped(&self) {
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Stops every actor and closes every connection.
    pub async fn stop(&self) {
        self.node.stop_children(None);
        self.node.stop(None);
        self.stopped().await;
    }
}
