//! [`DataPlane`]: the handle the node's control side holds to start the data
//! plane, hand it each applied state, and read its live figures.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use ractor::{Actor, ActorRef};
use sluice_model::{State, UnixMillis};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::access_log::AccessLog;
use crate::backend::BackendRuntime;
use crate::error::ProxyError;
use crate::events::DataPlaneEvents;
use crate::health_view::LocalHealth;
use crate::listener_counters::ListenerFigures;
use crate::messages::{ApplierMessage, SupervisionMessage};
use crate::metrics::Metrics;
use crate::published::{BackendStats, Holds, ListenerStatus, NodeDrainStatus, Published};
use crate::routing::RoutingTable;
use crate::settings::ProxySettings;
use crate::supervision::{DataPlaneSupervisor, SupervisionArgs};
use crate::traffic_snapshot::TrafficSnapshot;

/// A running data plane.
pub struct DataPlane {
    root: ActorRef<SupervisionMessage>,
    applier: ActorRef<ApplierMessage>,
    published: Arc<Published>,
    metrics: Arc<Metrics>,
    access_log: Option<Arc<AccessLog>>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl DataPlane {
    /// Starts the supervision tree. Nothing listens until a state with
    /// listeners is applied.
    pub async fn start(
        settings: ProxySettings,
        events: Arc<dyn DataPlaneEvents>,
    ) -> Result<DataPlane, ProxyError> {
        let published = Arc::new(Published::default());
        let metrics = Arc::new(Metrics::default());
        let access_log = settings.access_log.clone();
        let (root, handle) = Actor::spawn(
            None,
            DataPlaneSupervisor,
            SupervisionArgs {
                settings: Arc::new(settings),
                routes: Arc::new(ArcSwap::from_pointee(RoutingTable::default())),
                metrics: metrics.clone(),
                events,
                published: published.clone(),
            },
        )
        .await
        .map_err(|e| ProxyError::actor("node", e))?;
        let applier = ractor::call!(root, SupervisionMessage::Applier)
            .map_err(|e| ProxyError::actor("node", e))?;
        Ok(DataPlane {
            root,
            applier,
            published,
            metrics,
            access_log,
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
        self.read_backend(group, addr, |b| BackendStats {
            in_flight: b.in_flight.load(Ordering::Relaxed),
            tunnels: b.tunnels.load(Ordering::Relaxed),
        })
        .unwrap_or_default()
    }

    /// A backend's traffic through this node, while its runtime lives here
    /// (through its drain, after its removal). `None` if unknown, or if it
    /// has had no request through this node yet.
    pub fn backend_traffic(&self, group: &str, addr: &str) -> Option<TrafficSnapshot> {
        self.read_backend(group, addr, |b| {
            b.traffic_seen()
                .map(|t| t.snapshot(b.pool.open_connections()))
        })
        .flatten()
    }

    /// `read` of the runtime of backend `addr` in `group`, if it runs here.
    fn read_backend<T>(
        &self,
        group: &str,
        addr: &str,
        read: impl FnOnce(&BackendRuntime) -> T,
    ) -> Option<T> {
        let backends = self
            .published
            .backends
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        backends
            .get(&(Arc::from(group), Arc::from(addr)))
            .map(|b| read(b))
    }

    /// Access-log lines dropped because the log's writer could not keep
    /// up (zero without an access log).
    pub fn access_log_dropped(&self) -> u64 {
        self.access_log.as_ref().map_or(0, |log| log.dropped())
    }

    /// This node's last probe of a backend, if it probes it.
    pub fn local_health(&self, group: &str, addr: &str) -> Option<LocalHealth> {
        self.published
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(Arc::from(group), Arc::from(addr)))
            .cloned()
    }

    /// Whether a listener is bound here.
    pub fn listener_status(&self, port: u16) -> Option<ListenerStatus> {
        self.published
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&port)
            .cloned()
    }

    /// Drains this node until `deadline` (Unix ms) whatever the replicated
    /// state says: a stop that starts before, or without, the cluster
    /// recording it (C4). The earlier deadline wins over a replicated one.
    /// Returns once every listener was told.
    pub async fn drain_locally(&self, deadline: UnixMillis) -> Result<(), ProxyError> {
        ractor::call!(self.applier, |reply| ApplierMessage::DrainLocally {
            deadline,
            reply
        })
        .map_err(|e| ProxyError::actor("state applier", e))
    }

    /// The connection counters of the listener on `port`, while it runs
    /// here (through its drain).
    pub fn listener_figures(&self, port: u16) -> Option<ListenerFigures> {
        self.metrics.listeners.figures(port)
    }

    /// This node's own drain, while it runs (N1).
    pub fn node_drain(&self) -> Option<NodeDrainStatus> {
        *self.published.node_drain.borrow()
    }

    /// Follows this node's own drain.
    pub fn watch_node_drain(&self) -> watch::Receiver<Option<NodeDrainStatus>> {
        self.published.node_drain.subscribe()
    }

    /// What this node holds now: client connections, requests in flight and
    /// tunnels (summed over its backends).
    pub fn holds(&self) -> Holds {
        let (requests, tunnels) = self
            .published
            .backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .fold((0, 0), |(r, t), b| {
                (
                    r + b.in_flight.load(Ordering::Relaxed),
                    t + b.tunnels.load(Ordering::Relaxed),
                )
            });
        Holds {
            connections: self.metrics.connections_open.load(Ordering::Relaxed),
            requests,
            tunnels,
        }
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
        self.root.stop_children(None);
        self.root.stop(None);
        self.stopped().await;
    }
}
