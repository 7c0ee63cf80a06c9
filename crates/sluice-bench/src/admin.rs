//! A keep-alive client of the admin API (JSON over HTTP, bearer token on
//! every call), used by every measurement loop instead of the CLI so that a
//! figure is the cluster's time, not a process start's.
//!
//! Every call is bounded ([`CALL_TIMEOUT`]); proxies from the environment
//! are ignored (everything the benchmark talks to is on loopback).

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Upper bound of one admin call (a write waits up to 2 s for the other
/// nodes, so this leaves ample room).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Admin API client shared by all tasks (cheap to clone; one connection
/// pool).
#[derive(Clone)]
pub struct Admin {
    http: reqwest::Client,
    token: String,
}

/// The raw outcome of one call: status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as lossy UTF-8, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

impl Admin {
    /// A client keeping up to `idle_per_host` idle connections per node.
    pub fn new(token: &str, idle_per_host: usize) -> anyhow::Result<Admin> {
        // reqwest takes the process's rustls provider (ring).
        sluice_testkit::member_tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(idle_per_host)
            .timeout(CALL_TIMEOUT)
            .build()
            .context("building the admin HTTP client")?;
        Ok(Admin {
            http,
            token: token.to_string(),
        })
    }

    /// One call; any HTTP status is an `Ok` answer, only transport failures
    /// (refused, reset, timed out) are errors.
    pub async fn call(
        &self,
        method: Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{base}{path}");
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        Ok(Answer { status, body })
    }

    /// One call that must succeed (2xx); returns the JSON answer.
    pub async fn json(
        &self,
        method: Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let answer = self.call(method.clone(), base, path, body).await?;
        if !answer.status.is_success() {
            bail!(
                "{method} {base}{path} answered {}: {}",
                answer.status,
                answer.text()
            );
        }
        if answer.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body)
            .with_context(|| format!("{method} {base}{path}: answer is not JSON"))
    }

    /// `GET` that must succeed.
    pub async fn get(&self, base: &str, path: &str) -> anyhow::Result<Value> {
        self.json(Method::GET, base, path, None).await
    }

    /// `POST` that must succeed.
    pub async fn post(&self, base: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.json(Method::POST, base, path, Some(body)).await
    }

    /// `DELETE` that must succeed.
    pub async fn delete(&self, base: &str, path: &str) -> anyhow::Result<Value> {
        self.json(Method::DELETE, base, path, None).await
    }
}
