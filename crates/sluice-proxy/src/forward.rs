//! Forwarding one HTTP request: checking what a proxy must refuse (RFC 9112
//! §3.2: one `Host`; no `CONNECT`; no transfer coding sluice cannot pass
//! on), rewriting it for the backend (hop-by-hop headers per RFC 9110
//! §7.6.1, `X-Forwarded-*`), and the bodies and error answers sluice sends
//! itself.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Version};
use hyper::body::{Body, Frame, SizeHint};

use crate::backend::WorkGuard;
use crate::connection::ConnCtx;
use crate::error::ForwardError;
use crate::http1::RequestBody;
use crate::upstream::{UpstreamBody, UpstreamError};

/// Every response body sluice sends a client.
pub(crate) enum ProxyBody {
    /// A backend's body, streamed; the guard counts the request in flight
    /// until the body ends. A body that fails (the backend closed or
    /// stalled mid-body) ends the client's connection after what arrived.
    Upstream {
        inner: UpstreamBody,
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
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.get_mut() {
            ProxyBody::Upstream { inner, work } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                let ended = match &polled {
                    Poll::Ready(None | Some(Err(_))) => true,
                    Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
                    Poll::Pending => false,
                };
                if ended {
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

/// Headers that describe one hop and never travel further (RFC 9110 §7.6.1),
/// beside those the `Connection` header names.
pub(crate) static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// One token of a `Connection` header.
pub(crate) enum ConnectionToken {
    Close,
    KeepAlive,
    Upgrade,
    /// Another header's name: that header is hop-by-hop too.
    Listed(HeaderName),
}

/// The tokens of one `Connection` header value; empty tokens and ones that
/// are no header name are skipped.
pub(crate) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = ConnectionToken> + '_ {
    value.split(|b| *b == b',').filter_map(|t| {
        let t = t.trim_ascii();
        Some(if t.eq_ignore_ascii_case(b"close") {
            ConnectionToken::Close
        } else if t.eq_ignore_ascii_case(b"keep-alive") {
            ConnectionToken::KeepAlive
        } else if t.eq_ignore_ascii_case(b"upgrade") {
            ConnectionToken::Upgrade
        } else {
            ConnectionToken::Listed(HeaderName::from_bytes(t).ok()?)
        })
    })
}

/// Removes a request's hop-by-hop headers (the response side leaves them
/// out as it parses: `upstream::exchange`).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names finds which are here (most requests carry
    // none), so only those are hashed and removed.
    let mut present = [false; 6];
    let mut upgrade = false;
    for name in h.keys() {
        if *name == header::UPGRADE {
            upgrade = true;
        } else if let Some(i) = HOP_BY_HOP.iter().position(|hop| name == hop) {
            present[i] = true;
        }
    }
    if present[0] {
        let listed: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| connection_tokens(v.as_bytes()))
            .filter_map(|t| match t {
                ConnectionToken::Listed(name) => Some(name),
                _ => None,
            })
            .collect();
        for name in listed {
            // The option list never removes Host or the framing headers.
            if name != header::HOST && name != header::CONTENT_LENGTH {
                h.remove(name);
            }
        }
    }
    for (name, here) in HOP_BY_HOP.iter().zip(present) {
        if here {
            h.remove(name);
        }
    }
    if upgrade {
        h.remove(header::UPGRADE);
    }
}

/// Longest request target accepted (the request line's path and query);
/// longer ones get `414`. nginx's default request-line buffer is as long.
pub(crate) const MAX_TARGET: usize = 8 * 1024;

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
/// [`write_forwarded_headers`]). `Host` is the target's authority when the
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

/// Writes `h` as HTTP/1.1 header lines for the backend, with the
/// `X-Forwarded-*` headers: `For` extended by `client_ip` (every earlier
/// value kept, in order), `Proto` and `Host` set (the client's replaced).
/// Writing them here, not inserting them into the map, saves three map
/// insertions per request.
pub(crate) fn write_forwarded_headers(h: &HeaderMap, client_ip: &HeaderValue, out: &mut Vec<u8>) {
    static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    static XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    let mut xff_written = false;
    for (name, value) in h {
        if *name == XFP || *name == XFH {
            continue;
        }
        if *name == XFF {
            if !xff_written {
                out.extend_from_slice(b"x-forwarded-for: ");
                for (i, prev) in h.get_all(&XFF).iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(prev.as_bytes());
                }
                out.extend_from_slice(b", ");
                out.extend_from_slice(client_ip.as_bytes());
                out.extend_from_slice(b"\r\n");
                xff_written = true;
            }
            continue;
        }
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !xff_written {
        header_line(out, b"x-forwarded-for", client_ip.as_bytes());
    }
    header_line(out, b"x-forwarded-proto", b"http");
    if let Some(host) = h.get(header::HOST) {
        header_line(out, b"x-forwarded-host", host.as_bytes());
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A backend's response for the client (the upstream side left out its
/// hop-by-hop headers as it parsed them); the guard counts the request in
/// flight until its body ends.
pub(crate) fn downstream_response(
    resp: Response<UpstreamBody>,
    work: Option<(WorkGuard, Arc<ConnCtx>)>,
) -> Response<ProxyBody> {
    resp.map(|inner| ProxyBody::Upstream { inner, work })
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
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn forwarded_headers_extend_for_and_replace_proto_and_host() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.2.2.2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(header::HOST, HeaderValue::from_static("shop.example"));
        let mut out = Vec::new();
        write_forwarded_headers(&h, &HeaderValue::from_static("127.0.0.9"), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "x-forwarded-for: 10.1.1.1, 10.2.2.2, 127.0.0.9\r\nhost: shop.example\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: shop.example\r\n"
        );
        let mut out = Vec::new();
        write_forwarded_headers(
            &HeaderMap::new(),
            &HeaderValue::from_static("::1"),
            &mut out,
        );
        assert_eq!(out, b"x-forwarded-for: ::1\r\nx-forwarded-proto: http\r\n");
    }
}
