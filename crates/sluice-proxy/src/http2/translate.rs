//! An HTTP/2 stream's request as the HTTP/1.1 side takes it, and the
//! answer back as HTTP/2 allows it.
//!
//! The request: `:authority` stays in the URI, where `forward.rs` makes it
//! the upstream `Host`; the `Cookie` fields HTTP/2 may split are joined
//! into one (RFC 9113 §8.2.3); the connection-specific headers HTTP/2
//! forbids never arrive (hyper's server refuses such a stream), and `TE:
//! trailers` goes with the hop-by-hop headers; a body without
//! `Content-Length` goes chunked upstream (`upstream::exchange`); trailers
//! are dropped there.
//!
//! The answer: no connection-specific header (RFC 9113 §8.2.2), sluice's
//! own `Connection: close` included; the stream ends, not the connection.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use crate::http1::RequestBody;

/// Headers an HTTP/2 message never carries (RFC 9113 §8.2.2).
static CONNECTION_SPECIFIC: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];

/// A stream's request for the request path.
pub(crate) fn request(req: Request<Incoming>) -> Request<RequestBody> {
    let (mut parts, body) = req.into_parts();
    join_cookies(&mut parts.headers);
    Request::from_parts(parts, RequestBody::http2(body))
}

/// An answer for an HTTP/2 stream.
pub(crate) fn response<B>(mut resp: Response<B>) -> Response<B> {
    strip_connection_specific(resp.headers_mut());
    resp
}

/// RFC 9113 §8.2.3: the `Cookie` fields of an HTTP/2 request become one,
/// joined with `; `, before it goes to HTTP/1.1.
fn join_cookies(h: &mut HeaderMap) {
    let mut cookies = h.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (cookies.next(), cookies.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for c in h.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(c.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(header::COOKIE, v);
    }
}

fn strip_connection_specific(h: &mut HeaderMap) {
    for name in &CONNECTION_SPECIFIC {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{StatusCode, Version};

    use super::*;
    use crate::error::{DrainCause, ForwardError};
    use crate::forward::{error_response, upstream_request};

    #[test]
    fn split_cookies_go_upstream_as_one() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        assert_eq!(h[header::ACCEPT], "*/*");
        // One cookie field stays as it is.
        let mut one = HeaderMap::new();
        one.insert(header::COOKIE, HeaderValue::from_static("a=1;b=2"));
        join_cookies(&mut one);
        assert_eq!(one[header::COOKIE], "a=1;b=2");
    }

    #[test]
    fn the_authority_becomes_host_and_te_goes() {
        let req = Request::builder()
            .version(Version::HTTP_2)
            .uri("http://shop.example:8080/cart?x=1")
            .header(header::HOST, "other.example")
            .header(header::TE, "trailers")
            .header("x-kept", "yes")
            .body(RequestBody::empty())
            .unwrap();
        let up = upstream_request(req, "10.0.0.1:80", false);
        assert_eq!(up.headers()[header::HOST], "shop.example:8080");
        assert_eq!(up.headers().get_all(header::HOST).iter().count(), 1);
        assert!(!up.headers().contains_key(header::TE));
        assert_eq!(up.headers()["x-kept"], "yes");
        assert_eq!(up.uri().path_and_query().unwrap(), "/cart?x=1");
        // Without :authority or Host, the backend's address names it.
        let bare = Request::builder()
            .version(Version::HTTP_2)
            .uri("/")
            .body(RequestBody::empty())
            .unwrap();
        let up = upstream_request(bare, "10.0.0.1:80", false);
        assert_eq!(up.headers()[header::HOST], "10.0.0.1:80");
    }

    #[test]
    fn answers_lose_connection_specific_headers() {
        let resp = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONNECTION, "keep-alive, x-hop")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header(header::TRANSFER_ENCODING, "chunked")
            .header(header::UPGRADE, "h2c")
            .header(header::CONTENT_LENGTH, "2")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Bytes::from_static(b"ok"))
            .unwrap();
        let resp = response(resp);
        let mut names: Vec<_> = resp.headers().keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "content-type"]);
    }

    #[test]
    fn sluice_s_own_answers_do_not_say_connection_close_on_http2() {
        let err = ForwardError::DrainDeadline {
            backend: "10.0.0.1:80".into(),
            cause: DrainCause::Backend,
        };
        let resp = response(error_response(&err, true));
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!resp.headers().contains_key(header::CONNECTION));
        assert_eq!(resp.headers()["x-sluice-error"], err.code());
    }
}
