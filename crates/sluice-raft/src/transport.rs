//! The one request path from a member to another member's admin port: the
//! cluster token as a bearer token, the one-hop header, a hard timeout, and
//! "no answer" kept apart from an answer. [`crate::network`] (Raft RPCs) and
//! [`crate::member_client`] (forwarded writes, joins, probes) both send
//! through a [`Transport`].
//!
//! With `[admin.tls]` every URL is `https://`: the peer is verified against
//! the members' CA with the host of its URL, and this node presents its own
//! certificate. Without it every URL is `http://`. A URL of the other
//! scheme is refused before anything is sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::error_chain;
use crate::tls::MemberTls;
use crate::wire::FORWARDED_HEADER;

/// A pooled HTTP(S) client to other members (cheap to clone).
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `https` with TLS, else `http`: the only scheme sent to.
    scheme: &'static str,
}

// === impl Transport ===

impl Transport {
    /// A client that connects within `connect_timeout`; over TLS with
    /// `tls`, in plain HTTP without.
    pub(crate) fn new(
        tls: Option<&MemberTls>,
        connect_timeout: Duration,
    ) -> Result<Transport, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let (connector, scheme) = match tls {
            Some(tls) => (
                HttpsConnectorBuilder::new()
                    .with_tls_config(tls.client_config())
                    .https_only()
                    .enable_http1()
                    .wrap_connector(http),
                "https",
            ),
            // `send` never passes an https URL to this one: its TLS
            // config (no trust root) is never used.
            None => {
                let unused = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
                (HttpsConnector::from((http, unused)), "http")
            }
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Transport { client, scheme })
    }

    /// Sends `request`; the answer's status and whole body, or why none
    /// came within `timeout` (connecting and the TLS handshake included).
    pub(crate) async fn send(
        &self,
        request: Outgoing<'_>,
        timeout: Duration,
    ) -> Result<(http::StatusCode, Bytes), SendError> {
        let scheme = request.url.split_once("://").map(|(s, _)| s);
        if scheme != Some(self.scheme) {
            return Err(SendError::Invalid(if self.scheme == "https" {
                format!(
                    "{} is not an https:// URL: this node's cluster traffic is TLS ([admin.tls])",
                    request.url
                )
            } else {
                format!(
                    "{} is not an http:// URL: this node has no [admin.tls] to speak TLS with",
                    request.url
                )
            }));
        }
        send(&self.client, request, timeout).await
    }
}

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
async fn send(
    client: &Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
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
            .map_err(|e| SendError::NoAnswer(error_chain(&e)))?;
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
