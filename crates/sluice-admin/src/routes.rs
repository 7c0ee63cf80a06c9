//! The admin API's routes (listed in [`crate::api`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::Uri;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sluice_model::{ModelError, NodeId};

use crate::api::{BackendView, GroupView, ListenerView};
use crate::views::{backend_view, draining_listener_view, group_view, listener_view};
use crate::writes::{
    add_backend, add_listener, create_group, delete_group, remove_backend, remove_listener,
    set_backend, update_group, update_listener,
};
use crate::{ApiError, CommandStore};

/// What the handlers share.
pub struct AdminContext {
    /// This node's id.
    pub node_id: NodeId,
    /// The bearer token writes need.
    pub token: String,
    /// The command store (and through it the data plane).
    pub store: Arc<CommandStore>,
}

type Ctx = AxState<Arc<AdminContext>>;
type ApiResult<T> = Result<T, ApiError>;

/// The admin API router.
pub fn router(ctx: Arc<AdminContext>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(crate::cluster_routes::readyz))
        .route("/metrics", get(metrics))
        .route("/v1/state", get(state))
        .route("/v1/groups", get(list_groups).post(create_group))
        .route(
            "/v1/groups/{group}",
            get(show_group).patch(update_group).delete(delete_group),
        )
        .route(
            "/v1/groups/{group}/backends",
            get(list_backends).post(add_backend),
        )
        .route(
            "/v1/groups/{group}/backends/{addr}",
            get(show_backend).patch(set_backend).delete(remove_backend),
        )
        .route("/v1/listeners", get(list_listeners).post(add_listener))
        .route(
            "/v1/listeners/{port}",
            patch(update_listener).delete(remove_listener),
        )
        .merge(crate::cluster_routes::routes())
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: "no_such_route".into(),
                message: "no such API route (see /v1/groups, /v1/listeners)".into(),
                field: None,
            }
        })
        .with_state(ctx)
}

pub(crate) use sluice_clock::now_ms;

/// `?consistent=true` on a read.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReadOptions {
    #[serde(default)]
    consistent: bool,
}

/// For a consistent read: on the leader, confirms leadership with a quorum
/// first (`None`: answer locally); on a follower, answers with the leader's
/// own answer to the same request.
async fn linearize(
    ctx: &AdminContext,
    opts: &ReadOptions,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<Option<Response>> {
    if !opts.consistent {
        return Ok(None);
    }
    let node = ctx.store.node();
    if node.is_leader() {
        node.raft()
            .ensure_linearizable()
            .await
            .map_err(|e| ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "no_leader".into(),
                message: format!("cannot confirm leadership for a consistent read: {e}"),
                field: None,
            })?;
        return Ok(None);
    }
    refuse_second_hop(node, headers)?;
    let Some((_, leader)) = node.leader() else {
        return Err(sluice_raft::ClusterError::NoLeader {
            waited: std::time::Duration::ZERO,
        }
        .into());
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let (status, bytes) = node
        .forward_json(&leader, axum::http::Method::GET, path, None)
        .await?;
    Ok(Some(
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
    ))
}

/// A request another member forwarded here because it took this node for
/// the leader: it is answered here or refused, never forwarded again, so no
/// request can travel in a circle between members that disagree on who
/// leads.
pub(crate) fn refuse_second_hop(
    node: &sluice_raft::RaftNode,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if headers.contains_key(sluice_raft::FORWARDED_HEADER) {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "not_leader".into(),
            message: format!(
                "node {} was asked as the leader but does not lead; a forwarded request is not forwarded again",
                node.id()
            ),
            field: None,
        });
    }
    Ok(())
}

/// Parses a JSON body into a clear 400 naming what is wrong: an unknown
/// field (a typo would otherwise fall back to a default) is
/// `unknown_field` with the field named.
pub(crate) fn json_body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_string());
        match unknown {
            Some(field) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "unknown_field".into(),
                message: format!("request body is not valid: {message}"),
                field: Some(field),
            },
            None => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_body".into(),
                message: format!("request body is not valid: {message}"),
                field: None,
            },
        }
    })
}

async fn metrics(AxState(ctx): Ctx) -> impl IntoResponse {
    let state = ctx.store.current();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(ctx.node_id, &state, ctx.store.data_plane()),
    )
}

async fn state(
    AxState(ctx): Ctx,
    Query(opts): Query<ReadOptions>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(r) = linearize(&ctx, &opts, &uri, &headers).await? {
        return Ok(r);
    }
    Ok(Json((*ctx.store.current()).clone()).into_response())
}

async fn list_groups(
    AxState(ctx): Ctx,
    Query(opts): Query<ReadOptions>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(r) = linearize(&ctx, &opts, &uri, &headers).await? {
        return Ok(r);
    }
    let s = ctx.store.current();
    let now = now_ms();
    let groups: Vec<GroupView> = s
        .groups
        .values()
        .map(|g| group_view(&s, g, ctx.store.data_plane(), now))
        .collect();
    Ok(Json(groups).into_response())
}

fn find_group_view(ctx: &AdminContext, name: &str) -> ApiResult<GroupView> {
    let s = ctx.store.current();
    let g = s
        .groups
        .get(name)
        .ok_or_else(|| ModelError::GroupNotFound {
            group: name.to_string(),
        })?;
    Ok(group_view(&s, g, ctx.store.data_plane(), now_ms()))
}

async fn show_group(
    AxState(ctx): Ctx,
    Path(group): Path<String>,
    Query(opts): Query<ReadOptions>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(r) = linearize(&ctx, &opts, &uri, &headers).await? {
        return Ok(r);
    }
    Ok(Json(find_group_view(&ctx, &group)?).into_response())
}

async fn list_backends(
    AxState(ctx): Ctx,
    Path(group): Path<String>,
    Query(opts): Query<ReadOptions>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(r) = linearize(&ctx, &opts, &uri, &headers).await? {
        return Ok(r);
    }
    Ok(Json(find_group_view(&ctx, &group)?.backends).into_response())
}

fn find_backend_view(ctx: &AdminContext, group: &str, addr: &str) -> ApiResult<BackendView> {
    let s = ctx.store.current();
    let g = s
        .groups
        .get(group)
        .ok_or_else(|| ModelError::GroupNotFound {
            group: group.to_string(),
        })?;
    let b = g
        .backends
        .get(addr)
        .ok_or_else(|| ModelError::BackendNotFound {
            group: group.to_string(),
            backend: addr.to_string(),
        })?;
    Ok(backend_view(&s, g, b, ctx.store.data_plane(), now_ms()))
}

async fn show_backend(
    AxState(ctx): Ctx,
    Path((group, addr)): Path<(String, String)>,
    Query(opts): Query<ReadOptions>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(r) = linearize(&ctx, &opts, &uri, &headers).await? {
        return Ok(r);
    }
    Ok(Json(find_backend_view(&ctx, &group, &addr)?).into_response())
}

async fn list_listeners(
    AxState(ctx): Ctx,
    Query(opts): Query<ReadOptions>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(r) = linearize(&ctx, &opts, &uri, &headers).await? {
        return Ok(r);
    }
    let s = ctx.store.current();
    let mut listeners: Vec<ListenerView> = s
        .listeners
        .values()
        .map(|l| listener_view(&s, l, ctx.store.data_plane()))
        .collect();
    listeners.extend(s.listener_drains.values().map(draining_listener_view));
    listeners.sort_by_key(|l| (l.port, l.state != "active"));
    Ok(Json(listeners).into_response())
}
