//! What the data plane tells the replicated state: the sink it reports to
//! and the queue the reporting loop reads.

use std::sync::Arc;

use sluice_model::{Command, DrainId, ModelError, NodeId};
use sluice_proxy::{DataPlaneEvents, ProbeReport};
use tokio::sync::mpsc;

/// The sink for the data plane and the queue for
/// [`Bridge::start`](crate::Bridge::start): make them before the data plane
/// starts, which is before the Raft node exists.
pub fn events() -> (Arc<EventSink>, EventQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(EventSink { tx }), EventQueue { rx })
}

/// Takes the data plane's reports without blocking it and queues them.
#[derive(Debug)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Event>,
}

/// The reports waiting to be written.
#[derive(Debug)]
pub struct EventQueue {
    pub(crate) rx: mpsc::UnboundedReceiver<Event>,
}

impl DataPlaneEvents for EventSink {
    fn drain_finished(&self, drain: DrainId, _group: &str, _backend: &str) {
        let _ = self.tx.send(Event::DrainFinished(drain));
    }

    fn health_view(&self, report: ProbeReport) {
        let _ = self.tx.send(Event::Health(report));
    }

    fn listener_bound(&self, port: u16, generation: u64, outcome: Result<(), String>) {
        let _ = self.tx.send(Event::Bind {
            port,
            generation,
            outcome,
        });
    }

    fn node_drain_finished(&self, drain: DrainId) {
        let _ = self.tx.send(Event::NodeDrainFinished(drain));
    }

    fn earlier_process_stopping(&self, incarnation: u64) {
        let _ = self.tx.send(Event::Restarted { incarnation });
    }
}

// === impl EventQueue ===

impl EventQueue {
    /// A queue and its sender, for tests that feed the reporting loop
    /// events directly.
    #[cfg(test)]
    pub(crate) fn for_tests() -> (mpsc::UnboundedSender<Event>, EventQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, EventQueue { rx })
    }
}

/// One report from the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// This node has no work left on a draining backend (R2).
    DrainFinished(DrainId),
    /// This node's view of a backend's health (C6).
    Health(ProbeReport),
    /// The outcome of an attempt to bind a listener; `Err` says why it
    /// failed.
    Bind {
        port: u16,
        generation: u64,
        outcome: Result<(), String>,
    },
    /// This node, draining itself, holds nothing any more (N1).
    NodeDrainFinished(DrainId),
    /// This node's process `incarnation` runs while the state holds a stop
    /// of an earlier one.
    Restarted { incarnation: u64 },
}

/// What a newer report replaces an older one by: the newest health view of
/// a backend and the newest bind of a port carry all the older ones said; a
/// drain is reported once (the same report again is the same command).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum EventKey {
    Drain(DrainId),
    Health { group: String, backend: String },
    Bind(u16),
    NodeDrain,
    Restarted,
}

// === impl Event ===

impl Event {
    pub(crate) fn key(&self) -> EventKey {
        match self {
            Event::DrainFinished(drain) => EventKey::Drain(*drain),
            Event::Health(r) => EventKey::Health {
                group: r.group.clone(),
                backend: r.backend.clone(),
            },
            Event::Bind { port, .. } => EventKey::Bind(*port),
            Event::NodeDrainFinished(_) => EventKey::NodeDrain,
            Event::Restarted { .. } => EventKey::Restarted,
        }
    }

    /// The command that logs it, reported by `node`.
    pub(crate) fn command(&self, node: NodeId) -> Command {
        match self {
            Event::DrainFinished(drain) => Command::DrainFinished {
                drain: *drain,
                node,
                at: 0,
            },
            Event::Health(r) => Command::HealthReport {
                group: r.group.clone(),
                backend: r.backend.clone(),
                node,
                revision: r.revision,
                healthy: r.healthy,
                passed: r.passed,
                detail: r.detail.clone(),
                at: 0,
            },
            Event::Bind {
                port,
                generation,
                outcome,
            } => Command::ListenerReport {
                port: *port,
                generation: *generation,
                node,
                bound: outcome.is_ok(),
                detail: match outcome {
                    Ok(()) => "listening".into(),
                    Err(reason) => reason.clone(),
                },
            },
            Event::NodeDrainFinished(drain) => Command::NodeDrainFinished {
                node,
                drain: *drain,
            },
            Event::Restarted { incarnation } => Command::NodeRestarted {
                node,
                incarnation: *incarnation,
            },
        }
    }

    /// Its kind, for the logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Event::DrainFinished(_) => "drain report",
            Event::Health(_) => "health report",
            Event::Bind { .. } => "listener report",
            Event::NodeDrainFinished(_) => "node drain report",
            Event::Restarted { .. } => "restart report",
        }
    }

    /// Whether the state machine refusing it with `error` is worth a
    /// warning: a drain completed already (or never known here) and a
    /// backend removed meanwhile are no news.
    pub(crate) fn refusal_is_news(&self, error: &ModelError) -> bool {
        match self {
            Event::DrainFinished(_) => !matches!(error, ModelError::DrainNotFound { .. }),
            Event::Health(_) => !matches!(
                error,
                ModelError::BackendNotFound { .. } | ModelError::GroupNotFound { .. }
            ),
            Event::Bind { .. } | Event::NodeDrainFinished(_) | Event::Restarted { .. } => true,
        }
    }
}
