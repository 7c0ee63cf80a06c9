//! Consistent reads: a layer on the read routes that honours
//! `?consistent=true`. On the leader it confirms leadership with a quorum
//! first, then the handler answers from this node's state; on a follower it
//! answers with the leader's own answer to the same request (one hop at
//! most). Without the flag the handler answers at once.

use std::sync::Arc;

use axum::extract::{Query, Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_raft::ClusterError;

use crate::context::{AdminContext, ApiResult};
use crate::extract::{refuse_second_hop, relayed};
use crate::ApiError;

/// `?consistent=true` on a read.
#[derive(Debug, Default, Deserialize)]
struct ReadOptions {
    #[serde(default)]
    consistent: bool,
}

/// The layer's function (see the module doc); wrap a read handler with
/// `axum::middleware::from_fn_with_state(ctx, consistent_reads)`.
pub(crate) async fn consistent_reads(
    AxState(ctx): AxState<Arc<AdminContext>>,
    request: Request,
    next: Next,
) -> Response {
    let opts = match Query::<ReadOptions>::try_from_uri(request.uri()) {
        Ok(Query(opts)) => opts,
        Err(rejection) => return rejection.into_response(),
    };
    if !opts.consistent {
        return next.run(request).await;
    }
    match linearize(&ctx, request.uri(), request.headers()).await {
        Ok(None) => next.run(request).await,
        Ok(Some(leaders)) => leaders,
        Err(e) => e.into_response(),
    }
}

/// On the leader, confirms leadership with a quorum (`None`: answer
/// locally); on a follower, the leader's own answer to the same request.
async fn linearize(
    ctx: &AdminContext,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<Option<Response>> {
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
        return Err(ClusterError::NoLeader {
            waited: std::time::Duration::ZERO,
        }
        .into());
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let (status, bytes) = node.forward_json(&leader, Method::GET, path, None).await?;
    Ok(Some(relayed(status, bytes)))
}
