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
//! How: [`Batcher::propose_all`] queues commands (each with its
//! [`RequestId`]) with reply slots. One task
//! takes everything queued (up to [`MAX_BATCH`]) whenever fewer than
//! [`MAX_IN_FLIGHT`] batches are under way and hands it to the batcher's
//! sink: [`Batcher::leader`] hands the leader's clock to each command's
//! [`Command::stamp`] (the model decides which commands carry a time; C3:
//! every node computes the same deadline and slow-start ramp from it) and
//! proposes the batch as one [`Request`]; [`Batcher::forwarder`] sends it
//! to the current leader in one call. Each caller gets its own outcome (and the entry's log
//! index). A lone write goes out at once: the task never waits to fill a
//! batch.
//!
//! Neither sink waits on a lost leader: the leader's gives up once this
//! node stops leading or has heard from no majority for a while
//! ([`CommitLimits`]), the forwarder's as soon as another node (or none)
//! leads. Both answer `CommitTimeout` (the write may still commit), and the
//! caller sends the same ids again where the leader is now.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use sluice_clock::now_ms;
use sluice_model::Command;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::ClusterError;
use crate::leadership::{leader_addr, leader_changes};
use crate::member_client::MemberClient;
use crate::types::{Raft, Request, RequestId};
use crate::wire::{ForwardedWrite, WriteOutcome};

/// How long a proposal on the leader may wait for its commit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitLimits {
    /// Give up once the leader has had no answer from a majority for this
    /// long (it is cut off; the others elect a new leader meanwhile).
    pub(crate) quorum_lost: Duration,
    /// Give up after this long in any case.
    pub(crate) limit: Duration,
}

/// How often a proposal under way checks that its leader can still commit.
const COMMIT_CHECK: Duration = Duration::from_millis(50);

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
    id: RequestId,
    command: Command,
    reply: oneshot::Sender<Result<WriteOutcome, ClusterError>>,
}

/// Where a batch goes: its commands (with their ids) in, one outcome per
/// command out.
type Sink = Arc<
    dyn Fn(Request) -> BoxFuture<'static, Result<Vec<WriteOutcome>, ClusterError>> + Send + Sync,
>;

/// Handle to a batching task (cheap to clone); the task ends when every
/// handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<Proposal>,
}

// === impl Batcher ===

impl Batcher {
    /// Batches proposed to `raft` here: the node must lead (else every
    /// caller gets `NoLeader` and forwards or retries).
    pub(crate) fn leader(raft: Raft, limits: CommitLimits) -> Batcher {
        Batcher::start(move |request| propose(raft.clone(), limits, request))
    }

    /// Batches sent to whichever node leads when the batch goes out; a call
    /// takes at most `limit`.
    pub(crate) fn forwarder(raft: Raft, peers: MemberClient, limit: Duration) -> Batcher {
        Batcher::start(move |request| forward(raft.clone(), peers.clone(), request, limit))
    }

    fn start<F, Fut>(sink: F) -> Batcher
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<WriteOutcome>, ClusterError>> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel(QUEUE);
        let sink: Sink = Arc::new(move |request| sink(request).boxed());
        tokio::spawn(run(sink, rx));
        Batcher { queue }
    }

    /// Sends `commands`, in order, in the next batch (or batches); returns
    /// once the sink answered for all of them, each with its own outcome.
    /// Command `i` goes with `ids[i]`.
    pub(crate) async fn propose_all(
        &self,
        ids: &[RequestId],
        commands: Vec<Command>,
    ) -> Result<Vec<WriteOutcome>, ClusterError> {
        if ids.len() != commands.len() {
            return Err(ClusterError::Mismatch {
                what: "request ids".into(),
                got: ids.len(),
                commands: commands.len(),
            });
        }
        let answers = ids
            .iter()
            .zip(commands)
            .map(|(&id, command)| self.propose(id, command));
        futures_util::future::join_all(answers)
            .await
            .into_iter()
            .collect()
    }

    async fn propose(&self, id: RequestId, command: Command) -> Result<WriteOutcome, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Proposal { id, command, reply })
            .await
            .map_err(|_| ClusterError::ShuttingDown)?;
        answer.await.map_err(|_| ClusterError::ShuttingDown)?
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
            let mut request = Request {
                commands: Vec::with_capacity(proposals.len()),
                ids: Vec::with_capacity(proposals.len()),
            };
            let mut replies = Vec::with_capacity(proposals.len());
            for p in proposals {
                request.commands.push(p.command);
                request.ids.push(p.id);
                replies.push(p.reply);
            }
            let expected = replies.len();
            match sink(request).await {
                Ok(outcomes) if outcomes.len() == expected => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Ok(outcomes) => {
                    let error = ClusterError::Mismatch {
                        what: "outcomes".into(),
                        got: outcomes.len(),
                        commands: expected,
                    };
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

/// The leader's sink: stamps the batch and proposes it as one entry; gives
/// up (`CommitTimeout`) when this node stops leading, has heard from no
/// majority for `limits.quorum_lost`, or after `limits.limit`.
async fn propose(
    raft: Raft,
    limits: CommitLimits,
    request: Request,
) -> Result<Vec<WriteOutcome>, ClusterError> {
    let at = now_ms();
    let Request { commands, ids } = request;
    let commands: Vec<Command> = commands
        .into_iter()
        .map(|mut command| {
            // The model decides which commands carry the leader's time (a
            // drain's deadline and a slow-start ramp start from it, C3).
            command.stamp(at);
            command
        })
        .collect();
    tracing::trace!(commands = commands.len(), "proposing a batch");
    let started = Instant::now();
    let write = raft.client_write(Request { commands, ids });
    tokio::pin!(write);
    let mut check = tokio::time::interval_at((started + COMMIT_CHECK).into(), COMMIT_CHECK);
    let written = loop {
        tokio::select! {
            written = &mut write => break written,
            _ = check.tick() => {
                if let Some(why) = cannot_commit(&raft, limits, started) {
                    tracing::warn!(waited = ?started.elapsed(), why, "giving up on a write: its commit is not confirmed");
                    return Err(ClusterError::CommitTimeout { waited: started.elapsed() });
                }
            }
        }
    };
    match written {
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
        Err(e) => Err(ClusterError::raft(e)),
    }
}

/// Why a proposal on this node will not be confirmed, if it will not.
fn cannot_commit(raft: &Raft, limits: CommitLimits, started: Instant) -> Option<&'static str> {
    let m = raft.metrics();
    let m = m.borrow();
    if m.state != ServerState::Leader {
        Some("this node no longer leads")
    } else if m
        .millis_since_quorum_ack
        .is_some_and(|ms| u128::from(ms) >= limits.quorum_lost.as_millis())
    {
        Some("no majority answered this leader lately")
    } else if started.elapsed() >= limits.limit {
        Some("the write's time is up")
    } else {
        None
    }
}

/// The follower's sink: sends the batch to the leader known now, in one
/// call of at most `limit`. Gives up (`CommitTimeout`) as soon as another
/// node (or none) leads: the caller sends it again to the new leader.
async fn forward(
    raft: Raft,
    peers: MemberClient,
    request: Request,
    limit: Duration,
) -> Result<Vec<WriteOutcome>, ClusterError> {
    let Some((leader, addr)) = leader_addr(&raft) else {
        return Err(ClusterError::NoLeader {
            waited: Duration::ZERO,
        });
    };
    let started = Instant::now();
    let write = ForwardedWrite {
        commands: request.commands,
        ids: request.ids,
    };
    let mut metrics = raft.metrics();
    tokio::select! {
        answer = peers.forward(&addr, write, limit) => answer,
        () = leader_changes(&mut metrics, Some(leader)) => {
            tracing::debug!(leader, "the leader changed while a forwarded write was under way");
            Err(ClusterError::CommitTimeout { waited: started.elapsed() })
        }
    }
}
