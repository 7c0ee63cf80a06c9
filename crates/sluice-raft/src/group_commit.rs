//! Group commit on the leader: the writes that arrive while earlier entries
//! are being appended and replicated wait, and go out together as the next
//! log entry.
//!
//! Why: openraft 0.9 appends (and flushes) one client write at a time on the
//! leader, and every follower flushes each entry too, so one command per
//! entry caps a cluster at roughly one fsync round per command. A batch costs
//! the same fsyncs as a single command.
//!
//! How: [`GroupCommit::propose`] queues a command with a reply slot. One task
//! takes everything queued (up to [`MAX_BATCH`]) whenever fewer than
//! [`MAX_IN_FLIGHT`] entries are in flight, stamps each removal and health
//! report with the leader's clock (C3: every node computes the same deadline from it),
//! proposes them as one [`Request`], and answers each caller with its own
//! outcome and the entry's log index. A lone write is proposed at once: the
//! task never waits to fill a batch.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use sluice_model::Command;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::cluster::{ClusterError, WriteOutcome};
use crate::{Raft, Request};

/// Most commands in one log entry.
pub const MAX_BATCH: usize = 256;
/// Most entries proposed and not yet applied at once. One measured best
/// (`sluice-cluster-bench`, 32 writers: about 1,750–1,900 commands/s against
/// 1,450–1,650 with 2 and 8): the writes that queue behind the entry in
/// flight make the next batch bigger, and openraft appends one entry at a
/// time anyway.
pub const MAX_IN_FLIGHT: usize = 1;
/// Most commands waiting for a batch.
const QUEUE: usize = 8 * MAX_BATCH;

/// A command waiting for its batch, and where its answer goes.
struct Proposal {
    command: Command,
    reply: oneshot::Sender<Result<WriteOutcome, ClusterError>>,
}

/// Handle to the leader's batching task (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Proposal>,
}

/// Milliseconds since the Unix epoch on this node's clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl GroupCommit {
    /// Starts the batching task for `raft`; it ends when every handle is
    /// dropped.
    pub(crate) fn start(raft: Raft) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx));
        GroupCommit { queue }
    }

    /// Proposes `commands`, in order, in the next entry (or entries);
    /// returns once they are committed and applied here, each with its own
    /// outcome. Fails with `NoLeader` when this node does not lead (the
    /// caller forwards or retries).
    pub(crate) async fn propose_all(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<WriteOutcome>, ClusterError> {
        let answers = commands.into_iter().map(|c| self.propose(c));
        futures_util::future::join_all(answers)
            .await
            .into_iter()
            .collect()
    }

    /// Proposes `command` in the next entry; returns once that entry is
    /// committed and applied here.
    async fn propose(&self, command: Command) -> Result<WriteOutcome, ClusterError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ClusterError::Raft("the raft node is shutting down".into());
        self.queue
            .send(Proposal { command, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The batching loop: one batch per free in-flight slot.
async fn run(raft: Raft, mut queue: mpsc::Receiver<Proposal>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let proposals = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        let raft = raft.clone();
        tokio::spawn(async move {
            propose_batch(&raft, proposals).await;
            drop(slot);
        });
    }
}

/// Proposes `proposals` as one entry and answers each.
async fn propose_batch(raft: &Raft, proposals: Vec<Proposal>) {
    let at = now_ms();
    let (commands, replies): (Vec<Command>, Vec<_>) = proposals
        .into_iter()
        .map(|p| (stamp(p.command, at), p.reply))
        .unzip();
    tracing::trace!(commands = commands.len(), "proposing a batch");
    match raft.client_write(Request { commands }).await {
        Ok(written) => {
            let log_index = written.log_id.index;
            for (reply, outcome) in replies.into_iter().zip(written.data.outcomes) {
                let _ = reply.send(Ok(WriteOutcome { log_index, outcome }));
            }
        }
        Err(e) => {
            let error = match e {
                RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                    ClusterError::NoLeader {
                        waited: Duration::ZERO,
                    }
                }
                e => ClusterError::Raft(e.to_string()),
            };
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// A removal and a health report get the leader's time now (a health
/// failure drains from it, R6); other commands pass unchanged.
fn stamp(mut command: Command, now: u64) -> Command {
    if let Command::RemoveBackend { at, .. } | Command::HealthReport { at, .. } = &mut command {
        *at = now;
    }
    command
}
