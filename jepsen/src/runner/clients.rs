//! The clients' side of the admin API: one request to one node, and what
//! its answer means in the history's terms ([`Outcome`], [`Observed`]).
//!
//! Clients reach each node on its published admin port on 127.0.0.1
//! (stable across restarts, unlike the container's address). A request
//! that never left (connection refused, no route, connect timeout) did not
//! happen; one that left and got no answer, or a 5xx, may have.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sluice_jepsen::history::{NodeId, Observed, Outcome};

/// Connect timeout of every request: a node that does not accept within
/// it is down (the request never left).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Timeout of a client write.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of a client read.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The admin API of the three nodes.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    token: String,
    ports: [u16; 3],
}

/// What one request gave.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An answer, with its JSON body (`Null` if it had none or not JSON).
    Answer {
        status: StatusCode,
        headers: reqwest::header::HeaderMap,
        body: Value,
    },
    /// It never reached the node.
    NotSent(String),
    /// It was sent; no (complete) answer came.
    Unknown(String),
}

/// Installs ring as the process's rustls provider, which reqwest takes
/// when the workspace builds it with TLS (a no-op when one is installed).
pub fn install_crypto_provider() {
    let _ =
        rustls::crypto::CryptoProvider::install_default(rustls::crypto::ring::default_provider());
}

impl Api {
    pub fn new(token: &str, ports: [u16; 3]) -> anyhow::Result<Api> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Api {
            http,
            token: token.to_string(),
            ports,
        })
    }

    /// Node `n`'s admin API base URL.
    pub fn url(&self, n: NodeId) -> String {
        let i = usize::try_from(n.saturating_sub(1)).unwrap_or(0);
        format!("http://127.0.0.1:{}", self.ports[i.min(2)])
    }

    /// Sends one request to node `n`.
    pub async fn call(
        &self,
        n: NodeId,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url(n)))
            .bearer_auth(&self.token)
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return classify(&e),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        match resp.bytes().await {
            Ok(bytes) => Reply::Answer {
                status,
                headers,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            },
            Err(e) => Reply::Unknown(format!(
                "{status}, then the body failed: {}",
                root_cause(&e)
            )),
        }
    }

    pub async fn get(&self, n: NodeId, path: &str, timeout: Duration) -> Reply {
        self.call(n, Method::GET, path, None, timeout).await
    }

    /// A request that must succeed (setup, healing): the 2xx body, or why not.
    pub async fn must(
        &self,
        n: NodeId,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        match self.call(n, method.clone(), path, body, timeout).await {
            Reply::Answer { status, body, .. } if status.is_success() => Ok(body),
            Reply::Answer { status, body, .. } => {
                anyhow::bail!("{method} {path} on node {n}: {status} {body}")
            }
            Reply::NotSent(e) | Reply::Unknown(e) => {
                anyhow::bail!("{method} {path} on node {n}: {e}")
            }
        }
    }
}

fn classify(e: &reqwest::Error) -> Reply {
    if e.is_connect() {
        Reply::NotSent(format!("connect: {}", root_cause(e)))
    } else if e.is_timeout() {
        Reply::Unknown("timeout".into())
    } else {
        Reply::Unknown(root_cause(e))
    }
}

/// The innermost cause of `e` ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(c) = cur.source() {
        cur = c;
    }
    cur.to_string()
}

/// The error code of an API error body (`{"error": {"code": ..}}`).
pub fn error_code(body: &Value) -> Option<&str> {
    body.get("error")?.get("code")?.as_str()
}

/// A header's value as a number.
pub fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// What a `BackendView` answer says about its backend.
pub fn observed(view: &Value) -> Result<Observed, String> {
    let state = view.get("state").and_then(Value::as_str).unwrap_or("");
    match state {
        "active" => {
            let weight = view
                .get("weight")
                .and_then(Value::as_u64)
                .and_then(|w| u8::try_from(w).ok())
                .ok_or_else(|| format!("active backend without a weight: {view}"))?;
            Ok(Observed::Active { weight })
        }
        "draining" => Ok(Observed::Draining),
        "removed" => Ok(Observed::Absent),
        other => Err(format!("unexpected backend state {other:?}")),
    }
}

/// The outcome of a register or set operation, by the rules of the
/// history: 2xx → ok (what the answer shows), `404 backend_not_found` →
/// ok absent, `409 backend_draining` → ok refused-draining, other 4xx →
/// fail, 5xx / no answer → info, never sent → fail.
pub fn outcome(reply: &Reply) -> Outcome {
    match reply {
        Reply::NotSent(e) => Outcome::Fail { reason: e.clone() },
        Reply::Unknown(e) => Outcome::Info { reason: e.clone() },
        Reply::Answer { status, body, .. } => {
            let code = error_code(body).unwrap_or("").to_string();
            if status.is_success() {
                match observed(body) {
                    Ok(value) => Outcome::Ok { value },
                    Err(e) => Outcome::Info { reason: e },
                }
            } else if *status == StatusCode::NOT_FOUND && code == "backend_not_found" {
                Outcome::Ok {
                    value: Observed::Absent,
                }
            } else if *status == StatusCode::CONFLICT && code == "backend_draining" {
                Outcome::Ok {
                    value: Observed::RefusedDraining,
                }
            } else if status.is_client_error() {
                Outcome::Fail {
                    reason: format!("{} {code}", status.as_u16()),
                }
            } else {
                Outcome::Info {
                    reason: format!("{} {code}", status.as_u16()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: Value) -> Reply {
        Reply::Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            headers: Default::default(),
            body,
        }
    }

    #[test]
    fn answers_map_to_outcomes() {
        let ok = outcome(&answer(200, json!({"state": "active", "weight": 7})));
        assert_eq!(
            ok,
            Outcome::Ok {
                value: Observed::Active { weight: 7 }
            }
        );
        let draining = outcome(&answer(202, json!({"state": "draining", "weight": 7})));
        assert_eq!(
            draining,
            Outcome::Ok {
                value: Observed::Draining
            }
        );
        let removed = outcome(&answer(200, json!({"state": "removed", "weight": 7})));
        assert_eq!(
            removed,
            Outcome::Ok {
                value: Observed::Absent
            }
        );
        let absent = outcome(&answer(
            404,
            json!({"error": {"code": "backend_not_found"}}),
        ));
        assert_eq!(
            absent,
            Outcome::Ok {
                value: Observed::Absent
            }
        );
        let refused = outcome(&answer(409, json!({"error": {"code": "backend_draining"}})));
        assert_eq!(
            refused,
            Outcome::Ok {
                value: Observed::RefusedDraining
            }
        );
        assert!(matches!(
            outcome(&answer(404, json!({"error": {"code": "group_not_found"}}))),
            Outcome::Fail { .. }
        ));
        assert!(matches!(
            outcome(&answer(503, json!({"error": {"code": "no_leader"}}))),
            Outcome::Info { .. }
        ));
        assert!(matches!(
            outcome(&Reply::NotSent("refused".into())),
            Outcome::Fail { .. }
        ));
        assert!(matches!(
            outcome(&Reply::Unknown("timeout".into())),
            Outcome::Info { .. }
        ));
    }
}
