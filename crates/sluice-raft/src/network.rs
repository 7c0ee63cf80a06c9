//! The Raft network (the client side; the server is [`crate::rpc_server`]):
//! each RPC is an HTTP `POST` to the peer's admin port
//! ([`paths`]: `/raft/append`, `/raft/vote`, `/raft/snapshot`) with a bincode body
//! ([`crate::codec`]) and the cluster's bearer token. The answer is the
//! peer's `Result` encoded the same way.
//!
//! Errors say which side failed: a peer that cannot be connected to (or
//! does not answer in time) is [`Unreachable`] — openraft backs off and
//! retries; a peer that answers but refuses (wrong token, bad body) is a
//! [`NetworkError`]; a Raft error from the peer is a [`RemoteError`].
//!
//! For tests only, [`Faults`] drops this node's outgoing RPCs to chosen
//! peers (a one-way partition): a dropped RPC is never sent and fails as
//! [`Unreachable`]. It is reachable only on a node started with fault
//! injection enabled (`[debug] fault_injection = true`).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::tls::MemberTls;
use crate::transport::{Outgoing, SendError, Transport};
use crate::types::TypeConfig;
use crate::wire::paths;

/// Why an RPC did not get an answer from the peer's Raft.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connecting or waiting failed: the peer is unreachable for now.
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable {
        /// Peer admin URL.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The peer answered, but not with an RPC answer (e.g. 401).
    #[error("peer {addr} refused the RPC: {reason}")]
    Refused {
        /// Peer admin URL.
        addr: String,
        /// What it said.
        reason: String,
    },
}

/// Test-only fault injection: the peers to which this node's Raft RPCs
/// (append, vote, snapshot) are dropped, and those to which only the RPCs
/// that carry log entries or a snapshot are (heartbeats still go: the peer
/// knows its leader but lags behind it). Cheap to clone; clones share the
/// sets.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    drop_raft_to: Arc<RwLock<BTreeSet<u64>>>,
    hold_entries_to: Arc<RwLock<BTreeSet<u64>>>,
}

// === impl Faults ===

impl Faults {
    /// From now on, drops every Raft RPC to the nodes in `nodes` (and only
    /// those; an empty set heals).
    pub fn set_drop_raft_to(&self, nodes: BTreeSet<u64>) {
        let mut set = self.drop_raft_to.write().unwrap_or_else(|e| e.into_inner());
        *set = nodes;
    }

    /// The nodes Raft RPCs are dropped to.
    pub fn drop_raft_to(&self) -> BTreeSet<u64> {
        self.drop_raft_to
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn drops(&self, target: u64) -> bool {
        self.drop_raft_to
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&target)
    }

    /// From now on, drops the appends that carry entries, and the snapshots,
    /// to the nodes in `nodes` (an empty set heals).
    pub fn set_hold_entries_to(&self, nodes: BTreeSet<u64>) {
        let mut set = self
            .hold_entries_to
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *set = nodes;
    }

    /// The nodes entries are held back from.
    pub fn hold_entries_to(&self) -> BTreeSet<u64> {
        self.hold_entries_to
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn holds_entries(&self, target: u64) -> bool {
        self.hold_entries_to
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&target)
    }
}

/// A held-back RPC: it fails as refused (not as unreachable, which would
/// make openraft back off and stop the heartbeats too).
fn held(target: u64) -> TransportError {
    TransportError::Refused {
        addr: format!("node {target}"),
        reason: "entries held back by fault injection".into(),
    }
}

/// How long a held-back RPC takes to fail: openraft sends it again at once,
/// so this paces the retries (about one heartbeat).
const HELD_PACE: Duration = Duration::from_millis(100);

/// Makes one [`PeerClient`] per peer; all share one pooled HTTP(S) client.
#[derive(Clone)]
pub struct HttpNetwork {
    client: Transport,
    token: String,
    faults: Faults,
}

// === impl HttpNetwork ===

impl HttpNetwork {
    /// A network whose RPCs carry `token` (over TLS with `tls`, presenting
    /// this node's certificate) and skip the peers `faults` names.
    pub fn new(
        token: String,
        tls: Option<&MemberTls>,
        faults: Faults,
    ) -> Result<Self, rustls::Error> {
        Ok(HttpNetwork {
            client: Transport::new(tls, Duration::from_secs(1))?,
            token,
            faults,
        })
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.trim_end_matches('/').to_string(),
            net: self.clone(),
        }
    }
}

/// RPCs to one peer.
pub struct PeerClient {
    target: u64,
    addr: String,
    net: HttpNetwork,
}

// === impl PeerClient ===

impl PeerClient {
    /// Posts `req` to `path`; `Ok(Err(e))` is the peer's own Raft error.
    async fn post<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Result<Resp, E>, TransportError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned,
    {
        let refused = |reason: String| TransportError::Refused {
            addr: self.addr.clone(),
            reason,
        };
        let unreachable = |reason: String| TransportError::Unreachable {
            addr: self.addr.clone(),
            reason,
        };
        if self.net.faults.drops(self.target) {
            return Err(unreachable("dropped by fault injection".into()));
        }
        let body = codec::encode(req).map_err(|e| refused(e.to_string()))?;
        let url = format!("{}{path}", self.addr);
        let request = Outgoing {
            method: http::Method::POST,
            url: &url,
            token: &self.net.token,
            content_type: "application/octet-stream",
            body,
        };
        let (status, bytes) = self
            .net
            .client
            .send(request, ttl)
            .await
            .map_err(|e| match e {
                SendError::Invalid(reason) => refused(reason),
                SendError::NoAnswer(reason) => unreachable(reason),
            })?;
        if !status.is_success() {
            return Err(refused(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )));
        }
        codec::decode(&bytes).map_err(|e| refused(e.to_string()))
    }

    fn rpc_error<E: std::error::Error>(&self, e: TransportError) -> RPCError<u64, BasicNode, E> {
        match e {
            TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            TransportError::Refused { .. } => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        if !rpc.entries.is_empty() && self.net.faults.holds_entries(self.target) {
            // The entries stay here; the peer still hears from its leader
            // (same `prev_log_id`, no entries: an honest heartbeat), so it
            // lags without starting an election.
            let mut heartbeat = rpc;
            heartbeat.entries.clear();
            let _ = self
                .post::<_, AppendEntriesResponse<u64>, RaftError<u64>>(
                    paths::APPEND,
                    &heartbeat,
                    option.hard_ttl(),
                )
                .await;
            tokio::time::sleep(HELD_PACE).await;
            return Err(self.rpc_error(held(self.target)));
        }
        match self.post(paths::APPEND, &rpc, option.hard_ttl()).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        if self.net.faults.holds_entries(self.target) {
            tokio::time::sleep(HELD_PACE).await;
            return Err(self.rpc_error(held(self.target)));
        }
        match self.post(paths::SNAPSHOT, &rpc, option.hard_ttl()).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.post(paths::VOTE, &rpc, option.hard_ttl()).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e) => Err(self.rpc_error(e)),
        }
    }
}
