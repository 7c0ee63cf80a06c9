//! A node's own drain (N1) as operators drive it: `GET /v1/nodes` lists
//! every member with its drain and what it holds now; `POST
//! /v1/nodes/{node}/drain` and `/undrain` propose the commands (any node
//! takes them; the leader stamps the drain's start, so every node sees the
//! same deadline, C3). The drained node's data plane acts on the drain as
//! soon as it applies it, before the write is answered (C2).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::{Json, Router};
use sluice_clock::now_ms;
use sluice_model::{Command, NodeDrain, NodeDrainReason, NodeId};
use sluice_raft::MemberHolds;

use crate::api::{DrainNode, NodeList, NodeView, OwnDrainView, DEFAULT_NODE_DRAIN_TIMEOUT_MS};
use crate::auth::Authorized;
use crate::cluster_routes::{holds_of, probe_member};
use crate::consistent::consistent_reads;
use crate::context::{AdminContext, ApiResult, Ctx};
use crate::extract::json_body;
use crate::writes::Committed;
use crate::Submitted;

/// Routes of node drains.
pub(crate) fn routes(ctx: Arc<AdminContext>) -> Router<Arc<AdminContext>> {
    let consistent = from_fn_with_state(ctx, consistent_reads);
    Router::new()
        .route("/v1/nodes", get(list_nodes.layer(consistent)))
        .route("/v1/nodes/{node}/drain", post(drain_node))
        .route("/v1/nodes/{node}/undrain", post(undrain_node))
}

/// A node drain as the API shows it.
pub(crate) fn own_drain_view(d: &NodeDrain, now: u64) -> OwnDrainView {
    OwnDrainView {
        drain: d.drain,
        reason: d.reason,
        started_ms: d.started,
        deadline_ms: d.deadline,
        remaining_ms: d.deadline.saturating_sub(now),
        finished: d.finished,
    }
}

/// What `node` holds: this node's own counts, or the member's answer
/// (`None` when it does not answer within half a second).
async fn holds(ctx: &AdminContext, node: NodeId, addr: &str) -> Option<MemberHolds> {
    if node == ctx.node_id {
        return Some(holds_of(ctx));
    }
    probe_member(ctx, addr).await.map(|(_, h)| h)
}

/// The member's admin URL, if it is one.
fn addr_of(ctx: &AdminContext, node: NodeId) -> Option<String> {
    ctx.store
        .node()
        .status()
        .members
        .into_iter()
        .find(|m| m.node == node)
        .map(|m| m.addr)
}

async fn list_nodes(AxState(ctx): Ctx) -> Json<NodeList> {
    let state = ctx.store.current();
    let now = now_ms();
    let members = ctx.store.node().status().members;
    let answers =
        futures_util::future::join_all(members.iter().map(|m| holds(&ctx, m.node, &m.addr))).await;
    let mut nodes: Vec<NodeView> = members
        .into_iter()
        .zip(answers)
        .map(|(m, holds)| NodeView {
            node: m.node,
            reachable: holds.is_some(),
            drain: state
                .node_drains
                .get(&m.node)
                .map(|d| own_drain_view(d, now)),
            holds,
            addr: m.addr,
            pending_nodes: Vec::new(),
        })
        .collect();
    nodes.sort_by_key(|n| n.node);
    Json(NodeList { nodes })
}

/// The answer to a node drain or undrain: the node as the leader left it.
async fn node_answer(ctx: &AdminContext, s: &Submitted, node: NodeId) -> NodeView {
    let addr = addr_of(ctx, node).unwrap_or_default();
    let holds = holds(ctx, node, &addr).await;
    NodeView {
        node,
        reachable: holds.is_some(),
        drain: s
            .excerpt
            .node_drains
            .get(&node)
            .map(|d| own_drain_view(d, now_ms())),
        holds,
        addr,
        pending_nodes: s.pending.clone(),
    }
}

/// `202` with the node's drain (the one started, or the one going on).
async fn drain_node(
    AxState(ctx): Ctx,
    Path(node): Path<NodeId>,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<NodeView>)> {
    let body: DrainNode = if bytes.is_empty() {
        DrainNode::default()
    } else {
        json_body(&bytes)?
    };
    let timeout_ms = body.timeout_ms.unwrap_or(DEFAULT_NODE_DRAIN_TIMEOUT_MS);
    sluice_model::validate_node_drain_timeout(timeout_ms)?;
    let s = ctx
        .store
        .submit(Command::DrainNode {
            node,
            timeout_ms,
            reason: NodeDrainReason::Operator,
            incarnation: None,
            at: 0,
        })
        .await?;
    let view = node_answer(&ctx, &s, node).await;
    Ok((StatusCode::ACCEPTED, Committed::of(&s), Json(view)))
}

/// `200` with the node taking clients again (`202` while some member did
/// not apply it yet).
async fn undrain_node(
    AxState(ctx): Ctx,
    Path(node): Path<NodeId>,
    _: Authorized,
) -> ApiResult<(StatusCode, Committed, Json<NodeView>)> {
    let s = ctx.store.submit(Command::UndrainNode { node }).await?;
    let view = node_answer(&ctx, &s, node).await;
    let status = if s.pending.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Committed::of(&s), Json(view)))
}
