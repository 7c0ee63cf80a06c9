//! HTTP to another node's admin port, as a member: the cluster token on
//! every call, a hard timeout, and "no answer" kept apart from an answer.
//! [`send`] is the one request path (the Raft network uses it too);
//! [`MemberClient`] carries forwarded writes, joins and the admin API's
//! probes of other members.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cluster::{ClusterError, ForwardedWrite, WriteOutcome, WRITE_PATH};
use crate::codec;

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
        .header(crate::cluster::FORWARDED_HEADER, "1")
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

/// A pooled HTTP client that authenticates as a cluster member (cheap to
/// clone).
#[derive(Clone)]
pub(crate) struct MemberClient {
    http: Client<HttpConnector, Full<Bytes>>,
    token: String,
}

impl MemberClient {
    pub(crate) fn new(token: String) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let http = Client::builder(TokioExecutor::new()).build(connector);
        MemberClient { http, token }
    }

    /// One exchange: `method` on `base+path` with the token; the answer's
    /// status and body, or `Unreachable` when no answer came in `timeout`.
    pub(crate) async fn exchange(
        &self,
        method: http::Method,
        base: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(http::StatusCode, Bytes), ClusterError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let request = Outgoing {
            method,
            url: &url,
            token: &self.token,
            content_type: "application/json",
            body,
        };
        send(&self.http, request, timeout)
            .await
            .map_err(|e| ClusterError::Unreachable {
                addr: url.clone(),
                reason: e.to_string(),
            })
    }

    /// Sends `write` to the leader at `leader` in one call of at most
    /// `timeout`; one outcome per command, in order, or the leader's error.
    pub(crate) async fn forward(
        &self,
        leader: &str,
        write: ForwardedWrite,
        timeout: Duration,
    ) -> Result<Vec<WriteOutcome>, ClusterError> {
        let body = codec::encode(&write).map_err(ClusterError::raft)?;
        let (status, bytes) = self
            .exchange(http::Method::POST, leader, WRITE_PATH, body, timeout)
            .await?;
        if !status.is_success() {
            return Err(ClusterError::Raft(format!(
                "{leader}{WRITE_PATH} answered {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )));
        }
        let answer: Result<Vec<WriteOutcome>, ClusterError> =
            codec::decode(&bytes).map_err(ClusterError::raft)?;
        answer
    }
}
