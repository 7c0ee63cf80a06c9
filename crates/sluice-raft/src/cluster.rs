//! [`RaftNode`]: one node's Raft, its state machine and the cluster
//! operations built on them — bootstrap, init, join, remove (the status
//! view is in `status.rs`) — and the write path: a command is proposed on the leader (batched with the
//! writes that arrive meanwhile and stamped with the leader's clock, C3; see
//! [`group_commit`](crate::group_commit)), or forwarded to it from a
//! follower. Each command gets a [`RequestId`] on the node that took it; a
//! write that was under way when the leader changed (or was lost) is sent
//! again, with the same ids, to the new leader, and the state machine
//! applies it once. A write gives up after [`WRITE_LIMIT`], and earlier when
//! no new leader takes over within a few election timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::{BasicNode, ChangeMembers, ServerState};
use sluice_model::{Command, State};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::ClusterError;
use crate::group_commit::{Batcher, CommitLimits};
use crate::leadership::{leader_addr, leader_changes};
use crate::member_client::MemberClient;
use crate::network::{Faults, HttpNetwork};
use crate::raft_events;
use crate::state_machine::StateMachineStore;
use crate::store::open;
use crate::tls::MemberTls;
use crate::types::{Raft, RequestId};
use crate::wire::{ForwardedWrite, NodeIdentity, WriteOutcome, SELF_PATH};
use crate::write_latency::WriteLatency;

/// Longest a write may take on the node that took it, re-sends included:
/// the admin API then waits up to 2 s for the members to route by it, and
/// its clients give up after 10 s.
pub const WRITE_LIMIT: Duration = Duration::from_secs(7);

/// How a node takes part in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id.
    pub node_id: u64,
    /// Admin URL the other nodes reach this one at.
    pub advertise: String,
    /// Token that authenticates Raft RPCs and forwarded writes.
    pub token: String,
    /// Leader heartbeat period.
    pub heartbeat_interval: Duration,
    /// Shortest election timeout (the longest is twice that).
    pub election_timeout: Duration,
    /// Log entries between snapshots (the log is purged behind them).
    pub snapshot_every: u64,
    /// Test only: lets [`RaftNode::faults`] drop this node's Raft RPCs.
    pub fault_injection: bool,
    /// `[admin.tls]`: members talk to each other over TLS, each presenting
    /// its certificate; `None`: plain HTTP.
    pub tls: Option<MemberTls>,
}

/// Hands out this process's request ids.
#[derive(Debug)]
struct IdSource {
    node: u64,
    boot: u64,
    next: AtomicU64,
}

// === impl IdSource ===

impl IdSource {
    fn new(node: u64) -> Self {
        let boot = sluice_clock::now_ms();
        IdSource {
            node,
            boot,
            next: AtomicU64::new(0),
        }
    }

    fn take(&self, n: usize) -> Vec<RequestId> {
        let first = self.next.fetch_add(n as u64, Ordering::Relaxed);
        (first..first + n as u64)
            .map(|seq| RequestId {
                node: self.node,
                boot: self.boot,
                seq,
            })
            .collect()
    }
}

/// Why the Raft core whose metrics these are stopped, if it did.
fn stop_reason(m: &openraft::RaftMetrics<u64, BasicNode>) -> Option<String> {
    m.running_state.as_ref().err().map(|e| e.to_string())
}

/// One node's Raft and state machine.
pub struct RaftNode {
    raft: Raft,
    sm: StateMachineStore,
    config: ClusterConfig,
    peers: MemberClient,
    /// Batches proposed here while this node leads.
    proposer: Batcher,
    /// Batches forwarded to the leader while this node follows.
    forwarder: Batcher,
    ids: IdSource,
    /// How long a write follows leader changes: see [`RaftNode::write_all`].
    follow: Duration,
    /// Set when fault injection is enabled.
    faults: Option<Faults>,
    /// The log store's last committed index.
    pub(crate) committed: Arc<AtomicU64>,
    /// How long the writes taken here took.
    pub(crate) write_latency: WriteLatency,
}

// === impl RaftNode ===

impl RaftNode {
    /// Opens the store in `dir` and starts Raft. The state machine holds the
    /// last applied state at once (C5).
    pub async fn start(dir: &Path, config: ClusterConfig) -> Result<RaftNode, ClusterError> {
        let (log_store, sm) = open(dir).map_err(|e| ClusterError::Open(e.to_string()))?;
        let committed = log_store.committed_index();
        let election = config.election_timeout.as_millis() as u64;
        let raft_config = openraft::Config {
            cluster_name: "sluice".into(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.snapshot_every / 2,
            ..Default::default()
        }
        .validate()
        .map_err(ClusterError::raft)?;
        let faults = Faults::default();
        let network = HttpNetwork::new(config.token.clone(), config.tls.as_ref(), faults.clone())
            .map_err(|e| ClusterError::Tls {
            reason: e.to_string(),
        })?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log_store,
            sm.clone(),
        )
        .await
        .map_err(ClusterError::raft)?;
        raft_events::spawn(raft.metrics());
        let peers = MemberClient::new(config.token.clone(), config.tls.as_ref())?;
        // The longest election timeout is twice the shortest.
        let election_max = config.election_timeout * 2;
        let limits = CommitLimits {
            quorum_lost: election_max * 2,
            limit: WRITE_LIMIT,
        };
        let proposer = Batcher::leader(raft.clone(), limits);
        let forwarder = Batcher::forwarder(raft.clone(), peers.clone(), WRITE_LIMIT);
        if config.fault_injection {
            warn!("fault injection is enabled: for tests only, never in production");
        }
        Ok(RaftNode {
            ids: IdSource::new(config.node_id),
            follow: election_max * 3,
            faults: config.fault_injection.then_some(faults),
            raft,
            sm,
            config,
            peers,
            proposer,
            forwarder,
            committed,
            write_latency: WriteLatency::default(),
        })
    }

    /// The Raft handle (for RPC endpoints and metrics).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.config.node_id
    }

    /// This node's identity.
    pub fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            node: self.config.node_id,
            addr: self.config.advertise.clone(),
        }
    }

    /// The fault hook, when fault injection is enabled (tests only).
    pub fn faults(&self) -> Option<&Faults> {
        self.faults.as_ref()
    }

    /// The scheme of every member's admin URL: `https` when the cluster's
    /// traffic is TLS, else `http`.
    pub fn member_scheme(&self) -> &'static str {
        if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The token Raft RPCs and forwarded writes must carry.
    pub fn token(&self) -> &str {
        &self.config.token
    }

    /// The last applied state.
    pub fn current(&self) -> Arc<State> {
        self.sm.current()
    }

    /// Every state the state machine applies.
    pub fn subscribe(&self) -> watch::Receiver<Arc<State>> {
        self.sm.subscribe()
    }

    /// Every applied state with the index of the last entry it includes.
    pub fn subscribe_indexed(&self) -> watch::Receiver<(u64, Arc<State>)> {
        self.sm.subscribe_indexed()
    }

    /// Index of the last entry applied to the state machine.
    pub fn applied_index(&self) -> u64 {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0)
    }

    /// Whether this node belongs to an initialised cluster.
    pub async fn is_initialized(&self) -> Result<bool, ClusterError> {
        self.raft.is_initialized().await.map_err(ClusterError::raft)
    }

    /// Makes this node a one-node cluster.
    pub async fn init(&self) -> Result<(), ClusterError> {
        if self.is_initialized().await? {
            return Err(ClusterError::AlreadyInitialized);
        }
        let members = BTreeMap::from([(
            self.config.node_id,
            BasicNode {
                addr: self.config.advertise.clone(),
            },
        )]);
        self.raft
            .initialize(members)
            .await
            .map_err(ClusterError::raft)?;
        // A one-node cluster elects itself at once; wait for it, and for the
        // membership entry to be applied, so the node answers as a leader.
        let mut metrics = self.raft.metrics();
        let ready = metrics.wait_for(|m| {
            m.state == ServerState::Leader && m.last_applied.map(|l| l.index) >= m.last_log_index
        });
        if tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .is_err()
        {
            warn!("initialised, but not leader after 10s");
        }
        info!("initialised a new cluster");
        Ok(())
    }

    /// The admin URL of the current leader, if one is known.
    pub fn leader(&self) -> Option<(u64, String)> {
        leader_addr(&self.raft)
    }

    /// Whether this node is the leader now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Proposes `command`, on this node if it leads, else on the leader;
    /// returns once it is committed and applied on the leader.
    pub async fn write(&self, command: Command) -> Result<WriteOutcome, ClusterError> {
        let mut outcomes = self.write_all(vec![command]).await?;
        outcomes.pop().ok_or(ClusterError::Mismatch {
            what: "outcomes".into(),
            got: 0,
            commands: 1,
        })
    }

    /// Proposes `commands` in order, on this node if it leads, else on the
    /// leader in one forwarded call; returns once all are committed and
    /// applied on the leader, each with its outcome.
    ///
    /// The commands get their ids here, once: when the leader changes or is
    /// lost while they are under way they are sent again, with the same
    /// ids, to whichever node leads next, and are applied once. This goes on
    /// until three longest election timeouts have passed since the last
    /// leader change this node saw (an election, a split vote and time to
    /// spare), and never past [`WRITE_LIMIT`]. A leader that cannot reach a
    /// majority answers `CommitTimeout` (see [`group_commit`]).
    ///
    /// [`group_commit`]: crate::group_commit
    pub async fn write_all(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<WriteOutcome>, ClusterError> {
        let ids = self.ids.take(commands.len());
        let started = Instant::now();
        let limit = started + WRITE_LIMIT;
        let mut metrics = self.raft.metrics();
        let mut leader = metrics.borrow_and_update().current_leader;
        let mut last_change = started;
        let mut last_error: Option<ClusterError> = None;
        let mut maybe_applied = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            let here = self.is_leader();
            let attempt = if here {
                Some(self.proposer.propose_all(&ids, commands.clone()).await)
            } else if self.leader().is_some() {
                let forwarded = self.forwarder.propose_all(&ids, commands.clone());
                Some(
                    tokio::time::timeout_at(limit.into(), forwarded)
                        .await
                        .unwrap_or_else(|_| {
                            Err(ClusterError::CommitTimeout {
                                waited: started.elapsed(),
                            })
                        }),
                )
            } else if !self.is_initialized().await? {
                return Err(ClusterError::NotInitialized);
            } else {
                None
            };
            match attempt {
                Some(Ok(outcomes)) => {
                    self.write_latency.observe(started.elapsed());
                    return Ok(outcomes);
                }
                Some(Err(e)) if !e.is_retryable() => return Err(e),
                Some(Err(e)) => {
                    let unconfirmed = matches!(e, ClusterError::CommitTimeout { .. });
                    // A leader cut off from the majority: sending again here
                    // cannot help.
                    if here && unconfirmed && self.is_leader() {
                        return Err(e);
                    }
                    warn!(error = %e, "a write was not confirmed; sending it again where the leader is now");
                    maybe_applied |= unconfirmed;
                    last_error = Some(e);
                }
                None => {}
            }
            // Wait for a (new) leader or a short backoff, then send again.
            let now_leader = metrics.borrow_and_update().current_leader;
            if now_leader != leader {
                leader = now_leader;
                last_change = Instant::now();
                backoff = Duration::from_millis(50);
            }
            let deadline = limit.min(last_change + self.follow);
            if Instant::now() >= deadline {
                let waited = started.elapsed();
                return Err(match last_error {
                    // Once a write may have reached a leader, its outcome
                    // is unknown until one confirms it.
                    _ if maybe_applied => ClusterError::CommitTimeout { waited },
                    Some(e @ ClusterError::Unreachable { .. }) if self.leader().is_some() => e,
                    _ => ClusterError::NoLeader { waited },
                });
            }
            let pause = tokio::time::sleep_until((Instant::now() + backoff).min(deadline).into());
            tokio::select! {
                () = pause => {}
                () = leader_changes(&mut metrics, leader) => {}
            }
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Proposes a forwarded write here, batched with the writes that arrive
    /// meanwhile; this node must lead. A removal's time is stamped by the
    /// leader when its batch is proposed: every node computes the same
    /// deadline from it (C3).
    pub async fn write_as_leader(
        &self,
        write: ForwardedWrite,
    ) -> Result<Vec<WriteOutcome>, ClusterError> {
        self.proposer.propose_all(&write.ids, write.commands).await
    }

    /// Adds the node whose admin URL is `addr`: as learner, waiting until it
    /// caught up, then as voter. Must run on the leader.
    pub async fn join(&self, addr: &str) -> Result<NodeIdentity, ClusterError> {
        let who = self.identify(addr).await?;
        info!(member = who.node, addr = %who.addr, "adding node as learner");
        self.raft
            .add_learner(
                who.node,
                BasicNode {
                    addr: who.addr.clone(),
                },
                true,
            )
            .await
            .map_err(ClusterError::raft)?;
        info!(member = who.node, "promoting node to voter");
        self.raft
            .change_membership(
                ChangeMembers::AddVoterIds(BTreeSet::from([who.node])),
                false,
            )
            .await
            .map_err(ClusterError::raft)?;
        Ok(who)
    }

    async fn identify(&self, addr: &str) -> Result<NodeIdentity, ClusterError> {
        self.get_json(addr, SELF_PATH).await
    }

    /// `GET base+path`, parsed as JSON (3 s timeout: probes and long polls).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
    ) -> Result<T, ClusterError> {
        let (_, bytes) = self
            .peers
            .exchange(
                http::Method::GET,
                base,
                path,
                Vec::new(),
                Duration::from_secs(3),
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| ClusterError::Unreachable {
            addr: format!("{base}{path}"),
            reason: format!("unexpected answer: {e}"),
        })
    }

    /// Replays an admin JSON request on `base` (the leader) with this
    /// node's token; returns its status and body as they are.
    pub async fn forward_json(
        &self,
        base: &str,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, Bytes), ClusterError> {
        // A JSON value always has a text form: `to_string` cannot fail.
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, bytes) = self
            .peers
            .exchange(method, base, path, bytes, Duration::from_secs(30))
            .await?;
        Ok((status.as_u16(), bytes))
    }

    /// Takes a node out of the cluster. Must run on the leader.
    pub async fn remove_node(&self, node: u64) -> Result<(), ClusterError> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        if m.membership().get_node(&node).is_none() {
            return Err(ClusterError::NodeNotFound { node });
        }
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([node])), false)
            .await
            .map_err(ClusterError::raft)?;
        // A removed voter may stay a learner; drop it entirely.
        let m = self.raft.metrics().borrow().membership_config.clone();
        if m.membership().get_node(&node).is_some() {
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node])), false)
                .await
                .map_err(ClusterError::raft)?;
        }
        Ok(())
    }

    /// Why this node's Raft core stopped, if it did: openraft stops it for
    /// good on a storage error or a panic (it cannot be restarted in this
    /// process), and on [`RaftNode::shutdown`].
    pub fn stopped(&self) -> Option<String> {
        let rx = self.raft.metrics();
        let reason = stop_reason(&rx.borrow());
        // The sender is dropped when the core task ends, a panic included.
        reason.or_else(|| {
            rx.has_changed()
                .is_err()
                .then(|| "the Raft core task ended".to_owned())
        })
    }

    /// Resolves once this node's Raft core stopped, with the reason (see
    /// [`RaftNode::stopped`]).
    pub async fn wait_stopped(&self) -> String {
        let mut rx = self.raft.metrics();
        loop {
            if let Some(why) = stop_reason(&rx.borrow_and_update()) {
                return why;
            }
            if rx.changed().await.is_err() {
                return stop_reason(&rx.borrow())
                    .unwrap_or_else(|| "the Raft core task ended".to_owned());
            }
        }
    }

    /// Stops Raft.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
