//! Forwarding one HTTP request: rewriting it for the backend (hop-by-hop
//! headers per RFC 9110 §7.6.1, `X-Forwarded-*`), racing the answer against
//! the request timeout (R9) and the drain deadline (R3), and the bodies and
//! error answers sluice sends itself.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::backend::WorkGuard;
use crate::connection::ConnCtx;
use crate::error::ForwardError;

/// Every response body sluice sends a client.
pub(crate) enum ProxyBody {
    /// A backend's body, streamed; the guard counts the request in flight
    /// until the body ends.
    Upstream {
        inner: Incoming,
        work: Option<(WorkGuard, Arc<ConnCtx>)>,
    },
    /// A body sluice made itself.
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub fn text(s: String) -> Self {
        ProxyBody::Full(Some(Bytes::from(s)))
    }

    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream { inner, work } => {
                let polled = Pin::new(inner).poll_frame(cx);
                if let Poll::Ready(None | Some(Err(_))) = &polled {
                    if let Some((_, ctx)) = work.take() {
                        ctx.streaming.store(0, Ordering::Release);
                    }
                }
                polled
            }
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
            ProxyBody::Full(d) => d.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
            ProxyBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// sluice's own answer for a failed request: short plain text naming the
/// cause, `Via` naming sluice, and `Connection: close` when asked.
pub(crate) fn error_response(err: &ForwardError, close: bool) -> Response<ProxyBody> {
    let status = err.status();
    let body = match err {
        ForwardError::DrainDeadline { backend } => format!(
            "{} {}: backend {backend} was removed and its connection-draining deadline passed before it answered\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
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
pub(crate) fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
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

/// Headers that describe one hop and never travel further (RFC 9110 §7.6.1),
/// beside those the `Connection` header names.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // Names listed in Connection are hop-by-hop too.
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if !(keep_upgrade && name == header::UPGRADE) {
            h.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        h.remove(name);
    }
    if !keep_upgrade {
        h.remove(header::UPGRADE);
    }
}

/// Rewrites a client request for `base_uri` (the backend).
pub(crate) fn upstream_request(
    req: Request<Incoming>,
    base_uri: &str,
    client_ip: IpAddr,
    websocket: bool,
) -> Result<Request<Incoming>, ForwardError> {
    let (mut parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut uri = String::with_capacity(base_uri.len() + pq.len());
    uri.push_str(base_uri);
    uri.push_str(pq);
    parts.uri = uri.parse::<Uri>().map_err(|_| ForwardError::BadRequest {
        reason: "request target cannot be forwarded",
    })?;
    parts.version = Version::HTTP_11;
    let h = &mut parts.headers;
    strip_hop_by_hop(h, false);
    if websocket {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        // Frames are relayed one by one: no extension may be negotiated
        // that sluice would have to understand (permessage-deflate).
        h.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    append_forwarded(h, client_ip);
    Ok(Request::from_parts(parts, body))
}

fn append_forwarded(h: &mut HeaderMap, client_ip: IpAddr) {
    static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    static XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    let ip = client_ip.to_string();
    let xff = match h.get(&XFF).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert(XFF.clone(), v);
    }
    h.insert(XFP.clone(), HeaderValue::from_static("http"));
    if let Some(host) = h.get(header::HOST).cloned() {
        h.insert(XFH.clone(), host);
    }
}

/// Rewrites a backend's response for the client.
pub(crate) fn downstream_response(
    resp: Response<Incoming>,
    work: Option<(WorkGuard, Arc<ConnCtx>)>,
) -> Response<ProxyBody> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, switching);
    if switching {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let body = if switching {
        // The tunnel takes over the connection; there is no body.
        ProxyBody::empty()
    } else {
        ProxyBody::Upstream { inner: body, work }
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_with_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-trace"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.1.1.1"));
        h.insert(header::HOST, HeaderValue::from_static("shop.example"));
        append_forwarded(&mut h, IpAddr::from([127, 0, 0, 9]));
        assert_eq!(h["x-forwarded-for"], "10.1.1.1, 127.0.0.9");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(h["x-forwarded-proto"], "http");
    }
}
