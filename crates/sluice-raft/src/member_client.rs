//! [`MemberClient`]: JSON and forwarded writes to another member's admin
//! port (through [`crate::transport::send`]), for forwarded writes, joins
//! and the admin API's probes of other members.

use std::time::Duration;

use bytes::Bytes;

use crate::codec;
use crate::error::ClusterError;
use crate::tls::MemberTls;
use crate::transport::{Outgoing, Transport};
use crate::wire::{ForwardedWrite, WriteOutcome, WRITE_PATH};

/// A pooled HTTP(S) client that authenticates as a cluster member: the
/// token, and with TLS this node's certificate (cheap to clone).
#[derive(Clone)]
pub(crate) struct MemberClient {
    http: Transport,
    token: String,
}

impl MemberClient {
    pub(crate) fn new(token: String, tls: Option<&MemberTls>) -> Result<Self, ClusterError> {
        let http = Transport::new(tls, Duration::from_secs(2)).map_err(|e| ClusterError::Tls {
            reason: e.to_string(),
        })?;
        Ok(MemberClient { http, token })
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
        self.http
            .send(request, timeout)
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
        let body = codec::encode(&write).map_err(|e| ClusterError::Encode {
            reason: e.to_string(),
        })?;
        let url = format!("{}{WRITE_PATH}", leader.trim_end_matches('/'));
        let (status, bytes) = self
            .exchange(http::Method::POST, leader, WRITE_PATH, body, timeout)
            .await?;
        if !status.is_success() {
            return Err(ClusterError::BadAnswer {
                addr: url,
                answer: format!("{status}: {}", String::from_utf8_lossy(&bytes).trim()),
            });
        }
        let answer: Result<Vec<WriteOutcome>, ClusterError> =
            codec::decode(&bytes).map_err(|e| ClusterError::BadAnswer {
                addr: url,
                answer: format!("an undecodable body: {e}"),
            })?;
        answer
    }
}
