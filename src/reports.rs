//! What the data plane learns, logged as commands: finished drains (R2),
//! this node's health views (C6) and its listener binds.
//!
//! Each kind goes out in batches — whatever arrived meanwhile goes in one
//! call, which the leader puts in one log entry. Only a call that failed is
//! sent again (a second later); a report the state machine refused is in the
//! log already and is never sent again, so refusals cannot fill the log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_admin::CommandStore;
use sluice_model::{Command, DrainId, ModelError, NodeId};
use sluice_proxy::{DrainReporter, ProbeReport};
use sluice_raft::Outcome;
use tokio::sync::mpsc;
use tracing::warn;

/// Pause before a batch whose call failed is sent again.
const RETRY: Duration = Duration::from_secs(1);
/// Most reports in one call.
const BATCH: usize = 256;

/// Hands drain completions, health views and listener bind outcomes from
/// the data plane to the tasks that log them ([`Reports::spawn`]).
pub struct ReportToStore {
    drains: mpsc::UnboundedSender<DrainId>,
    health: mpsc::UnboundedSender<ProbeReport>,
    binds: mpsc::UnboundedSender<BindReport>,
}

/// What was reported, waiting for the command store to exist.
pub struct Reports {
    retry: mpsc::UnboundedSender<DrainId>,
    drains: mpsc::UnboundedReceiver<DrainId>,
    health: mpsc::UnboundedReceiver<ProbeReport>,
    binds: mpsc::UnboundedReceiver<BindReport>,
}

impl ReportToStore {
    /// The reporter for the data plane, and its reports for
    /// [`Reports::spawn`].
    pub fn new() -> (Arc<Self>, Reports) {
        let (drains, drains_rx) = mpsc::unbounded_channel();
        let (health, health_rx) = mpsc::unbounded_channel();
        let (binds, binds_rx) = mpsc::unbounded_channel();
        let reports = Reports {
            retry: drains.clone(),
            drains: drains_rx,
            health: health_rx,
            binds: binds_rx,
        };
        let reporter = Arc::new(ReportToStore {
            drains,
            health,
            binds,
        });
        (reporter, reports)
    }
}

impl Reports {
    /// Logs what was reported, and is reported from now on, through `store`.
    pub fn spawn(self, node: NodeId, store: Arc<CommandStore>) {
        tokio::spawn(report_drains(node, store.clone(), self.drains, self.retry));
        tokio::spawn(report_newest(node, store.clone(), self.health));
        tokio::spawn(report_newest(node, store, self.binds));
    }
}

impl DrainReporter for ReportToStore {
    fn drain_finished(&self, drain: DrainId, _group: &str, _backend: &str) {
        let _ = self.drains.send(drain);
    }

    fn health_view(&self, report: ProbeReport) {
        let _ = self.health.send(report);
    }

    fn listener_bound(&self, port: u16, generation: u64, outcome: Result<(), String>) {
        let _ = self.binds.send(BindReport {
            port,
            generation,
            outcome,
        });
    }
}

/// One bind attempt's outcome, as the data plane reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindReport {
    port: u16,
    generation: u64,
    outcome: Result<(), String>,
}

/// A report of which only the newest per key matters: it carries all the
/// older ones said.
trait Newest: Clone + PartialEq + Send + 'static {
    /// What a newer report replaces an older one by.
    type Key: Ord + Send;
    /// Its kind, for the logs.
    const KIND: &'static str;
    fn key(&self) -> Self::Key;
    fn command(&self, node: NodeId) -> Command;
    /// Whether a refusal with `code` is worth a warning.
    fn worth_a_warning(error: &ModelError) -> bool;
}

impl Newest for ProbeReport {
    type Key = (String, String);
    const KIND: &'static str = "health report";

    fn key(&self) -> Self::Key {
        (self.group.clone(), self.backend.clone())
    }

    fn command(&self, node: NodeId) -> Command {
        Command::HealthReport {
            group: self.group.clone(),
            backend: self.backend.clone(),
            node,
            revision: self.revision,
            healthy: self.healthy,
            passed: self.passed,
            detail: self.detail.clone(),
            at: 0,
        }
    }

    fn worth_a_warning(error: &ModelError) -> bool {
        // A backend removed meanwhile is no news.
        !matches!(
            error,
            ModelError::BackendNotFound { .. } | ModelError::GroupNotFound { .. }
        )
    }
}

impl Newest for BindReport {
    type Key = u16;
    const KIND: &'static str = "listener report";

    fn key(&self) -> Self::Key {
        self.port
    }

    fn command(&self, node: NodeId) -> Command {
        Command::ListenerReport {
            port: self.port,
            generation: self.generation,
            node,
            bound: self.outcome.is_ok(),
            detail: match &self.outcome {
                Ok(()) => "listening".into(),
                Err(reason) => reason.clone(),
            },
        }
    }

    fn worth_a_warning(_error: &ModelError) -> bool {
        true
    }
}

/// Logs the newest report per key in batches; one whose call failed is sent
/// again a second later unless a newer one replaced it.
async fn report_newest<R: Newest>(
    node: NodeId,
    store: Arc<CommandStore>,
    mut rx: mpsc::UnboundedReceiver<R>,
) {
    let mut pending: BTreeMap<R::Key, R> = BTreeMap::new();
    let mut batch = Vec::new();
    loop {
        if pending.is_empty() {
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
        } else {
            // Something waits for a retry: take what else arrived meanwhile.
            tokio::time::sleep(RETRY).await;
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
            }
        }
        for r in batch.drain(..) {
            pending.insert(r.key(), r);
        }
        let sent: Vec<R> = pending.values().cloned().collect();
        let commands = sent.iter().map(|r| r.command(node)).collect();
        match store.submit_quietly(commands).await {
            Ok(outcomes) => {
                for (r, outcome) in sent.iter().zip(outcomes) {
                    if let Outcome::Rejected { error } = outcome {
                        if R::worth_a_warning(&error) {
                            warn!(node, message = %error, "{} refused", R::KIND);
                        }
                    }
                    let key = r.key();
                    if pending.get(&key) == Some(r) {
                        pending.remove(&key);
                    }
                }
            }
            Err(e) => {
                warn!(node, reports = sent.len(), error = %e, "could not log {}s; retrying in 1s", R::KIND);
            }
        }
    }
}

/// Logs finished drains in batches; a batch whose call failed is queued
/// again a second later. A drain completes only when every member's report
/// is in the log; a report applied twice is refused harmlessly
/// (`drain_not_found`).
async fn report_drains(
    node: NodeId,
    store: Arc<CommandStore>,
    mut rx: mpsc::UnboundedReceiver<DrainId>,
    retry: mpsc::UnboundedSender<DrainId>,
) {
    let mut drains = Vec::new();
    while rx.recv_many(&mut drains, BATCH).await > 0 {
        let batch = std::mem::take(&mut drains);
        let store = store.clone();
        let retry = retry.clone();
        tokio::spawn(async move {
            let commands = batch
                .iter()
                .map(|&drain| Command::DrainFinished { drain, node, at: 0 })
                .collect();
            match store.submit_quietly(commands).await {
                Ok(outcomes) => {
                    for (drain, outcome) in batch.iter().zip(outcomes) {
                        match outcome {
                            Outcome::Applied { .. } => {}
                            // Completed already, or never known here.
                            Outcome::Rejected {
                                error: ModelError::DrainNotFound { .. },
                            } => {}
                            Outcome::Rejected { error } => {
                                warn!(node, %drain, message = %error, "drain report refused")
                            }
                        }
                    }
                }
                Err(e) => {
                    warn!(node, drains = batch.len(), error = %e, "could not record finished drains; retrying in 1s");
                    tokio::time::sleep(RETRY).await;
                    for drain in batch {
                        let _ = retry.send(drain);
                    }
                }
            }
        });
    }
}
