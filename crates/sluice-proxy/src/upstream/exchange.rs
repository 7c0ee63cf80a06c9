//! One exchange on one upstream connection: the request head out, then the
//! body out while the answer is read (a backend may answer before it read
//! the body, and that answer goes to the client), 1xx answers skipped, the
//! body's framing and whether the connection may be reused decided from the
//! head (RFC 9112 §6).
//!
//! When a request may go out again ([`Failed::resend`]): when the backend
//! provably never got it (its head could not be written), or when its method
//! is idempotent (RFC 9110 §9.2.2), no byte of its body was taken from the
//! client and no byte of an answer arrived. `send.rs` resends at most once.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Body as _;

use crate::http1::RequestBody;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::answer::Answer;
use super::body::{Framing, UpstreamBody};
use super::conn::{Conn, READ_CHUNK};
use super::error::UpstreamError;
use super::interim::InterimSink;
use super::pool::UpstreamPool;
use super::progress::Progress;
use crate::chunked;
use crate::header_rules::{
    connection_tokens, write_forwarded_headers, ClientOrigin, ConnectionToken, HOP_BY_HOP,
};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most response header lines accepted.
const MAX_HEADERS: usize = 100;
/// How long a request with `Expect: 100-continue` waits for the backend's
/// `100 Continue` (or an early final answer) before its body goes anyway;
/// curl waits as long before it sends the body unasked.
const EXPECT_WAIT: Duration = Duration::from_secs(1);

/// A request ready to go out: its head encoded once, so it can be sent
/// again on another connection while its body was not taken.
pub(super) struct Outgoing {
    head: Vec<u8>,
    /// The client's body, until it starts going out.
    body: Option<RequestBody>,
    chunked: bool,
    /// The body was taken from `body` to be sent: the request can no
    /// longer be sent again.
    body_taken: bool,
    head_request: bool,
    idempotent: bool,
    expect_continue: bool,
    /// The longest silence of the backend while it sends a response body.
    pub body_idle: Duration,
}

/// A failed exchange.
pub(super) struct Failed {
    pub error: UpstreamError,
    /// The request may go out again on another connection as it is.
    pub resend: bool,
}

// === impl Outgoing ===

impl Outgoing {
    /// Encodes the head of `req` (its headers already rewritten for the
    /// backend) as HTTP/1.1 with the target in origin form (`/path?query`,
    /// whatever form the client used) and the `X-Forwarded-*` headers for
    /// `client`. A body without `Content-Length` goes chunked.
    pub fn new(req: Request<RequestBody>, client: &ClientOrigin, body_idle: Duration) -> Outgoing {
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
        write_forwarded_headers(&parts.headers, client, &mut head);
        let (body, chunked) = if parts.headers.contains_key(header::CONTENT_LENGTH) {
            ((!body.is_end_stream()).then_some(body), false)
        } else if body.is_end_stream() {
            (None, false)
        } else {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n");
            (Some(body), true)
        };
        head.extend_from_slice(b"\r\n");
        let expect_continue = body.is_some()
            && parts
                .headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        Outgoing {
            head,
            body,
            chunked,
            body_taken: false,
            head_request: parts.method == Method::HEAD,
            idempotent: is_idempotent(&parts.method),
            expect_continue,
            body_idle,
        }
    }

    /// A failure after the whole head went out.
    fn failed(&self, error: UpstreamError, answer_started: bool) -> Failed {
        Failed {
            error,
            resend: self.idempotent && !self.body_taken && !answer_started,
        }
    }
}

/// RFC 9110 §9.2.2: methods whose request may be repeated with the same
/// effect as once.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Sends a client's body to the backend, framed by its length or in chunks.
/// `progress` says while the client is the one being waited for.
async fn send_body<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut body: RequestBody,
    chunked: bool,
    progress: &Progress,
) -> Result<(), UpstreamError> {
    let mut sent = 0u64;
    loop {
        progress.set_waiting_for_client(true);
        let frame = body.frame().await;
        progress.set_waiting_for_client(false);
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|source| UpstreamError::ClientBody { source })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        progress.set_body_bytes(sent);
        if chunked {
            let mut size = [0u8; 18];
            write_all(io, chunked::size_line(data.len(), &mut size)).await?;
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

async fn write_all<W: AsyncWrite + Unpin>(io: &mut W, data: &[u8]) -> Result<(), UpstreamError> {
    io.write_all(data)
        .await
        .map_err(|source| UpstreamError::Io { source })
}

/// Reads the next response head (1xx included) into `buf` and parses it;
/// `answered` turns true with the first byte of an answer. Cancel-safe:
/// what was read stays in `buf`.
async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
    answered: &mut bool,
) -> Result<Head, UpstreamError> {
    loop {
        if !buf.is_empty() {
            *answered = true;
            if let Some(head) = parse_head(buf, head_request)? {
                return Ok(head);
            }
            if buf.len() >= MAX_HEAD {
                return Err(UpstreamError::Invalid {
                    reason: "response head too large",
                });
            }
        }
        buf.reserve(READ_CHUNK);
        match io.read_buf(buf).await {
            Ok(0) => return Err(UpstreamError::Closed),
            Ok(_) => {}
            Err(source) => return Err(UpstreamError::Io { source }),
        }
    }
}

// === the exchange ===

/// Sends `out` on `conn` and reads the answer's head. The body goes out
/// while the answer is read: a final answer that comes first (a `413`
/// before the body was read) ends the sending and is the answer; the
/// connection then closes after it.
pub(super) async fn exchange(
    mut conn: Conn,
    out: &mut Outgoing,
    pool: &Arc<UpstreamPool>,
    progress: &Progress,
    interim: Option<&impl InterimSink>,
) -> Result<Answer, Failed> {
    if let Err(error) = write_all(&mut conn.io, &out.head).await {
        // Not all of the head went out: no request the backend could act on.
        return Err(Failed {
            error,
            resend: true,
        });
    }
    let mut answered = false;
    // Whether the backend got the whole body (or there is none).
    let mut body_complete = out.body.is_none();
    let head = {
        let (mut rd, mut wr) = conn.io.split();
        let buf = &mut conn.buf;
        let mut early = None;
        if out.expect_continue {
            // Rare, so boxed: the common exchange's state stays small.
            let wait = await_continue(&mut rd, buf, out.head_request, &mut answered, interim);
            early = match Box::pin(wait).await {
                Ok(early) => early,
                Err(e) => return Err(out.failed(e, answered)),
            };
        }
        match early {
            Some(head) => head,
            None => {
                let sending = out.body.take().map(|body| {
                    out.body_taken = true;
                    send_body(&mut wr, body, out.chunked, progress)
                });
                let mut sending = std::pin::pin!(sending);
                let mut send_error = None;
                loop {
                    tokio::select! {
                        r = async {
                            match sending.as_mut().as_pin_mut() {
                                Some(sending) => sending.await,
                                None => std::future::pending().await,
                            }
                        },
                            if !body_complete && send_error.is_none() =>
                        {
                            match r {
                                Ok(()) => body_complete = true,
                                Err(e @ UpstreamError::ClientBody { .. }) => {
                                    return Err(Failed { error: e, resend: false })
                                }
                                // The backend may have answered and closed:
                                // its answer is read before giving up.
                                Err(e) => send_error = Some(e),
                            }
                        }
                        h = read_head(&mut rd, buf, out.head_request, &mut answered) => match h {
                            Ok(h) if h.status == StatusCode::CONTINUE && out.expect_continue => continue,
                            Ok(h) if is_interim(&h) => {
                                Box::pin(forward_interim(&h, interim)).await;
                                continue;
                            }
                            Ok(h) => break h,
                            Err(e) => {
                                let e = match send_error {
                                    Some(send) if !answered => send,
                                    _ => e,
                                };
                                return Err(out.failed(e, answered));
                            }
                        },
                    }
                }
            }
        }
    };
    Ok(answer(head, conn, body_complete, out.body_idle, pool))
}

/// `Expect: 100-continue`: gives the backend [`EXPECT_WAIT`] to refuse
/// before the body goes. `Some` is a final answer that came first; `None`
/// means the body may go (a `100` came, or the wait ended).
async fn await_continue<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
    answered: &mut bool,
    interim: Option<&impl InterimSink>,
) -> Result<Option<Head>, UpstreamError> {
    let wait = tokio::time::sleep(EXPECT_WAIT);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            h = read_head(rd, buf, head_request, answered) => match h? {
                // The client gets its `100` as its body is first read.
                h if h.status == StatusCode::CONTINUE => return Ok(None),
                h if is_interim(&h) => forward_interim(&h, interim).await,
                h => return Ok(Some(h)),
            },
            _ = &mut wait => return Ok(None),
        }
    }
}

/// A 1xx answer other than `101`: the final answer follows (100 Continue,
/// 103 Early Hints).
fn is_interim(head: &Head) -> bool {
    head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS
}

/// Passes an interim answer on to the client, as HTTP/1.1.
async fn forward_interim(head: &Head, to: Option<&impl InterimSink>) {
    let Some(to) = to else { return };
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(head.status.as_str().as_bytes());
    out.push(b' ');
    match &head.reason {
        Some(r) => out.extend_from_slice(r.as_bytes()),
        None => out.extend_from_slice(head.status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    to.forward(&out).await;
}

fn answer(
    head: Head,
    conn: Conn,
    request_complete: bool,
    body_idle: Duration,
    pool: &Arc<UpstreamPool>,
) -> Answer {
    let mut resp = Response::new(());
    *resp.status_mut() = head.status;
    *resp.version_mut() = head.version;
    *resp.headers_mut() = head.headers;
    if let Some(reason) = head.reason {
        resp.extensions_mut().insert(reason);
    }
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        return Answer::Switching(resp, conn.io, conn.buf.freeze());
    }
    // A connection whose request body did not all go out cannot carry
    // another request.
    let reuse = head.keep_alive && request_complete;
    let body = UpstreamBody::new(conn, head.framing, reuse, body_idle, pool);
    Answer::Response(resp.map(|()| body))
}

/// A parsed response head.
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    /// The backend's reason phrase when it is not the status's usual one.
    pub(super) reason: Option<hyper::ext::ReasonPhrase>,
    pub(super) headers: HeaderMap,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
}

/// Parses a complete response head off the front of `buf` (`None`: more
/// bytes needed). Header values share the head's memory. Hop-by-hop headers
/// (RFC 9110 §7.6.1, and those `Connection` names) are read for framing and
/// reuse, and left out of the head; `Upgrade` stays on a `101`. With a
/// `Transfer-Encoding` the `Content-Length` is dropped (RFC 9112 §6.3), and
/// codings other than `chunked` stay in the head: the client gets the body
/// as the backend coded it.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<Head>, UpstreamError> {
    let invalid = |reason| UpstreamError::Invalid { reason };
    // Slots left uninitialised: httparse fills those it uses, so the
    // 3 KiB of empty headers are not written on every answer.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
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
    let reason = parsed
        .reason
        .filter(|r| !r.is_empty() && Some(*r) != status.canonical_reason())
        .map(|r| span_of(base, len, r.as_bytes()).ok_or(invalid("bad reason phrase")))
        .transpose()?;
    let switching = code == 101;
    let mut spans = Vec::with_capacity(parsed.headers.len());
    let mut listed: Vec<HeaderName> = Vec::new();
    let mut content_length: Option<u64> = None;
    // Whether the last transfer coding is chunked, and whether there are
    // codings other than chunked.
    let mut chunked = None;
    let mut other_codings = false;
    let (mut close, mut keep_alive_token) = (false, false);
    for h in parsed.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| invalid("bad header name"))?;
        let start = span_of(base, len, h.value)
            .ok_or(invalid("bad header value"))?
            .0;
        if name == header::CONTENT_LENGTH {
            // 1*DIGIT: no sign, no space (httparse trimmed the edges).
            let n = Some(h.value)
                .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .ok_or(invalid("bad content-length"))?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(invalid("conflicting content-length"));
            }
            content_length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            for coding in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if coding.is_empty() {
                    continue;
                }
                let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
                other_codings |= !is_chunked;
                chunked = Some(is_chunked);
            }
        } else if name == header::CONNECTION {
            for token in connection_tokens(h.value) {
                match token {
                    ConnectionToken::Close => close = true,
                    ConnectionToken::KeepAlive => keep_alive_token = true,
                    ConnectionToken::Upgrade => {}
                    ConnectionToken::Listed(name) => listed.push(name),
                }
            }
        }
        let hop = if name == header::TRANSFER_ENCODING {
            false // decided below, once every coding is known
        } else {
            HOP_BY_HOP.contains(&name) || (name == header::UPGRADE && !switching)
        };
        if !hop {
            spans.push((name, start, h.value.len()));
        }
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    for (name, start, len) in spans {
        if name == header::TRANSFER_ENCODING && !other_codings {
            continue; // only chunked: the client side frames the body anew
        }
        if name == header::CONTENT_LENGTH && chunked.is_some() {
            continue; // RFC 9112 §6.3: Transfer-Encoding overrides it
        }
        let value = HeaderValue::from_maybe_shared(head.slice(start..start + len))
            .map_err(|_| invalid("bad header value"))?;
        headers.append(name, value);
    }
    for name in listed {
        // The option list never removes the framing headers.
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            headers.remove(name);
        }
    }
    let reason = match reason {
        Some((start, len)) => hyper::ext::ReasonPhrase::try_from(head.slice(start..start + len))
            .map(Some)
            .map_err(|_| invalid("bad reason phrase"))?,
        None => None,
    };
    let framing = if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else {
        match (chunked, content_length) {
            // RFC 9112 §6.1: an HTTP/1.0 message with a Transfer-Encoding
            // has faulty framing: read it to the close.
            (Some(_), _) if version == Version::HTTP_10 => Framing::UntilClose,
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
        reason,
        headers,
        framing,
        keep_alive,
    }))
}

/// Where `part` (a slice httparse returned) starts within the head of
/// `len` bytes at `base`, and its length.
fn span_of(base: usize, len: usize, part: &[u8]) -> Option<(usize, usize)> {
    let start = (part.as_ptr() as usize).checked_sub(base)?;
    (start + part.len() <= len).then_some((start, part.len()))
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
        let cases: [(&[u8], bool, Framing, bool); 9] = [
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
            (
                b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
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
            b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\xc2\xa0\r\n\r\n",
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
