//! A response head for the client, and how its body goes out (RFC 9112 §6):
//! a known length as `Content-Length`, an unknown one chunked (HTTP/1.1)
//! or until the close (HTTP/1.0). Headers go out as the backend sent them:
//! its reason phrase, its `Content-Length` on `HEAD` and `304`, its
//! transfer codings besides chunked. `Date` is added when missing.

use std::cell::RefCell;
use std::time::UNIX_EPOCH;

use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::body::SizeHint;

use crate::header_rules::{connection_tokens, ConnectionToken};

/// How the body of a response is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyWrite {
    /// No body may follow (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, unknown length).
    UntilClose,
}

/// Writes the head of `resp` for a request `method`/`version` into `out`.
/// `keep_alive` comes in as what the request allows and goes out as what
/// the connection does after this response.
pub(crate) fn encode_head(
    resp: &http::response::Parts,
    hint: &SizeHint,
    method: &Method,
    version: Version,
    keep_alive: &mut bool,
    out: &mut Vec<u8>,
) -> BodyWrite {
    let status = resp.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match resp.extensions.get::<hyper::ext::ReasonPhrase>() {
        Some(reason) => out.extend_from_slice(reason.as_bytes()),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let h = &resp.headers;
    let codings = h.get(header::TRANSFER_ENCODING);
    let write = if no_body {
        BodyWrite::None
    } else if let (Some(n), None) = (hint.exact(), codings) {
        BodyWrite::Length(n)
    } else if version == Version::HTTP_11 {
        BodyWrite::Chunked
    } else {
        BodyWrite::UntilClose
    };
    if write == BodyWrite::UntilClose {
        *keep_alive = false;
    }
    let mut upgrade = false;
    let mut date = false;
    for (name, value) in h {
        if *name == header::CONNECTION {
            for token in connection_tokens(value.as_bytes()) {
                match token {
                    ConnectionToken::Close => *keep_alive = false,
                    ConnectionToken::Upgrade => upgrade = true,
                    _ => {}
                }
            }
            continue;
        }
        if *name == header::TRANSFER_ENCODING {
            continue;
        }
        if *name == header::CONTENT_LENGTH {
            // Kept where the answer has no body (HEAD, 304: the length it
            // would have), never on 1xx or 204 (RFC 9110 §8.6); replaced by
            // the body's own length otherwise.
            let keep = write == BodyWrite::None
                && !status.is_informational()
                && status != StatusCode::NO_CONTENT;
            if !keep {
                continue;
            }
        }
        if *name == header::DATE {
            date = true;
        }
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    match write {
        BodyWrite::Length(n) => {
            let mut digits = [0u8; 20];
            line(out, b"content-length", format_u64(n, &mut digits));
        }
        BodyWrite::Chunked => match codings {
            Some(c) if !ends_in_chunked(c) => {
                out.extend_from_slice(b"transfer-encoding: ");
                out.extend_from_slice(c.as_bytes());
                out.extend_from_slice(b", chunked\r\n");
            }
            Some(c) => line(out, b"transfer-encoding", c.as_bytes()),
            None => line(out, b"transfer-encoding", b"chunked"),
        },
        BodyWrite::None | BodyWrite::UntilClose => {}
    }
    if !date {
        with_date(|d| line(out, b"date", d));
    }
    if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
        line(out, b"connection", b"upgrade");
    } else if !*keep_alive {
        line(out, b"connection", b"close");
    } else if version == Version::HTTP_10 {
        line(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    write
}

fn ends_in_chunked(v: &HeaderValue) -> bool {
    v.as_bytes()
        .rsplit(|b| *b == b',')
        .next()
        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal, written at the end of `buf`.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

thread_local! {
    /// The `Date` value of the current second, formatted once per second
    /// per thread.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

fn with_date(f: impl FnOnce(&[u8])) {
    let now = sluice_clock::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        f(d.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn encode(
        resp: Response<()>,
        hint: SizeHint,
        method: Method,
        version: Version,
    ) -> (String, BodyWrite, bool) {
        let (parts, ()) = resp.into_parts();
        let mut out = Vec::new();
        let mut keep_alive = true;
        let write = encode_head(&parts, &hint, &method, version, &mut keep_alive, &mut out);
        (String::from_utf8(out).unwrap(), write, keep_alive)
    }

    fn with(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut r = Response::builder().status(status);
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn framing_follows_the_body_and_the_request() {
        let (h, w, ka) = encode(
            with(200, &[]),
            SizeHint::with_exact(5),
            Method::GET,
            Version::HTTP_11,
        );
        assert!(
            h.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: "),
            "{h}"
        );
        assert_eq!((w, ka), (BodyWrite::Length(5), true));
        let (h, w, _) = encode(
            with(200, &[]),
            SizeHint::default(),
            Method::GET,
            Version::HTTP_11,
        );
        assert!(h.contains("transfer-encoding: chunked\r\n"), "{h}");
        assert_eq!(w, BodyWrite::Chunked);
        let (h, w, ka) = encode(
            with(200, &[]),
            SizeHint::default(),
            Method::GET,
            Version::HTTP_10,
        );
        assert!(
            h.contains("connection: close\r\n") && !h.contains("transfer-encoding"),
            "{h}"
        );
        assert_eq!((w, ka), (BodyWrite::UntilClose, false));
        let (h, _, _) = encode(
            with(200, &[("transfer-encoding", "gzip")]),
            SizeHint::default(),
            Method::GET,
            Version::HTTP_11,
        );
        assert!(h.contains("transfer-encoding: gzip, chunked\r\n"), "{h}");
    }

    #[test]
    fn bodiless_answers_keep_the_backends_length() {
        for (status, method) in [(304, Method::GET), (200, Method::HEAD)] {
            let (h, w, _) = encode(
                with(status, &[("content-length", "42")]),
                SizeHint::with_exact(0),
                method,
                Version::HTTP_11,
            );
            assert!(h.contains("content-length: 42\r\n"), "{h}");
            assert_eq!(w, BodyWrite::None);
        }
        let (h, _, _) = encode(
            with(204, &[("content-length", "42")]),
            SizeHint::with_exact(0),
            Method::GET,
            Version::HTTP_11,
        );
        assert!(!h.contains("content-length"), "{h}");
    }

    #[test]
    fn reason_connection_and_date() {
        let mut r = with(
            200,
            &[
                ("date", "Tue, 01 Dec 2026 00:00:00 GMT"),
                ("connection", "close"),
            ],
        );
        r.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Fine Thanks"));
        let (h, _, ka) = encode(r, SizeHint::with_exact(0), Method::GET, Version::HTTP_11);
        assert!(h.starts_with("HTTP/1.1 200 Fine Thanks\r\n"), "{h}");
        assert_eq!(h.matches("date:").count(), 1, "{h}");
        assert!(h.ends_with("connection: close\r\n\r\n"), "{h}");
        assert!(!ka);
        let (h, _, ka) = encode(
            with(200, &[]),
            SizeHint::with_exact(0),
            Method::GET,
            Version::HTTP_10,
        );
        assert!(h.contains("connection: keep-alive\r\n") && ka, "{h}");
        let (h, _, _) = encode(
            with(101, &[("connection", "upgrade"), ("upgrade", "websocket")]),
            SizeHint::with_exact(0),
            Method::GET,
            Version::HTTP_11,
        );
        assert!(
            h.contains("upgrade: websocket\r\n") && h.contains("connection: upgrade\r\n"),
            "{h}"
        );
    }
}
