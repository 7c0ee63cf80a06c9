//! Forwarding one HTTP request: checking what a proxy must refuse (RFC 9112
//! §3.2: one `Host`; no `CONNECT`; no transfer coding sluice cannot pass
//! on), rewriting it for the backend (the header rules themselves are in
//! `header_rules.rs`), and the responses sluice hands the client: a
//! backend's, its `101`, or its own error answers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Version};
use tokio_util::sync::CancellationToken;

use crate::backend::WorkGuard;
use crate::error::{DrainCause, ForwardError};
use crate::header_rules::{strip_hop_by_hop, MAX_TARGET};
use crate::http1::RequestBody;
use crate::proxy_body::ProxyBody;
use crate::upstream::UpstreamBody;

/// sluice's own answer for a failed request: short plain text naming the
/// cause, `Via` naming sluice, and `Connection: close` when asked.
pub(crate) fn error_response(err: &ForwardError, close: bool) -> Response<ProxyBody> {
    let status = err.status();
    let body = match err {
        ForwardError::DrainDeadline { backend, cause } => format!(
            "{} {}: {} and its connection-draining deadline passed before backend {backend} answered\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            match cause {
                DrainCause::Backend => "the backend was removed",
                DrainCause::Listener => "this listener was removed",
                DrainCause::Node => "this sluice node is draining itself (stopping or taken out of service)",
            }
        ),
        other => format!(
            "{} {}: {other}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    };
    let mut resp = Response::new(ProxyBody::text(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::VIA, HeaderValue::from_static("1.1 sluice"));
    h.insert(
        HeaderName::from_static("x-sluice-error"),
        HeaderValue::from_static(err.code()),
    );
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Whether the request asks for a WebSocket upgrade.
pub(crate) fn is_websocket_upgrade(req: &Request<RequestBody>) -> bool {
    let h = req.headers();
    header_has_token(h, &header::CONNECTION, "upgrade")
        && h.get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
            })
}

fn header_has_token(h: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// What sluice refuses before a request reaches any backend: `CONNECT`
/// (sluice is no forward proxy), a target over [`MAX_TARGET`], more than
/// one `Host` or none on HTTP/1.1 (RFC 9112 §3.2), and a transfer coding
/// other than `chunked` (nginx answers `501` too).
pub(crate) fn check_request(req: &Request<RequestBody>) -> Result<(), ForwardError> {
    if req.method() == Method::CONNECT {
        return Err(ForwardError::MethodNotAllowed { method: "CONNECT" });
    }
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET {
        return Err(ForwardError::UriTooLong {
            len: target,
            max: MAX_TARGET,
        });
    }
    let h = req.headers();
    let mut hosts = h.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => {
            return Err(ForwardError::BadRequest {
                reason: "more than one Host header",
            })
        }
        (None, _) if req.version() == Version::HTTP_11 => {
            return Err(ForwardError::BadRequest {
                reason: "an HTTP/1.1 request without Host",
            })
        }
        _ => {}
    }
    if let Some(te) = h.get(header::TRANSFER_ENCODING) {
        let only_chunked = h.get_all(header::TRANSFER_ENCODING).iter().all(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .all(|c| c.is_empty() || c.eq_ignore_ascii_case(b"chunked"))
        });
        if !only_chunked {
            return Err(ForwardError::UnsupportedTransferCoding {
                coding: String::from_utf8_lossy(te.as_bytes()).into_owned(),
            });
        }
    }
    Ok(())
}

/// Rewrites a client request's headers for the backend at `backend_addr`
/// (the request line, in origin form and HTTP/1.1, and the `X-Forwarded-*`
/// headers are written with the head: `upstream::exchange`,
/// `header_rules::write_forwarded_headers`). `Host` is the target's authority when the
/// client sent the absolute form (RFC 9112 §3.2.2), the backend's address
/// for an HTTP/1.0 request without one, else the client's. A WebSocket
/// upgrade keeps its extension offer: the relay passes frames as they are,
/// so extensions are agreed between the client and the backend.
pub(crate) fn upstream_request(
    req: Request<RequestBody>,
    backend_addr: &str,
    websocket: bool,
) -> Request<RequestBody> {
    let (mut parts, body) = req.into_parts();
    let h = &mut parts.headers;
    if let Some(authority) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            h.insert(header::HOST, v);
        }
    } else if !h.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(backend_addr) {
            h.insert(header::HOST, v);
        }
    }
    strip_hop_by_hop(h);
    if websocket {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    Request::from_parts(parts, body)
}

/// A backend's response for the client (the upstream side left out its
/// hop-by-hop headers as it parsed them); the guard counts the request in
/// flight until its body ends, the token cuts the body at a drain deadline.
pub(crate) fn downstream_response(
    resp: Response<UpstreamBody>,
    work: Option<(WorkGuard, CancellationToken)>,
) -> Response<ProxyBody> {
    resp.map(|inner| ProxyBody::upstream(inner, work))
}

/// A backend's `101 Switching Protocols` for the client; the tunnel takes
/// over the connection, there is no body.
pub(crate) fn switching_response(resp: Response<()>) -> Response<ProxyBody> {
    let (mut parts, ()) = resp.into_parts();
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    Response::from_parts(parts, ProxyBody::empty())
}
