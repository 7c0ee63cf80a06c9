//! A client's request head (RFC 9112 §2–3, §6): parsed off the front of the
//! connection's buffer, with the body's framing and whether the client
//! wants the connection kept. What cannot be a request gets the status a
//! proxy owes it ([`HeadError`]); header values share the head's memory.

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

use crate::header_rules::{connection_tokens, ConnectionToken, MAX_TARGET};

/// Most header lines in a request head (as hyper's server allowed).
pub(crate) const MAX_HEADERS: usize = 100;

/// The start of an HTTP/2 prior-knowledge connection (RFC 9113 §3.4), as
/// far as it differs from any HTTP/1 request.
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A request head and what it says about its body and its connection.
pub(crate) struct RequestHead {
    pub parts: http::request::Parts,
    pub framing: BodyFraming,
    /// The client asked for the connection to stay open after the answer.
    pub keep_alive: bool,
    /// `Expect: 100-continue` with a body to come.
    pub expect_continue: bool,
}

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// What the front of the buffer holds.
// A head is returned once per request and taken apart at once: boxing it
// would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    Head(RequestHead),
    /// Not a whole head yet.
    Partial,
    /// An HTTP/2 prior-knowledge preface.
    H2Preface,
}

/// A head sluice refuses: the status it answers with, the `x-sluice-error`
/// code and what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: &'static str,
}

impl HeadError {
    fn bad(reason: &'static str) -> HeadError {
        HeadError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            reason,
        }
    }

    fn too_large(reason: &'static str) -> HeadError {
        HeadError {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code: "headers_too_large",
            reason,
        }
    }
}

/// Parses a request head off the front of `buf` (at most `max_head`
/// bytes). An `HTTP/1.x` request line with x above 1 is read as HTTP/1.1
/// (RFC 9112 §2.3); another major version gets `505`.
pub(crate) fn parse(buf: &mut BytesMut, max_head: usize) -> Result<Parsed, HeadError> {
    let preface = buf.len().min(H2_PREFACE.len());
    if buf[..preface] == H2_PREFACE[..preface] {
        return Ok(if preface == H2_PREFACE.len() {
            Parsed::H2Preface
        } else {
            Parsed::Partial
        });
    }
    normalize_version(buf)?;
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Complete(_)) => {
            return Err(HeadError::too_large("request head too large"))
        }
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Ok(Parsed::Partial),
        Ok(httparse::Status::Partial) => {
            return Err(HeadError::too_large("request head too large"))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::too_large("too many header lines"))
        }
        Err(httparse::Error::Version) if has_version_token(buf) => {
            return Err(HeadError {
                status: StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                code: "version_not_supported",
                reason: "only HTTP/1.x is spoken here",
            })
        }
        Err(_) => return Err(HeadError::bad("malformed request head")),
    };
    let base = buf.as_ptr() as usize;
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::bad("bad method"))?;
    let path = req.path.unwrap_or("");
    let path_span = span(base, buf.len(), path.as_bytes())?;
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut spans = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    let (mut close, mut keep_alive_token, mut expect_continue) = (false, false, false);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::bad("bad header name"))?;
        if name == header::CONTENT_LENGTH {
            let n = Some(h.value)
                .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .ok_or(HeadError::bad("bad Content-Length"))?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HeadError::bad("conflicting Content-Length"));
            }
            content_length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
            for coding in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if !coding.is_empty() {
                    chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
        } else if name == header::CONNECTION {
            for token in connection_tokens(h.value) {
                match token {
                    ConnectionToken::Close => close = true,
                    ConnectionToken::KeepAlive => keep_alive_token = true,
                    _ => {}
                }
            }
        } else if name == header::EXPECT {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        }
        let (start, len) = span(base, buf.len(), h.value)?;
        spans.push((name, start, len));
    }
    let framing = if transfer_encoding {
        // RFC 9112 §6.1 and §6.3: these framings cannot be trusted.
        if version == Version::HTTP_10 {
            return Err(HeadError::bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if content_length.is_some() {
            return Err(HeadError::bad("both Content-Length and Transfer-Encoding"));
        }
        if !chunked_last {
            return Err(HeadError::bad(
                "a request transfer coding must end in chunked",
            ));
        }
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    };
    let head = buf.split_to(len).freeze();
    let target = head.slice(path_span.0..path_span.0 + path_span.1);
    if target.len() > MAX_TARGET {
        return Err(HeadError {
            status: StatusCode::URI_TOO_LONG,
            code: "uri_too_long",
            reason: "request target too long",
        });
    }
    let uri = Uri::from_maybe_shared(target).map_err(|_| HeadError::bad("bad request target"))?;
    let mut headers = HeaderMap::with_capacity(spans.len());
    for (name, start, len) in spans {
        let value = HeaderValue::from_maybe_shared(head.slice(start..start + len))
            .map_err(|_| HeadError::bad("bad header value"))?;
        headers.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    let (parts, ()) = request.into_parts();
    let keep_alive = !close && (version == Version::HTTP_11 || keep_alive_token);
    Ok(Parsed::Head(RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue: expect_continue && framing != BodyFraming::None,
    }))
}

/// Whether the request line ends in a well-formed `HTTP/d.d` (so a bad
/// version is one sluice does not speak, not a line that is no request).
fn has_version_token(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(0);
    let line = buf[start..].split(|b| *b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(version) = line.rsplit(|b| *b == b' ').next() else {
        return false;
    };
    version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit()
}

/// Where `part` (a slice httparse returned) lies in the buffer at `base`.
fn span(base: usize, len: usize, part: &[u8]) -> Result<(usize, usize), HeadError> {
    if part.is_empty() {
        return Ok((0, 0));
    }
    let start = (part.as_ptr() as usize)
        .checked_sub(base)
        .filter(|s| s + part.len() <= len)
        .ok_or(HeadError::bad("malformed request head"))?;
    Ok((start, part.len()))
}

/// Rewrites the version of a complete request line `HTTP/1.x` (x from 2
/// to 9) to `HTTP/1.1` in place; a request line too long for any target
/// sluice accepts gets `414`.
fn normalize_version(buf: &mut BytesMut) -> Result<(), HeadError> {
    // Empty lines before the request line are allowed (RFC 9112 §2.2).
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n');
    let Some(start) = start else { return Ok(()) };
    let line_len = buf[start..].iter().position(|b| *b == b'\n');
    if line_len.unwrap_or(buf.len() - start) > MAX_TARGET + 64 {
        return Err(HeadError {
            status: StatusCode::URI_TOO_LONG,
            code: "uri_too_long",
            reason: "request line too long",
        });
    }
    let Some(end) = line_len else { return Ok(()) };
    let mut line_end = start + end;
    if line_end > start && buf[line_end - 1] == b'\r' {
        line_end -= 1;
    }
    let line = &buf[start..line_end];
    if line.len() >= 9 && line[line.len() - 9] == b' ' {
        let version = &line[line.len() - 8..];
        if version.starts_with(b"HTTP/1.") && matches!(version[7], b'2'..=b'9') {
            buf[line_end - 1] = b'1';
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<RequestHead, HeadError> {
        let mut buf = BytesMut::from(bytes);
        match parse(&mut buf, 16 * 1024)? {
            Parsed::Head(h) => Ok(h),
            Parsed::Partial => panic!("partial: {}", String::from_utf8_lossy(bytes)),
            Parsed::H2Preface => panic!("preface"),
        }
    }

    #[test]
    fn framing_keep_alive_and_expect_follow_the_head() {
        let h = head(b"POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\n").unwrap();
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Length(5), true));
        let h = head(b"POST /a HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\nconnection: close\r\nexpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!(
            (h.framing, h.keep_alive, h.expect_continue),
            (BodyFraming::Chunked, false, true)
        );
        let h = head(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").unwrap();
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::None, true));
        let h = head(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = head(b"\r\nGET /x?y HTTP/1.2\r\nhost: a\r\n\r\n").unwrap();
        assert_eq!(h.parts.version, Version::HTTP_11, "HTTP/1.2 is read as 1.1");
        assert_eq!(h.parts.uri, "/x?y");
    }

    #[test]
    fn what_cannot_be_a_request_gets_its_status() {
        let cases: [(&[u8], u16); 9] = [
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"NOT HTTP AT ALL\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\ncontent-length: +5\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", 400),
            (
                b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
            (b"G\x01T / HTTP/1.1\r\n\r\n", 400),
        ];
        for (bytes, status) in cases {
            let e = head(bytes)
                .err()
                .unwrap_or_else(|| panic!("{bytes:?} accepted"));
            assert_eq!(e.status, status, "{}", String::from_utf8_lossy(bytes));
        }
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_TARGET + 100));
        let mut buf = BytesMut::from(long.as_bytes());
        assert_eq!(
            parse(&mut buf, 64 * 1024).err().map(|e| e.status),
            Some(StatusCode::URI_TOO_LONG)
        );
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(head(&many).err().map(|e| e.status.as_u16()), Some(431));
    }

    #[test]
    fn partial_heads_and_the_h2_preface() {
        for bytes in [&b"GET / HTTP/1.1\r\nhost"[..], b"PRI * HT", b""] {
            let mut buf = BytesMut::from(bytes);
            assert!(matches!(parse(&mut buf, 1024), Ok(Parsed::Partial)));
        }
        let mut buf = BytesMut::from(&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..]);
        assert!(matches!(parse(&mut buf, 1024), Ok(Parsed::H2Preface)));
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nhost: a\r\n"[..]);
        buf.extend_from_slice(&[b'x'; 2048]);
        assert_eq!(
            parse(&mut buf, 1024).err().map(|e| e.status.as_u16()),
            Some(431)
        );
    }
}
