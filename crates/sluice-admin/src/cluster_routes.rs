//! Cluster routes for operators: the JSON cluster operations (`init`,
//! `join`, `status`, `remove-node`), the applied-index poll members ask
//! each other, and `/readyz`. The Raft RPCs and forwarded writes are served
//! by `sluice_raft::rpc_server`, next to their client. Operations that must
//! run on the leader are forwarded to it when this node does not lead. A
//! node whose Raft core stopped answers `/readyz` and the applied-index
//! poll with 503 `raft_stopped`, and `status` from itself with the reason
//! (N2). `/v1/debug/faults` is the test-only fault hook; a node without
//! fault injection answers it 404 like any unknown route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use sluice_raft::{ClusterError, ClusterStatus, MemberHolds};

use crate::api::JoinNode;
use crate::applied_path::APPLIED_PATH;
use crate::auth::Authorized;
use crate::context::{AdminContext, Ctx};
use crate::extract::{json_body, refuse_second_hop, relayed};
use crate::ApiError;

/// Routes of the cluster's operations.
pub(crate) fn routes() -> Router<Arc<AdminContext>> {
    let router = Router::new()
        .route("/readyz", get(readyz))
        .route(APPLIED_PATH, get(applied))
        .route("/v1/cluster/init", post(init))
        .route("/v1/cluster/join", post(join))
        .route("/v1/cluster/status", get(status))
        .route("/v1/cluster/nodes/{node}", delete(remove_node))
        .route(FAULTS_PATH, put(set_faults).get(faults));
    #[cfg(feature = "test-clock")]
    let router = router.merge(crate::debug_clock::routes());
    router
}

/// Path of the test-only fault hook.
const FAULTS_PATH: &str = "/v1/debug/faults";

/// Body and answer of `/v1/debug/faults`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSet {
    /// Node ids to which this node's Raft RPCs are dropped.
    #[serde(default)]
    drop_raft_to: std::collections::BTreeSet<u64>,
    /// Node ids to which only entries and snapshots are dropped: they keep
    /// hearing from this leader but lag behind it.
    #[serde(default)]
    hold_entries_to: std::collections::BTreeSet<u64>,
}

/// The fault hook, or the answer of an unknown route when fault injection
/// is off.
fn fault_hook(ctx: &AdminContext) -> Result<&sluice_raft::network::Faults, ApiError> {
    ctx.store.node().faults().ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        code: "no_such_route".into(),
        message: "no such API route (fault injection is off on this node)".into(),
        field: None,
    })
}

async fn faults(AxState(ctx): Ctx, _: Authorized) -> Result<Json<FaultSet>, ApiError> {
    let hook = fault_hook(&ctx)?;
    Ok(Json(FaultSet {
        drop_raft_to: hook.drop_raft_to(),
        hold_entries_to: hook.hold_entries_to(),
    }))
}

async fn set_faults(
    AxState(ctx): Ctx,
    _: Authorized,
    bytes: Bytes,
) -> Result<Json<FaultSet>, ApiError> {
    let hook = fault_hook(&ctx)?;
    let set: FaultSet = json_body(&bytes)?;
    tracing::warn!(drop_raft_to = ?set.drop_raft_to, hold_entries_to = ?set.hold_entries_to, "fault injection: dropping raft RPCs");
    hook.set_drop_raft_to(set.drop_raft_to);
    hook.set_hold_entries_to(set.hold_entries_to);
    Ok(Json(FaultSet {
        drop_raft_to: hook.drop_raft_to(),
        hold_entries_to: hook.hold_entries_to(),
    }))
}

#[derive(Debug, serde::Deserialize)]
struct AppliedQuery {
    /// Answer only once the data plane runs at least this index (or after
    /// [`crate::PROPAGATION_WAIT`]).
    at_least: Option<u64>,
}

/// 503 `raft_stopped`: this node's Raft core stopped for `why`.
fn raft_stopped(why: &str) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "raft_stopped".into(),
        message: format!(
            "this node's Raft core stopped ({why}); it takes no part in the cluster until it is restarted"
        ),
        field: None,
    }
}

/// `GET /readyz`: 200 while this node's Raft core runs and it does not
/// drain itself; 503 `raft_stopped` once its core stopped (N2), 503
/// `draining` from the moment it drains (N1) so that whatever balances
/// over the nodes stops sending it new clients.
async fn readyz(AxState(ctx): Ctx) -> Response {
    if let Some(why) = ctx.store.node().stopped() {
        return raft_stopped(&why).into_response();
    }
    match ctx.store.data_plane().node_drain() {
        None => "ok\n".into_response(),
        Some(d) => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "draining".into(),
            message: format!(
                "this node drains itself ({}): it takes no new clients and closes what it holds in {} ms",
                d.drain.map_or("on its own".to_owned(), |id| format!("drain {id}")),
                d.deadline.saturating_sub(sluice_clock::now_ms())
            ),
            field: None,
        }
        .into_response(),
    }
}

/// What this node holds now, as members and the node list show it.
pub(crate) fn holds_of(ctx: &AdminContext) -> MemberHolds {
    let h = ctx.store.data_plane().holds();
    MemberHolds {
        connections: h.connections,
        requests: h.requests,
        tunnels: h.tunnels,
    }
}

/// Asks member `addr` for its applied index and what it holds, within
/// half a second; `None` when it does not answer.
pub(crate) async fn probe_member(ctx: &AdminContext, addr: &str) -> Option<(u64, MemberHolds)> {
    let probe = ctx
        .store
        .node()
        .get_json::<serde_json::Value>(addr, APPLIED_PATH);
    let v = tokio::time::timeout(std::time::Duration::from_millis(500), probe)
        .await
        .ok()?
        .ok()?;
    let applied = v["applied"].as_u64()?;
    let holds = serde_json::from_value(v["holds"].clone()).unwrap_or_default();
    Some((applied, holds))
}

/// The log index this node's data plane runs; with `?at_least=N`, a long
/// poll that answers as soon as it reaches `N`. 503 `raft_stopped` once
/// this node's Raft core stopped (a poll under way ends at once): its data
/// plane will not move again, so writers stop waiting for it.
async fn applied(
    AxState(ctx): Ctx,
    axum::extract::Query(q): axum::extract::Query<AppliedQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let node = ctx.store.node();
    if let Some(why) = node.stopped() {
        return Err(raft_stopped(&why));
    }
    if let Some(n) = q.at_least {
        tokio::select! {
            _ = tokio::time::timeout(crate::PROPAGATION_WAIT, ctx.store.wait_applied(n)) => {}
            why = node.wait_stopped() => return Err(raft_stopped(&why)),
        }
    }
    Ok(Json(serde_json::json!({
        "applied": ctx.store.applied_index(),
        "holds": holds_of(&ctx),
    })))
}

/// Runs `here` when this node leads, else replays the request on the leader.
async fn on_leader<F, Fut>(
    ctx: &AdminContext,
    headers: &HeaderMap,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    here: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let node = ctx.store.node();
    if node.is_leader() {
        return here().await;
    }
    refuse_second_hop(node, headers)?;
    let Some((_, leader)) = node.leader() else {
        return Err(ClusterError::NoLeader {
            waited: std::time::Duration::ZERO,
        }
        .into());
    };
    let (status, bytes) = node.forward_json(&leader, method, path, body).await?;
    Ok(relayed(status, bytes))
}

async fn init(AxState(ctx): Ctx, _: Authorized) -> Result<Json<ClusterStatus>, ApiError> {
    ctx.store.node().init().await?;
    Ok(Json(ctx.store.node().status()))
}

async fn join(
    AxState(ctx): Ctx,
    headers: HeaderMap,
    _: Authorized,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: JoinNode = json_body(&bytes)?;
    let scheme = ctx.store.node().member_scheme();
    let host = req
        .addr
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"));
    if host.is_none_or(str::is_empty) {
        return Err(ApiError::bad_field(
            "addr",
            format!("addr = {:?} is invalid: expected the new node's admin URL, e.g. {scheme}://127.0.0.2:7072", req.addr),
        ));
    }
    let body = serde_json::json!({ "addr": req.addr });
    let c = ctx.clone();
    on_leader(
        &ctx,
        &headers,
        Method::POST,
        "/v1/cluster/join",
        Some(body),
        || async move {
            let who = c.store.node().join(&req.addr).await?;
            Ok(Json(who).into_response())
        },
    )
    .await
}

async fn remove_node(
    AxState(ctx): Ctx,
    Path(node): Path<u64>,
    headers: HeaderMap,
    _: Authorized,
) -> Result<Response, ApiError> {
    let c = ctx.clone();
    let path = format!("/v1/cluster/nodes/{node}");
    on_leader(&ctx, &headers, Method::DELETE, &path, None, || async move {
        c.store.node().remove_node(node).await?;
        Ok(Json(c.store.node().status()).into_response())
    })
    .await
}

/// The leader's view (replication lag) when a leader is known, with `node`
/// naming the answering node. The leader asks every member for the log index
/// its data plane runs: that is `last_applied`, and a member that does not
/// answer within half a second is `reachable: false`. A node whose Raft core
/// stopped answers its own last view with `stopped` saying why.
async fn status(AxState(ctx): Ctx, headers: HeaderMap) -> Json<ClusterStatus> {
    let node = ctx.store.node();
    let mut mine = node.status();
    if mine.stopped.is_some() {
        return Json(mine);
    }
    if node.is_leader() {
        let me = node.id();
        let probes = mine.members.iter().map(|m| {
            let addr = m.addr.clone();
            let is_me = m.node == me;
            let ctx = &ctx;
            async move {
                if is_me {
                    return Some((ctx.store.applied_index(), holds_of(ctx)));
                }
                probe_member(ctx, &addr).await
            }
        });
        let answers = futures_util::future::join_all(probes).await;
        let state = ctx.store.current();
        for (m, a) in mine.members.iter_mut().zip(answers) {
            m.reachable = a.is_some();
            m.last_applied = a.map(|(applied, _)| applied).or(m.last_applied);
            m.holds = a.map(|(_, holds)| holds);
            m.drain = state.node_drains.get(&m.node).cloned();
        }
    } else if let (Some((_, leader)), false) = (
        node.leader(),
        // Asked by another member: this node's own view, one hop at most.
        headers.contains_key(sluice_raft::FORWARDED_HEADER),
    ) {
        if let Ok(theirs) = node
            .get_json::<ClusterStatus>(&leader, "/v1/cluster/status")
            .await
        {
            mine.members = theirs.members;
        }
    }
    Json(mine)
}
