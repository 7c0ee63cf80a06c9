//! One exchange on one upstream connection: the request head (and body)
//! out, the response head in (RFC 9112: 1xx answers skipped, the body's
//! framing and whether the connection may be reused decided from the head).

use std::sync::Arc;

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body::{Framing, UpstreamBody};
use super::pool::UpstreamPool;
use super::{Answer, UpstreamError};
use crate::forward::{connection_tokens, write_forwarded_headers, ConnectionToken, HOP_BY_HOP};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most response header lines accepted.
const MAX_HEADERS: usize = 100;
/// Read buffer growth step.
pub(super) const READ_CHUNK: usize = 8 * 1024;

/// An open connection to a backend and the bytes read from it that nobody
/// consumed yet (empty while idle).
pub(super) struct Conn {
    pub io: TcpStream,
    pub buf: BytesMut,
}

/// A request ready to go out: its head encoded once, so it can be sent
/// again on another connection while its body was not touched.
pub(super) struct Outgoing {
    head: Vec<u8>,
    body: Option<(Incoming, bool)>,
    body_started: bool,
    head_request: bool,
}

/// A failed exchange; `retryable` when the backend got nothing it could
/// have acted on and the request can be sent again as it is.
pub(super) struct Failed {
    pub error: UpstreamError,
    pub retryable: bool,
}

// === impl Outgoing ===

impl Outgoing {
    /// Encodes the head of `req` (its headers already rewritten for the
    /// backend) as HTTP/1.1 with the target in origin form (`/path?query`,
    /// whatever form the client used) and the `X-Forwarded-*` headers for
    /// `client_ip`. A body without `Content-Length` goes chunked.
    pub fn new(req: Request<Incoming>, client_ip: &HeaderValue) -> Outgoing {
        let (parts, body) = req.into_parts();
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(parts.method.as_str().as_bytes());
        head.push(b' ');
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        write_forwarded_headers(&parts.headers, client_ip, &mut head);
        let body = if parts.headers.contains_key(http::header::CONTENT_LENGTH) {
            (!body.is_end_stream()).then_some((body, false))
        } else if body.is_end_stream() {
            None
        } else {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Some((body, true))
        };
        head.extend_from_slice(b"\r\n");
        Outgoing {
            head,
            body,
            body_started: false,
            head_request: parts.method == Method::HEAD,
        }
    }

    async fn write(&mut self, io: &mut TcpStream) -> Result<(), UpstreamError> {
        io.write_all(&self.head)
            .await
            .map_err(|source| UpstreamError::Io { source })?;
        let Some((mut body, chunked)) = self.body.take() else {
            return Ok(());
        };
        self.body_started = true;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| UpstreamError::ClientBody { source })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not forwarded
            };
            if data.is_empty() {
                continue;
            }
            if chunked {
                let size = format!("{:x}\r\n", data.len());
                write_all(io, size.as_bytes()).await?;
                write_all(io, &data).await?;
                write_all(io, b"\r\n").await?;
            } else {
                write_all(io, &data).await?;
            }
        }
        if chunked {
            write_all(io, b"0\r\n\r\n").await?;
        }
        Ok(())
    }
}

async fn write_all(io: &mut TcpStream, data: &[u8]) -> Result<(), UpstreamError> {
    io.write_all(data)
        .await
        .map_err(|source| UpstreamError::Io { source })
}

// === the exchange ===

/// Sends `out` on `conn` and reads the answer's head.
pub(super) async fn exchange(
    mut conn: Conn,
    out: &mut Outgoing,
    pool: &Arc<UpstreamPool>,
) -> Result<Answer, Failed> {
    let fail = |error, received: bool, out: &Outgoing| Failed {
        error,
        retryable: !received && !out.body_started,
    };
    if let Err(e) = out.write(&mut conn.io).await {
        return Err(fail(e, false, out));
    }
    let mut received = !conn.buf.is_empty();
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&mut conn.buf, out.head_request) {
                Ok(Some(head)) if head.status.is_informational() && head.status != 101 => {
                    continue; // 100 Continue, 103 Early Hints: the answer follows
                }
                Ok(Some(head)) => return Ok(answer(head, conn, pool)),
                Ok(None) => {}
                Err(e) => return Err(fail(e, true, out)),
            }
            if conn.buf.len() >= MAX_HEAD {
                let e = UpstreamError::Invalid {
                    reason: "response head too large",
                };
                return Err(fail(e, true, out));
            }
        }
        conn.buf.reserve(READ_CHUNK);
        match conn.io.read_buf(&mut conn.buf).await {
            Ok(0) => return Err(fail(UpstreamError::Closed, received, out)),
            Ok(_) => received = true,
            Err(source) => return Err(fail(UpstreamError::Io { source }, received, out)),
        }
    }
}

fn answer(head: Head, conn: Conn, pool: &Arc<UpstreamPool>) -> Answer {
    let mut resp = Response::new(());
    *resp.status_mut() = head.status;
    *resp.version_mut() = head.version;
    *resp.headers_mut() = head.headers;
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        return Answer::Switching(resp, conn.io, conn.buf.freeze());
    }
    let body = UpstreamBody::new(conn, head.framing, head.keep_alive, pool);
    Answer::Response(resp.map(|()| body))
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Parses a complete response head off the front of `buf` (`None`: more
/// bytes needed). Header values share the head's memory. Hop-by-hop headers
/// (RFC 9110 §7.6.1, and those `Connection` names) are read for framing and
/// reuse, and left out of the head; `Upgrade` stays on a `101`.
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, UpstreamError> {
    let invalid = |reason| UpstreamError::Invalid { reason };
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(invalid("too many header lines")),
        Err(_) => return Err(invalid("malformed response head")),
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| invalid("bad status code"))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Offsets into the head, so values can share it once it is split off.
    let base = buf.as_ptr() as usize;
    let switching = code == 101;
    let mut spans = Vec::with_capacity(parsed.headers.len());
    let mut listed: Vec<HeaderName> = Vec::new();
    let mut content_length: Option<u64> = None;
    let mut chunked = None;
    let (mut close, mut keep_alive_token) = (false, false);
    for h in parsed.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| invalid("bad header name"))?;
        let start = h.value.as_ptr() as usize - base;
        if name == http::header::CONTENT_LENGTH {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(invalid("bad content-length"))?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(invalid("conflicting content-length"));
            }
            content_length = Some(n);
        } else if name == http::header::TRANSFER_ENCODING {
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == http::header::CONNECTION {
            for token in connection_tokens(h.value) {
                match token {
                    ConnectionToken::Close => close = true,
                    ConnectionToken::KeepAlive => keep_alive_token = true,
                    ConnectionToken::Upgrade => {}
                    ConnectionToken::Listed(name) => listed.push(name),
                }
            }
        }
        let hop = HOP_BY_HOP.contains(&name) || (name == http::header::UPGRADE && !switching);
        if !hop {
            spans.push((name, start, h.value.len()));
        }
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    for (name, start, len) in spans {
        let value = HeaderValue::from_maybe_shared(head.slice(start..start + len))
            .map_err(|_| invalid("bad header value"))?;
        headers.append(name, value);
    }
    for name in listed {
        headers.remove(name);
    }
    let framing = if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else {
        match (chunked, content_length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    let keep_alive = !close
        && (version == Version::HTTP_11 || keep_alive_token)
        && !matches!(framing, Framing::UntilClose);
    Ok(Some(Head {
        status,
        version,
        headers,
        framing,
        keep_alive,
    }))
}

/// Kept for the unit tests: a head parsed from a byte string.
#[cfg(test)]
fn parse(bytes: &[u8], head_request: bool) -> Result<Option<(Head, bytes::Bytes)>, UpstreamError> {
    let mut buf = BytesMut::from(bytes);
    Ok(parse_head(&mut buf, head_request)?.map(|h| (h, buf.freeze())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_reuse_follow_the_head() {
        let cases: [(&[u8], bool, Framing, bool); 8] = [
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                false,
                Framing::Length(2),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                false,
                Framing::Length(2),
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 9\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n",
                false,
                Framing::Length(0),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: Keep-Alive\r\n\r\n",
                false,
                Framing::Length(0),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
        ];
        for (bytes, head_req, framing, reuse) in cases {
            let (head, _) = parse(bytes, head_req).unwrap().unwrap();
            let text = String::from_utf8_lossy(bytes);
            assert_eq!(head.framing, framing, "{text}");
            assert_eq!(head.keep_alive, reuse, "{text}");
        }
        for code in [204, 304] {
            let bytes = format!("HTTP/1.1 {code} X\r\ncontent-length: 3\r\n\r\n");
            let (head, _) = parse(bytes.as_bytes(), false).unwrap().unwrap();
            assert_eq!(head.framing, Framing::Empty);
        }
    }

    #[test]
    fn the_head_is_split_off_and_values_are_kept() {
        let (head, rest) = parse(
            b"HTTP/1.1 404 Not Found\r\nx-a: 1\r\nx-a: 2\r\nserver: t\r\n\r\nbody",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(&rest[..], b"body");
        let all: Vec<_> = head.headers.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(head.headers["server"], "t");
    }

    #[test]
    fn hop_by_hop_headers_are_left_out() {
        let (head, _) = parse(
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive, x-trace\r\nkeep-alive: timeout=5\r\nx-trace: 1\r\nupgrade: h2c\r\ntransfer-encoding: chunked\r\nx-keep: yes\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.headers.len(), 1, "{:?}", head.headers);
        assert_eq!(head.headers["x-keep"], "yes");
        assert_eq!(head.framing, Framing::Chunked);
        let (head, _) = parse(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.headers["upgrade"], "websocket");
        assert!(!head.headers.contains_key("connection"));
    }

    #[test]
    fn partial_and_bad_heads() {
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-le", false)
            .unwrap()
            .is_none());
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"SMTP ready\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad, false), Err(UpstreamError::Invalid { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
