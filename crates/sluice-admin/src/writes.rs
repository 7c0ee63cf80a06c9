//! The write routes: each proposes one command and answers with what the
//! leader applied — the excerpt carried back with the commit (N2) — never
//! with the answering node's own copy, which may lag. Checks that depend on
//! the state (does the group exist, is the backend draining) are the state
//! machine's; checks of the request alone (ranges, unknown fields, an update
//! that names nothing) are made here, before anything reaches the log.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponseParts, ResponseParts};
use axum::Json;
use serde::Deserialize;
use sluice_clock::now_ms;
use sluice_model::{
    validate_port, validate_weight, Applied, BackendStatus, Command, DrainPolicy, ModelError,
    State, DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_WEIGHT,
};

use crate::api::{
    AddBackend, AddListener, BackendState, BackendView, CreateGroup, DeletedGroup, GroupView,
    ListenerView, SetBackend, UpdateGroup, UpdateListener,
};
use crate::auth::Authorized;
use crate::context::{AdminContext, ApiResult, Ctx};
use crate::extract::json_body;
use crate::views::{
    backend_view, draining_listener_view, group_view, listener_view, own_ramp_view,
};
use crate::{ApiError, Submitted};

/// The headers of a committed write's answer: `x-sluice-log-index` (its
/// log entry) and `x-sluice-revision` (the count of commands applied
/// right after it: a node whose state has this revision or a later one
/// has applied it).
pub(crate) struct Committed {
    log_index: u64,
    revision: u64,
}

impl Committed {
    pub(crate) fn of(s: &Submitted) -> Committed {
        Committed {
            log_index: s.log_index,
            revision: s.excerpt.revision,
        }
    }
}

impl IntoResponseParts for Committed {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        static LOG_INDEX: HeaderName = HeaderName::from_static("x-sluice-log-index");
        static REVISION: HeaderName = HeaderName::from_static("x-sluice-revision");
        let h = res.headers_mut();
        h.insert(LOG_INDEX.clone(), HeaderValue::from(self.log_index));
        h.insert(REVISION.clone(), HeaderValue::from(self.revision));
        Ok(res)
    }
}

/// `201`/`200` as the outcome asks, or `202` when some member did not
/// route by the write yet.
pub(crate) fn status_of(done: StatusCode, submitted: &Submitted) -> StatusCode {
    if submitted.pending.is_empty() {
        done
    } else {
        StatusCode::ACCEPTED
    }
}

/// The leader's answer lacked the object the command touched: a bug, said
/// as one instead of a panic.
pub(crate) fn missing(what: String) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal".into(),
        message: format!("the leader's answer does not show {what}"),
        field: None,
    }
}

fn group_answer(ctx: &AdminContext, s: &Submitted, name: &str) -> ApiResult<GroupView> {
    let g = s
        .excerpt
        .groups
        .get(name)
        .ok_or_else(|| missing(format!("group {name:?}")))?;
    let mut view = group_view(&s.excerpt, g, ctx.store.data_plane(), now_ms());
    view.pending_nodes = s.pending.clone();
    Ok(view)
}

fn backend_answer(
    ctx: &AdminContext,
    s: &Submitted,
    group: &str,
    addr: &str,
) -> ApiResult<BackendView> {
    let g = s.excerpt.groups.get(group);
    let b = g.and_then(|g| g.backends.get(addr));
    let (Some(g), Some(b)) = (g, b) else {
        return Err(missing(format!("backend {addr} of group {group:?}")));
    };
    let now = now_ms();
    let mut view = backend_view(&s.excerpt, g, b, ctx.store.data_plane(), now);
    view.ramp = own_ramp_view(b, now);
    view.pending_nodes = s.pending.clone();
    Ok(view)
}

fn listener_answer(
    ctx: &AdminContext,
    state: &State,
    s: &Submitted,
    port: u16,
) -> ApiResult<ListenerView> {
    let l = state
        .listeners
        .get(&port)
        .ok_or_else(|| missing(format!("the listener on port {port}")))?;
    let mut view = listener_view(state, l, ctx.store.data_plane());
    view.pending_nodes = s.pending.clone();
    Ok(view)
}

/// A port from the path, 1..=65535.
fn port_of(raw: &str) -> ApiResult<u16> {
    let n: u32 = raw.parse().map_err(|_| {
        ApiError::bad_field(
            "port",
            format!("port = {raw:?} is invalid: expected 1..=65535"),
        )
    })?;
    Ok(validate_port(n)?)
}

fn nothing_to_update(fields: &'static str) -> ApiError {
    ApiError::from(ModelError::NothingToUpdate {
        fields: fields.into(),
    })
}

// === groups ===

pub(crate) async fn create_group(
    AxState(ctx): Ctx,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<GroupView>)> {
    let req: CreateGroup = json_body(&bytes)?;
    let command = Command::CreateGroup {
        name: req.name.clone(),
        drain: DrainPolicy {
            enabled: req.drain_enabled.unwrap_or(true),
            timeout_ms: req.drain_timeout_ms.unwrap_or(DEFAULT_DRAIN_TIMEOUT_MS),
        },
        slow_start_ms: req.slow_start_ms,
    };
    let s = ctx.store.submit(command).await?;
    let view = group_answer(&ctx, &s, &req.name)?;
    Ok((
        status_of(StatusCode::CREATED, &s),
        Committed::of(&s),
        Json(view),
    ))
}

pub(crate) async fn update_group(
    AxState(ctx): Ctx,
    Path(group): Path<String>,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<GroupView>)> {
    let req: UpdateGroup = json_body(&bytes)?;
    if req.drain_enabled.is_none()
        && req.drain_timeout_ms.is_none()
        && req.slow_start_ms.is_none()
        && req.health.is_empty()
    {
        return Err(nothing_to_update(
            "drain_enabled, drain_timeout_ms, slow_start_ms, health",
        ));
    }
    let s = ctx
        .store
        .submit(Command::UpdateGroup {
            name: group.clone(),
            drain_enabled: req.drain_enabled,
            drain_timeout_ms: req.drain_timeout_ms,
            health: req.health,
            slow_start_ms: req.slow_start_ms,
        })
        .await?;
    let view = group_answer(&ctx, &s, &group)?;
    Ok((status_of(StatusCode::OK, &s), Committed::of(&s), Json(view)))
}

/// `?force=true` on a group's deletion.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteOptions {
    #[serde(default)]
    force: bool,
}

pub(crate) async fn delete_group(
    AxState(ctx): Ctx,
    Path(group): Path<String>,
    Query(opts): Query<DeleteOptions>,
    _: Authorized,
) -> ApiResult<(StatusCode, Committed, Json<DeletedGroup>)> {
    let s = ctx
        .store
        .submit(Command::DeleteGroup {
            name: group.clone(),
            force: opts.force,
            at: 0,
        })
        .await?;
    let x = &s.excerpt;
    let listeners = x
        .listener_drains
        .values()
        .map(draining_listener_view)
        .collect();
    let (state, backends, done) = match x.groups.get(&group) {
        Some(g) => {
            let backends = g
                .backends
                .values()
                .map(|b| backend_view(x, g, b, ctx.store.data_plane(), now_ms()))
                .collect();
            ("deleting", backends, StatusCode::ACCEPTED)
        }
        None => ("deleted", Vec::new(), StatusCode::OK),
    };
    let answer = DeletedGroup {
        name: group,
        state: state.into(),
        backends,
        listeners,
        pending_nodes: s.pending.clone(),
    };
    Ok((status_of(done, &s), Committed::of(&s), Json(answer)))
}

// === backends ===

pub(crate) async fn add_backend(
    AxState(ctx): Ctx,
    Path(group): Path<String>,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<BackendView>)> {
    let req: AddBackend = json_body(&bytes)?;
    let weight = match req.weight {
        Some(w) => validate_weight(w)?,
        None => DEFAULT_WEIGHT,
    };
    let s = ctx
        .store
        .submit(Command::AddBackend {
            group: group.clone(),
            addr: req.addr.clone(),
            weight,
            at: 0,
        })
        .await?;
    let view = backend_answer(&ctx, &s, &group, &req.addr)?;
    Ok((status_of(StatusCode::OK, &s), Committed::of(&s), Json(view)))
}

pub(crate) async fn set_backend(
    AxState(ctx): Ctx,
    Path((group, addr)): Path<(String, String)>,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<BackendView>)> {
    let req: SetBackend = json_body(&bytes)?;
    if req.weight.is_none() && req.maintenance.is_none() {
        return Err(nothing_to_update("weight, maintenance"));
    }
    let weight = req.weight.map(validate_weight).transpose()?;
    let s = ctx
        .store
        .submit(Command::SetBackend {
            group: group.clone(),
            addr: addr.clone(),
            weight,
            maintenance: req.maintenance,
            at: 0,
        })
        .await?;
    let view = backend_answer(&ctx, &s, &group, &addr)?;
    Ok((status_of(StatusCode::OK, &s), Committed::of(&s), Json(view)))
}

/// Removal: `202` with the drain the leader started (or goes on with);
/// `200 removed` when, by the time every member routes without it, the
/// drain already completed (nothing was in flight, or draining is off).
pub(crate) async fn remove_backend(
    AxState(ctx): Ctx,
    Path((group, addr)): Path<(String, String)>,
    _: Authorized,
) -> ApiResult<(StatusCode, Committed, Json<BackendView>)> {
    // The leader stamps the removal's time when it proposes the command;
    // the deadline every node closes at is computed from it (C3).
    let s = ctx
        .store
        .submit(Command::RemoveBackend {
            group: group.clone(),
            addr: addr.clone(),
            at: 0,
        })
        .await?;
    let mut view = backend_answer(&ctx, &s, &group, &addr)?;
    let drain = match s.applied {
        Applied::Draining { drain, .. } => Some(drain),
        _ => None,
    };
    if s.pending.is_empty() && drain.is_some() && drain_completed(&ctx, &s, &group, &addr, drain) {
        view.state = BackendState::Removed;
        view.drain = None;
        view.in_flight = 0;
        view.tunnels = 0;
        return Ok((StatusCode::OK, Committed::of(&s), Json(view)));
    }
    Ok((
        status_of(StatusCode::ACCEPTED, &s),
        Committed::of(&s),
        Json(view),
    ))
}

/// Whether this node, which routes by the removal, has since applied the
/// completion of its drain (a later committed state).
fn drain_completed(
    ctx: &AdminContext,
    s: &Submitted,
    group: &str,
    addr: &str,
    drain: Option<sluice_model::DrainId>,
) -> bool {
    let now = ctx.store.current();
    if now.revision < s.excerpt.revision {
        return false;
    }
    let status = now
        .groups
        .get(group)
        .and_then(|g| g.backends.get(addr))
        .map(|b| b.status);
    match status {
        None => true,
        Some(BackendStatus::Draining { drain: d }) => Some(d) != drain,
        Some(BackendStatus::Active) => false,
    }
}

// === listeners ===

/// Longest `listener add` waits for every member's bind report.
const BIND_WAIT: Duration = Duration::from_secs(2);

pub(crate) async fn add_listener(
    AxState(ctx): Ctx,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<ListenerView>)> {
    let req: AddListener = json_body(&bytes)?;
    let port = validate_port(req.port)?;
    let s = ctx
        .store
        .submit(Command::AddListener {
            port,
            group: req.group,
            request_timeout_ms: req.request_timeout_ms.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
            tls: req.tls,
        })
        .await?;
    let generation = s
        .excerpt
        .listeners
        .get(&port)
        .map(|l| l.generation)
        .ok_or_else(|| missing(format!("the listener on port {port}")))?;
    // Each member reports its bind as a command of its own: wait for them
    // (bounded), then answer from the state that holds their reports.
    let reported = |state: &State| {
        state.listeners.get(&port).is_some_and(|l| {
            l.generation == generation && state.nodes.iter().all(|n| l.nodes.contains_key(n))
        })
    };
    let mut states = ctx.store.node().subscribe();
    let _ = tokio::time::timeout(BIND_WAIT, states.wait_for(|st| reported(st))).await;
    let now = ctx.store.current();
    let same = now
        .listeners
        .get(&port)
        .is_some_and(|l| l.generation == generation);
    let view = if same {
        listener_answer(&ctx, &now, &s, port)?
    } else {
        listener_answer(&ctx, &s.excerpt, &s, port)?
    };
    Ok((
        status_of(StatusCode::CREATED, &s),
        Committed::of(&s),
        Json(view),
    ))
}

pub(crate) async fn update_listener(
    AxState(ctx): Ctx,
    Path(port): Path<String>,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<ListenerView>)> {
    let port = port_of(&port)?;
    let req: UpdateListener = json_body(&bytes)?;
    if req.group.is_none() && req.request_timeout_ms.is_none() && req.tls.is_none() {
        return Err(nothing_to_update("group, request_timeout_ms, tls"));
    }
    let s = ctx
        .store
        .submit(Command::UpdateListener {
            port,
            group: req.group,
            request_timeout_ms: req.request_timeout_ms,
            tls: req.tls,
        })
        .await?;
    let view = listener_answer(&ctx, &s.excerpt, &s, port)?;
    Ok((status_of(StatusCode::OK, &s), Committed::of(&s), Json(view)))
}

pub(crate) async fn remove_listener(
    AxState(ctx): Ctx,
    Path(port): Path<String>,
    _: Authorized,
) -> ApiResult<(StatusCode, Committed, Json<ListenerView>)> {
    let port = port_of(&port)?;
    let s = ctx
        .store
        .submit(Command::RemoveListener { port, at: 0 })
        .await?;
    let d = s
        .excerpt
        .listener_drain_of(port)
        .ok_or_else(|| missing(format!("the drain of the listener on port {port}")))?;
    let mut view = draining_listener_view(d);
    view.pending_nodes = s.pending.clone();
    Ok((StatusCode::ACCEPTED, Committed::of(&s), Json(view)))
}
