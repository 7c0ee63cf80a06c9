//! What handlers take from a request besides its path: the JSON body (a
//! clear 400 naming what is wrong), the one-hop rule for requests another
//! member forwarded, and the leader's answer relayed as it came.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::context::ApiResult;
use crate::ApiError;

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

/// The leader's answer to a request this node replayed on it, as it came
/// (its status, its JSON body).
pub(crate) fn relayed(status: u16, body: Bytes) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
