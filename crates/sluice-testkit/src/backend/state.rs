//! The state a [`DemoBackend`](super::DemoBackend) shares between its
//! handle and every task: the recorded events (and a wake-up for those
//! waiting on them), the task set, what `/health` answers, and the guard
//! that records a connection's end.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::info;

use super::event::{BackendEvent, Recorded};

/// What `/health` answers.
#[derive(Debug, Clone, Default)]
pub(crate) enum HealthMode {
    #[default]
    Passing,
    /// `503` to these source addresses (all when empty).
    Failing(Vec<IpAddr>),
}

impl HealthMode {
    pub(crate) fn fails_for(&self, peer: IpAddr) -> bool {
        match self {
            HealthMode::Passing => false,
            HealthMode::Failing(from) => from.is_empty() || from.contains(&peer),
        }
    }
}

pub(crate) fn describe(from: &[IpAddr]) -> String {
    if from.is_empty() {
        "every prober".into()
    } else {
        from.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// State shared by the handle and every task.
pub(crate) struct BackendState {
    pub(crate) name: String,
    pub(crate) delay: Duration,
    pub(crate) events: Mutex<Vec<Recorded>>,
    pub(crate) changed: Notify,
    pub(crate) requests_started: AtomicU64,
    /// `None` once the backend is shutting down: nothing new is spawned.
    pub(crate) tasks: Mutex<Option<JoinSet<()>>>,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) health: Mutex<HealthMode>,
}

impl BackendState {
    pub(crate) fn record(&self, event: BackendEvent) {
        let recorded = Recorded {
            at: Instant::now(),
            wall: sluice_clock::now(),
            event,
        };
        lock(&self.events).push(recorded);
        self.changed.notify_waiters();
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Spawns `task` into the backend's task set, unless it is shutting down.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        if let Some(set) = tasks.as_mut() {
            // Reap finished tasks so the set does not grow without bound.
            while set.try_join_next().is_some() {}
            set.spawn(task);
        }
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not hide
/// the events from the others).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records `ConnectionClosed` when the last holder (the HTTP connection
/// task, or the WebSocket task after an upgrade) lets go of it.
pub(crate) struct ConnectionGuard {
    shared: Arc<BackendState>,
    peer: SocketAddr,
}

impl ConnectionGuard {
    pub(crate) fn open(shared: Arc<BackendState>, peer: SocketAddr) -> ConnectionGuard {
        info!("{} http connection opened from {}", shared.name, peer);
        shared.record(BackendEvent::ConnectionOpened { peer });
        ConnectionGuard { shared, peer }
    }

    pub(crate) fn shared(&self) -> &Arc<BackendState> {
        &self.shared
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        info!(
            "{} http connection from {} closed",
            self.shared.name, self.peer
        );
        self.shared
            .record(BackendEvent::ConnectionClosed { peer: self.peer });
    }
}
