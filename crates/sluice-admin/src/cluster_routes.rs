//! Cluster routes: the Raft RPC endpoints (bincode, token), forwarded
//! writes, the JSON cluster operations (`init`, `join`, `status`,
//! `remove-node`) and `/readyz`. Operations that must run on the leader are
//! forwarded to it when this node does not lead. A node whose Raft core
//! stopped answers `/readyz` and the applied-index poll with 503
//! `raft_stopped`, and `status` from itself with the reason (N2).
//! `/v1/debug/faults` is the test-only fault hook; a node without fault
//! injection answers it 404 like any unknown route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_raft::network::paths;
use sluice_raft::{codec, ClusterError, ClusterStatus, ForwardedWrite, WRITE_PATH};

use crate::api::JoinNode;
use crate::auth::check_bearer;
use crate::routes::AdminContext;
use crate::store::APPLIED_PATH;
use crate::ApiError;

type Ctx = AxState<Arc<AdminContext>>;

/// Routes of the cluster: RPC and operations.
pub(crate) fn routes() -> Router<Arc<AdminContext>> {
    Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(WRITE_PATH, post(forwarded_write))
        .route(sluice_raft::SELF_PATH, get(identity))
        .route(APPLIED_PATH, get(applied))
        .route("/v1/cluster/init", post(init))
        .route("/v1/cluster/join", post(join))
        .route("/v1/cluster/status", get(status))
        .route("/v1/cluster/nodes/{node}", delete(remove_node))
        .route(FAULTS_PATH, put(set_faults).get(faults))
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

async fn faults(AxState(ctx): Ctx, headers: HeaderMap) -> Result<Json<FaultSet>, ApiError> {
    check_bearer(&headers, &ctx.token)?;
    let hook = fault_hook(&ctx)?;
    Ok(Json(FaultSet {
        drop_raft_to: hook.drop_raft_to(),
        hold_entries_to: hook.hold_entries_to(),
    }))
}

async fn set_faults(
    AxState(ctx): Ctx,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<FaultSet>, ApiError> {
    check_bearer(&headers, &ctx.token)?;
    let hook = fault_hook(&ctx)?;
    let set: FaultSet = crate::routes::json_body(&bytes)?;
    tracing::warn!(node = ctx.node_id, drop_raft_to = ?set.drop_raft_to, hold_entries_to = ?set.hold_entries_to, "fault injection: dropping raft RPCs");
    hook.set_drop_raft_to(set.drop_raft_to);
    hook.set_hold_entries_to(set.hold_entries_to);
    Ok(Json(FaultSet {
        drop_raft_to: hook.drop_raft_to(),
        hold_entries_to: hook.hold_entries_to(),
    }))
}

fn bincode_answer<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// One bincode RPC: token first, then the body, then `call`'s answer.
async fn rpc<Req, Resp, F, Fut>(
    ctx: &AdminContext,
    headers: &HeaderMap,
    bytes: &Bytes,
    call: F,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    if let Err(e) = check_bearer(headers, &ctx.token) {
        return e.into_response();
    }
    match codec::decode::<Req>(bytes) {
        Ok(req) => bincode_answer(&call(req).await),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("undecodable RPC body: {e}"),
        )
            .into_response(),
    }
}

async fn append(AxState(ctx): Ctx, headers: HeaderMap, bytes: Bytes) -> Response {
    let raft = ctx.store.node().raft();
    rpc(&ctx, &headers, &bytes, |req| raft.append_entries(req)).await
}

async fn vote(AxState(ctx): Ctx, headers: HeaderMap, bytes: Bytes) -> Response {
    let raft = ctx.store.node().raft();
    rpc(&ctx, &headers, &bytes, |req| raft.vote(req)).await
}

async fn snapshot(AxState(ctx): Ctx, headers: HeaderMap, bytes: Bytes) -> Response {
    let raft = ctx.store.node().raft();
    rpc(&ctx, &headers, &bytes, |req| raft.install_snapshot(req)).await
}

/// A write forwarded by a follower: proposed here, where the leader stamps it.
async fn forwarded_write(AxState(ctx): Ctx, headers: HeaderMap, bytes: Bytes) -> Response {
    let node = ctx.store.node();
    rpc(&ctx, &headers, &bytes, |req: ForwardedWrite| async move {
        node.write_as_leader(req).await
    })
    .await
}

async fn identity(AxState(ctx): Ctx) -> impl IntoResponse {
    Json(ctx.store.node().identity())
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

/// `GET /readyz`: 200 while this node's Raft core runs, 503 `raft_stopped`
/// once it stopped (N2).
pub(crate) async fn readyz(AxState(ctx): Ctx) -> Response {
    match ctx.store.node().stopped() {
        None => "ok\n".into_response(),
        Some(why) => raft_stopped(&why).into_response(),
    }
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
    Ok(Json(
        serde_json::json!({ "applied": ctx.store.applied_index() }),
    ))
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        let (status, code) = match &e {
            ClusterError::NoLeader { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_leader"),
            ClusterError::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "node_unreachable"),
            ClusterError::NotInitialized => (StatusCode::CONFLICT, "not_initialized"),
            ClusterError::AlreadyInitialized => (StatusCode::CONFLICT, "already_initialized"),
            ClusterError::CommitTimeout { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "commit_timeout")
            }
            ClusterError::NodeNotFound { .. } => (StatusCode::NOT_FOUND, "node_not_found"),
            ClusterError::Open(_) | ClusterError::Raft(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "raft_error")
            }
        };
        ApiError {
            status,
            code: code.into(),
            message: e.to_string(),
            field: None,
        }
    }
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
    crate::routes::refuse_second_hop(node, headers)?;
    let Some((_, leader)) = node.leader() else {
        return Err(ClusterError::NoLeader {
            waited: std::time::Duration::ZERO,
        }
        .into());
    };
    let (status, bytes) = node
        .forward_json(&leader, method, path, body)
        .await
        .map_err(ApiError::from)?;
    Ok((
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response())
}

async fn init(AxState(ctx): Ctx, headers: HeaderMap) -> Result<Json<ClusterStatus>, ApiError> {
    check_bearer(&headers, &ctx.token)?;
    ctx.store.node().init().await?;
    Ok(Json(ctx.store.node().status()))
}

async fn join(AxState(ctx): Ctx, headers: HeaderMap, bytes: Bytes) -> Result<Response, ApiError> {
    check_bearer(&headers, &ctx.token)?;
    let req: JoinNode = crate::routes::json_body(&bytes)?;
    if !(req.addr.starts_with("http://") && req.addr.len() > 7) {
        return Err(ApiError::bad_field(
            "addr",
            format!("addr = {:?} is invalid: expected the new node's admin URL, e.g. http://127.0.0.2:7072", req.addr),
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
) -> Result<Response, ApiError> {
    check_bearer(&headers, &ctx.token)?;
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
        let mine_applied = ctx.store.applied_index();
        let probes = mine.members.iter().map(|m| {
            let addr = m.addr.clone();
            let is_me = m.node == me;
            async move {
                if is_me {
                    return Some(mine_applied);
                }
                let probe = node.get_json::<serde_json::Value>(&addr, APPLIED_PATH);
                match tokio::time::timeout(std::time::Duration::from_millis(500), probe).await {
                    Ok(Ok(v)) => v["applied"].as_u64(),
                    _ => None,
                }
            }
        });
        let applied = futures_util::future::join_all(probes).await;
        for (m, a) in mine.members.iter_mut().zip(applied) {
            m.reachable = a.is_some();
            m.last_applied = a.or(m.last_applied);
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
