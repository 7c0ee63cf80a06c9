//! The audit line: one `sluice::audit` event at INFO for every admin write
//! (a request with a method other than GET and HEAD to a write route),
//! whatever its outcome: who sent it, the method, the path, the command,
//! the status and error code it got, and the Raft log index it committed
//! at when it did.
//!
//! Who: `token:<first 8 hex digits of the SHA-256 of the token>` for the
//! operators' token (never the token itself), `cluster` for a request a
//! member forwarded (the one-hop header, or a forwarded write), `none` when
//! the token was missing or wrong (the request was refused).
//!
//! How: a middleware around the whole admin router. The command is named
//! from the method and the route (`command_of`); the error code is read
//! from the answer's JSON body, which is small, and only on an error.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sluice_raft::{FORWARDED_HEADER, WRITE_PATH};
use tracing::info;

use crate::context::AdminContext;

/// The largest error body read for its code.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The middleware: passes the request on, then logs the audit line of a
/// write.
pub(crate) async fn audit_writes(
    State(ctx): State<Arc<AdminContext>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let Some(command) = command_of(&method, req.uri().path()) else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_owned();
    let forwarded = path == WRITE_PATH || req.headers().contains_key(FORWARDED_HEADER);
    let who = match sluice_raft::bearer::check_bearer(req.headers(), &ctx.token) {
        Err(_) => "none".to_owned(),
        Ok(()) if forwarded => "cluster".to_owned(),
        Ok(()) => token_id(&ctx.token),
    };
    let resp = next.run(req).await;
    let status = resp.status();
    let index = resp
        .headers()
        .get("x-sluice-log-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (resp, error) = if status.is_client_error() || status.is_server_error() {
        error_code(resp).await
    } else {
        (resp, None)
    };
    info!(
        target: "sluice::audit",
        who,
        method = %method,
        path,
        command,
        status = status.as_u16(),
        error,
        index,
        "admin write"
    );
    resp
}

/// `token:` and the first 8 hex digits of the token's SHA-256.
pub(crate) fn token_id(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("token:{hex}")
}

/// The error code of an API error answer (`{"error":{"code":…}}`), and
/// the answer rebuilt with the body read.
async fn error_code(resp: Response) -> (Response, Option<String>) {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_LIMIT).await else {
        let mut failed = Response::new(Body::empty());
        *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return (failed, None);
    };
    let code = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    (Response::from_parts(parts, Body::from(bytes)), code)
}

/// The write command a request asks for; `None` for reads, the Raft
/// RPCs other than forwarded writes, and routes that do not exist.
pub(crate) fn command_of(method: &Method, path: &str) -> Option<&'static str> {
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    if path == WRITE_PATH {
        return Some("forwarded_write");
    }
    let segments: Vec<&str> = path
        .strip_prefix("/v1/")?
        .trim_end_matches('/')
        .split('/')
        .collect();
    let m = method.as_str();
    Some(match (m, segments.as_slice()) {
        ("POST", ["groups"]) => "create_group",
        ("PATCH", ["groups", _]) => "update_group",
        ("DELETE", ["groups", _]) => "delete_group",
        ("POST", ["groups", _, "backends"]) => "add_backend",
        ("PATCH", ["groups", _, "backends", _]) => "set_backend",
        ("DELETE", ["groups", _, "backends", _]) => "remove_backend",
        ("POST", ["listeners"]) => "add_listener",
        ("PATCH", ["listeners", _]) => "update_listener",
        ("DELETE", ["listeners", _]) => "remove_listener",
        ("POST", ["certs"]) => "add_cert",
        ("PUT", ["certs", _]) => "update_cert",
        ("DELETE", ["certs", _]) => "remove_cert",
        ("POST", ["nodes", _, "drain"]) => "drain_node",
        ("POST", ["nodes", _, "undrain"]) => "undrain_node",
        ("POST", ["cluster", "init"]) => "cluster_init",
        ("POST", ["cluster", "join"]) => "cluster_join",
        ("DELETE", ["cluster", "nodes", _]) => "remove_node",
        ("PUT", ["debug", "faults"]) => "set_faults",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_named_and_reads_are_not() {
        let c = |m: Method, p: &str| command_of(&m, p);
        assert_eq!(c(Method::POST, "/v1/groups"), Some("create_group"));
        assert_eq!(
            c(Method::DELETE, "/v1/groups/web/backends/10.0.0.1:80"),
            Some("remove_backend")
        );
        assert_eq!(
            c(Method::PATCH, "/v1/listeners/80"),
            Some("update_listener")
        );
        assert_eq!(c(Method::PUT, "/v1/certs/www"), Some("update_cert"));
        assert_eq!(c(Method::POST, "/v1/nodes/2/drain"), Some("drain_node"));
        assert_eq!(
            c(Method::DELETE, "/v1/cluster/nodes/3"),
            Some("remove_node")
        );
        assert_eq!(c(Method::POST, "/raft/write"), Some("forwarded_write"));
        assert_eq!(c(Method::GET, "/v1/groups"), None);
        assert_eq!(c(Method::POST, "/raft/append"), None);
        assert_eq!(c(Method::POST, "/v1/nothing"), None);
    }

    #[test]
    fn a_token_is_named_by_a_prefix_of_its_hash() {
        // SHA-256("abc") = ba7816bf…
        assert_eq!(token_id("abc"), "token:ba7816bf");
    }
}
