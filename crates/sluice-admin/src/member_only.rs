//! With TLS on the admin port, the routes only members call answer only a
//! connection that presented a certificate the members' CA verified: the
//! Raft RPCs, forwarded writes, and any request that says it comes from a
//! member (the one-hop header, [`sluice_raft::FORWARDED_HEADER`]). Anything
//! else gets `403 member_certificate_required`; the bearer token is checked
//! after this, as before. The TLS server (`serve.rs`) tells each request
//! what its connection presented with a [`PeerCertificate`] extension.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_raft::wire::paths;
use sluice_raft::{FORWARDED_HEADER, WRITE_PATH};

use crate::ApiError;

/// What the request's connection presented, set per connection by the
/// TLS admin server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCertificate {
    /// A client certificate the members' CA verified (the handshake fails
    /// on one it does not).
    pub verified: bool,
}

/// Whether only members call this request.
fn member_only(req: &Request) -> bool {
    let path = req.uri().path();
    [paths::APPEND, paths::VOTE, paths::SNAPSHOT, WRITE_PATH].contains(&path)
        || req.headers().contains_key(FORWARDED_HEADER)
}

/// The middleware: refuses a member-only request whose connection presented
/// no verified certificate.
pub async fn require_member_certificate(req: Request, next: Next) -> Response {
    let verified = req
        .extensions()
        .get::<PeerCertificate>()
        .is_some_and(|c| c.verified);
    if member_only(&req) && !verified {
        return ApiError {
            status: StatusCode::FORBIDDEN,
            code: "member_certificate_required".into(),
            message: format!(
                "{} is for cluster members: the connection must present a certificate signed by the members' CA",
                req.uri().path()
            ),
            field: None,
        }
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post};
    use axum::Router;
    use tower_service::Service;

    fn app() -> Router {
        Router::new()
            .route(paths::APPEND, post(|| async { "raft" }))
            .route("/v1/groups", get(|| async { "groups" }))
            .layer(axum::middleware::from_fn(require_member_certificate))
    }

    async fn status(path: &str, forwarded: bool, peer: Option<bool>) -> (u16, String) {
        let method = if path.starts_with("/raft") {
            "POST"
        } else {
            "GET"
        };
        let mut req = Request::builder().method(method).uri(path);
        if forwarded {
            req = req.header(FORWARDED_HEADER, "1");
        }
        let mut req = req.body(Body::empty()).unwrap();
        if let Some(verified) = peer {
            req.extensions_mut().insert(PeerCertificate { verified });
        }
        let resp = app().call(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn member_routes_need_a_verified_certificate() {
        let (code, body) = status(paths::APPEND, false, Some(false)).await;
        assert_eq!(code, 403);
        assert!(
            body.contains(r#""code":"member_certificate_required""#),
            "{body}"
        );
        assert_eq!(status(paths::APPEND, false, None).await.0, 403);
        assert_eq!(status(paths::APPEND, false, Some(true)).await.0, 200);
        // An operator's request passes without one; one that says it comes
        // from a member does not.
        assert_eq!(status("/v1/groups", false, Some(false)).await.0, 200);
        assert_eq!(status("/v1/groups", true, Some(false)).await.0, 403);
        assert_eq!(status("/v1/groups", true, Some(true)).await.0, 200);
    }
}
