//! Group commit: the writes that arrive while earlier ones are under way
//! wait, and go out together — on the leader as the next log entry, on a
//! follower as the next forwarded call to the leader.
//!
//! Why: openraft 0.9 appends (and flushes) one client write at a time on the
//! leader, and every follower flushes each entry too, so one command per
//! entry caps a cluster at roughly one fsync round per command; and one
//! forwarded HTTP call per write costs the leader as much as the write.
//! A batch costs the same fsyncs and calls as a single command.
//!
//! How: [`Batcher::propose_all`] queues commands with reply slots. One task
//! takes everything queued (up to [`MAX_BATCH`]) whenever fewer than
//! [`MAX_IN_FLIGHT`] batches are under way and hands it to the batcher's
//! sink: [`Batcher::leader`] stamps each removal, addition, finished drain
//! and health report with the leader's clock (C3: every node computes the
//! same deadline and slow-start ramp from it) and
//! proposes the batch as one [`Request`]; [`Batcher::forwarder`] sends it
//! to the current leader in one call. Each caller gets its own outcome (and the entry's log
//! index). A lone write goes out at once: the task never waits to fill a
//! batch.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use openraft::error::{ClientWriteError, RaftError};
use sluice_model::Command;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::cluster::{leader_addr, ClusterError, WriteOutcome};
use crate::member_client::MemberClient;
use crate::{Raft, Request};

/// Most commands in one batch.
pub const MAX_BATCH: usize = 256;
/// Most batches under way at once. One measured best
/// (`sluice-cluster-bench`, 32 writers: about 1,750–1,900 commands/s against
/// 1,450–1,650 with 2 and 8): the writes that queue behind the batch under
/// way make the next batch bigger, and openraft appends one entry at a time
/// anyway.
pub const MAX_IN_FLIGHT: usize = 1;
/// Most commands waiting for a batch.
const QUEUE: usize = 8 * MAX_BATCH;

/// A command waiting for its batch, and where its answer goes.
struct Proposal {
    command: Command,
    reply: oneshot::Sender<Result<WriteOutcome, ClusterError>>,
}

/// Where a batch goes: its commands in, one outcome per command out.
type Sink = Arc<
    dyn Fn(Vec<Command>) -> BoxFuture<'static, Result<Vec<WriteOutcome>, ClusterError>>
        + Send
        + Sync,
>;

/// Handle to a batching task (cheap to clone); the task ends when every
/// handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<Proposal>,
}

/// Milliseconds since the Unix epoch on this node's clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Batcher {
    /// Batches proposed to `raft` here: the node must lead (else every
    /// caller gets `NoLeader` and forwards or retries).
    pub(crate) fn leader(raft: Raft) -> Batcher {
        Batcher::start(move |commands| propose(raft.clone(), commands))
    }

    /// Batches sent to whichever node leads when the batch goes out.
    pub(crate) fn forwarder(raft: Raft, peers: MemberClient) -> Batcher {
        Batcher::start(move |commands| {
            let leader = leader_addr(&raft);
            let peers = peers.clone();
            async move {
                match leader {
                    Some((_, addr)) => peers.forward(&addr, commands).await,
                    None => Err(ClusterError::NoLeader {
                        waited: Duration::ZERO,
                    }),
                }
            }
        })
    }

    fn start<F, Fut>(sink: F) -> Batcher
    where
        F: Fn(Vec<Command>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<WriteOutcome>, ClusterError>> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel(QUEUE);
        let sink: Sink = Arc::new(move |commands| sink(commands).boxed());
        tokio::spawn(run(sink, rx));
        Batcher { queue }
    }

    /// Sends `commands`, in order, in the next batch (or batches); returns
    /// once the sink answered for all of them, each with its own outcome.
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
async fn run(sink: Sink, mut queue: mpsc::Receiver<Proposal>) {
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
        let sink = sink.clone();
        tokio::spawn(async move {
            let (commands, replies): (Vec<Command>, Vec<_>) =
                proposals.into_iter().map(|p| (p.command, p.reply)).unzip();
            let expected = replies.len();
            match sink(commands).await {
                Ok(outcomes) if outcomes.len() == expected => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Ok(outcomes) => {
                    let error = ClusterError::Raft(format!(
                        "{} outcomes for a batch of {expected} commands",
                        outcomes.len()
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}

/// The leader's sink: stamps the batch and proposes it as one entry.
async fn propose(raft: Raft, commands: Vec<Command>) -> Result<Vec<WriteOutcome>, ClusterError> {
    let at = now_ms();
    let commands: Vec<Command> = commands.into_iter().map(|c| stamp(c, at)).collect();
    tracing::trace!(commands = commands.len(), "proposing a batch");
    match raft.client_write(Request { commands }).await {
        Ok(written) => {
            let log_index = written.log_id.index;
            Ok(written
                .data
                .outcomes
                .into_iter()
                .map(|outcome| WriteOutcome { log_index, outcome })
                .collect())
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            Err(ClusterError::NoLeader {
                waited: Duration::ZERO,
            })
        }
        Err(e) => Err(ClusterError::Raft(e.to_string())),
    }
}

/// Commands that carry a time get the leader's time now (a drain's
/// deadline and a slow-start ramp start from it, C3, R6, R10); others pass
/// unchanged.
fn stamp(mut command: Command, now: u64) -> Command {
    command.stamp(now);
    command
}
