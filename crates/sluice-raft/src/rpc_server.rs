//! The server side of the member-to-member protocol ([`crate::wire`]), next
//! to its clients ([`crate::network`], `member_client.rs`): the Raft
//! RPCs, forwarded writes and the node's identity, as an axum [`Router`]
//! the admin server merges into its own.
//!
//! How: every RPC checks the cluster token before it decodes the bincode
//! body ([`crate::codec`]) and answers the local Raft's `Result` encoded
//! the same way. A missing or wrong token is `401` with the admin API's
//! JSON error body; an undecodable body is `400`.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bearer::{check_bearer, BearerError};
use crate::cluster::RaftNode;
use crate::codec;
use crate::wire::{paths, ForwardedWrite, SELF_PATH, WRITE_PATH};

type Node = State<Arc<RaftNode>>;

/// The routes other members call on this node, served with `node`.
pub fn router(node: Arc<RaftNode>) -> Router {
    Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(WRITE_PATH, post(forwarded_write))
        .route(SELF_PATH, get(identity))
        .with_state(node)
}

/// The admin API's error body (`{"error":{"code","message","field"}}`),
/// for a refused token.
#[derive(Serialize)]
struct Unauthorized {
    error: UnauthorizedDetail,
}

#[derive(Serialize)]
struct UnauthorizedDetail {
    code: &'static str,
    message: String,
    field: Option<String>,
}

fn unauthorized(e: BearerError) -> Response {
    let body = Unauthorized {
        error: UnauthorizedDetail {
            code: "unauthorized",
            message: e.to_string(),
            field: None,
        },
    };
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

fn bincode_answer<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// One bincode RPC: token first, then the body, then `call`'s answer.
async fn rpc<Req, Resp, F, Fut>(
    node: &RaftNode,
    headers: &HeaderMap,
    bytes: &Bytes,
    call: F,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Resp>,
{
    if let Err(e) = check_bearer(headers, node.token()) {
        return unauthorized(e);
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

async fn append(State(node): Node, headers: HeaderMap, bytes: Bytes) -> Response {
    let raft = node.raft();
    rpc(&node, &headers, &bytes, |req| raft.append_entries(req)).await
}

async fn vote(State(node): Node, headers: HeaderMap, bytes: Bytes) -> Response {
    let raft = node.raft();
    rpc(&node, &headers, &bytes, |req| raft.vote(req)).await
}

async fn snapshot(State(node): Node, headers: HeaderMap, bytes: Bytes) -> Response {
    let raft = node.raft();
    rpc(&node, &headers, &bytes, |req| raft.install_snapshot(req)).await
}

/// A write forwarded by a follower: proposed here, where the leader stamps it.
async fn forwarded_write(State(node): Node, headers: HeaderMap, bytes: Bytes) -> Response {
    let leader = &node;
    rpc(&node, &headers, &bytes, |req: ForwardedWrite| async move {
        leader.write_as_leader(req).await
    })
    .await
}

async fn identity(State(node): Node) -> impl IntoResponse {
    Json(node.identity())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused token gets the admin API's own error body, byte for byte.
    #[tokio::test]
    async fn a_refused_token_answers_like_the_admin_api() {
        for (e, message) in [
            (BearerError::Missing, "missing bearer token"),
            (BearerError::Wrong, "wrong bearer token"),
        ] {
            let answer = unauthorized(e);
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
            let body = axum::body::to_bytes(answer.into_body(), 1024)
                .await
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&body),
                format!(
                    r#"{{"error":{{"code":"unauthorized","message":"{message}","field":null}}}}"#
                )
            );
        }
    }
}
