//! The one request path from a member to another member's admin port: the
//! cluster token as a bearer token, the one-hop header, a hard timeout, and
//! "no answer" kept apart from an answer. [`crate::network`] (Raft RPCs) and
//! [`crate::member_client`] (forwarded writes, joins, probes) both send
//! through [`send`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use crate::wire::FORWARDED_HEADER;

/// A request to another member.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: http::Method,
    pub(crate) url: &'a str,
    /// The cluster token, sent as a bearer token.
    pub(crate) token: &'a str,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

/// Why [`send`] got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The request could not be built (a bad URL); nothing was sent.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Sent, but no complete answer came: refused, reset, or timed out.
    #[error("{0}")]
    NoAnswer(String),
}

/// Sends `request` with `client`; the answer's status and whole body, or
/// why none came within `timeout` (connecting included).
pub(crate) async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Outgoing<'_>,
    timeout: Duration,
) -> Result<(http::StatusCode, Bytes), SendError> {
    let req = http::Request::builder()
        .method(request.method)
        .uri(request.url)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", request.token),
        )
        .header(http::header::CONTENT_TYPE, request.content_type)
        .header(FORWARDED_HEADER, "1")
        .body(Full::new(Bytes::from(request.body)))
        .map_err(|e| SendError::Invalid(e.to_string()))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| SendError::NoAnswer(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| SendError::NoAnswer(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SendError::NoAnswer(format!("no answer within {timeout:?}")))?
}
