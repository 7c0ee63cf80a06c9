//! The admin API's router (routes listed in [`crate::api`]) and its read
//! handlers. Reads answer from this node's state; `?consistent=true` is
//! handled by the [`crate::consistent`] layer on each read route. Writes
//! are in [`crate::writes`], cluster operations in `cluster_routes`, and
//! the member-to-member protocol is merged in from
//! [`sluice_raft::rpc_server`].

use std::ops::Bound;
use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::handler::Handler;
use axum::http::{header, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use sluice_clock::now_ms;
use sluice_model::{ModelError, SecretPem};

use crate::api::{
    BackendPage, BackendView, GroupView, ListenerView, BACKEND_PAGE_DEFAULT, BACKEND_PAGE_MAX,
};
use crate::consistent::consistent_reads;
use crate::context::{AdminContext, ApiResult, Ctx};
use crate::views::{backend_view, draining_listener_view, group_view, listener_view};
use crate::writes::{
    add_backend, add_listener, create_group, delete_group, remove_backend, remove_listener,
    set_backend, update_group, update_listener,
};
use crate::ApiError;

/// The admin API router, with the Raft RPC server of `ctx`'s node merged
/// in: one port for operators and members.
pub fn router(ctx: Arc<AdminContext>) -> Router {
    let consistent = || from_fn_with_state(ctx.clone(), consistent_reads);
    let rpc = sluice_raft::rpc_server::router(ctx.store.node().clone());
    crate::metrics::mark_started();
    let audit = from_fn_with_state(ctx.clone(), crate::audit::audit_writes);
    Router::new()
        .route("/", get(crate::dashboard::page))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/state", get(state.layer(consistent())))
        .route(
            "/v1/groups",
            get(list_groups.layer(consistent())).post(create_group),
        )
        .route(
            "/v1/groups/{group}",
            get(show_group.layer(consistent()))
                .patch(update_group)
                .delete(delete_group),
        )
        .route(
            "/v1/groups/{group}/backends",
            get(list_backends.layer(consistent())).post(add_backend),
        )
        .route(
            "/v1/groups/{group}/backends/{addr}",
            get(show_backend.layer(consistent()))
                .patch(set_backend)
                .delete(remove_backend),
        )
        .route(
            "/v1/listeners",
            get(list_listeners.layer(consistent())).post(add_listener),
        )
        .route(
            "/v1/listeners/{port}",
            patch(update_listener).delete(remove_listener),
        )
        .merge(crate::cluster_routes::routes())
        .merge(crate::node_routes::routes(ctx.clone()))
        .merge(crate::cert_routes::routes(ctx.clone()))
        .merge(crate::overview::routes())
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: "no_such_route".into(),
                message: "no such API route (see /v1/groups, /v1/listeners, /v1/certs)".into(),
                field: None,
            }
        })
        .with_state(ctx)
        .merge(rpc)
        .layer(audit)
}

async fn metrics(AxState(ctx): Ctx) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&ctx),
    )
}

/// The replicated state, certificates' private keys blanked: no answer
/// carries a key.
async fn state(AxState(ctx): Ctx) -> ApiResult<impl IntoResponse> {
    let mut state = (*ctx.store.current()).clone();
    let names: Vec<String> = state.certs.keys().cloned().collect();
    for name in names {
        if let Some(cert) = state.certs.get_mut(&name) {
            cert.key_pem = SecretPem(String::new());
        }
    }
    Ok(Json(state))
}

async fn list_groups(AxState(ctx): Ctx) -> ApiResult<impl IntoResponse> {
    let s = ctx.store.current();
    let now = now_ms();
    let groups: Vec<GroupView> = s
        .groups
        .values()
        .map(|g| group_view(&s, g, ctx.store.data_plane(), now))
        .collect();
    Ok(Json(groups))
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

async fn show_group(AxState(ctx): Ctx, Path(group): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(find_group_view(&ctx, &group)?))
}

/// `?limit=N&after=ADDR` on a group's backend list.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    /// Taken as text so that a bad value is answered like a bad field.
    limit: Option<String>,
    after: Option<String>,
}

impl PageQuery {
    /// `None`: the whole list (neither parameter given).
    fn limit(&self) -> ApiResult<Option<usize>> {
        let Some(text) = &self.limit else {
            return Ok(self.after.is_some().then_some(BACKEND_PAGE_DEFAULT));
        };
        let range = || format!("1..={BACKEND_PAGE_MAX}");
        let n: u64 = text.parse().map_err(|_| ModelError::Invalid {
            field: "limit".into(),
            value: text.clone(),
            expected: format!("an integer {}", range()).into(),
        })?;
        match usize::try_from(n) {
            Ok(n @ 1..=BACKEND_PAGE_MAX) => Ok(Some(n)),
            _ => Err(ModelError::OutOfRange {
                field: "limit".into(),
                value: text.clone(),
                range: range().into(),
            }
            .into()),
        }
    }
}

/// The group's backends ordered by address; with `limit` or `after`, one
/// page of them (the views of that page only are built).
async fn list_backends(
    AxState(ctx): Ctx,
    Path(group): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let limit = q.limit()?;
    let s = ctx.store.current();
    let g = s
        .groups
        .get(&group)
        .ok_or_else(|| ModelError::GroupNotFound {
            group: group.clone(),
        })?;
    let dp = ctx.store.data_plane();
    let now = now_ms();
    let from = match &q.after {
        Some(after) => Bound::Excluded(after.as_str()),
        None => Bound::Unbounded,
    };
    let view = |(_, b)| backend_view(&s, g, b, dp, now);
    let mut rest = g.backends.range::<_, str>((from, Bound::Unbounded));
    let Some(limit) = limit else {
        return Ok(Json(rest.map(view).collect::<Vec<_>>()).into_response());
    };
    let backends: Vec<BackendView> = rest.by_ref().take(limit).map(view).collect();
    let next_after = match rest.next() {
        Some(_) => backends.last().map(|b| b.addr.clone()),
        None => None,
    };
    Ok(Json(BackendPage {
        backends,
        next_after,
    })
    .into_response())
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
) -> ApiResult<impl IntoResponse> {
    Ok(Json(find_backend_view(&ctx, &group, &addr)?))
}

async fn list_listeners(AxState(ctx): Ctx) -> ApiResult<impl IntoResponse> {
    let s = ctx.store.current();
    let mut listeners: Vec<ListenerView> = s
        .listeners
        .values()
        .map(|l| listener_view(&s, l, ctx.store.data_plane()))
        .collect();
    listeners.extend(s.listener_drains.values().map(draining_listener_view));
    listeners.sort_by_key(|l| (l.port, l.state != "active"));
    Ok(Json(listeners))
}
