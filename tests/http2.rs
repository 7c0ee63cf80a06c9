//! HTTP/2 to clients, end to end: the real binary, an h2c client with prior
//! knowledge (hyper's), HTTP/1.1 backends.
//!
//! - A GET and POSTs (with and without `Content-Length`, large bodies) go to
//!   the backend as HTTP/1.1 with `Host` from `:authority`; the answer comes
//!   back without connection-specific headers.
//! - Many streams at once on one connection.
//! - A backend removed with a drain timeout: its slow stream gets `500` at
//!   the deadline while a stream on the same connection to another backend,
//!   started before the deadline and finishing after it, completes.
//! - Each stream has its own request timeout: a stalled one gets `504` at
//!   the timeout while a quicker one on the same connection gets its answer.
//! - A listener's removal sends GOAWAY; its stream in flight gets `500` at
//!   the deadline and the connection closes.
//! - A connection with no stream open for the header read timeout closes;
//!   a stream open longer keeps it.
//! - A node drain (SIGTERM) sends GOAWAY: the stream in flight completes,
//!   the client cannot open a new one, the node exits 0.
//! - A CONNECT (with `:authority` or without) is refused with `405`, a
//!   malformed request (no `:scheme`) is reset; the connection and the node
//!   go on serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_testkit::{BackendConn, BackendEvent, NodeOptions, ScriptedBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request body given in pieces, with no size known ahead: hyper's client
/// sends it without `Content-Length`.
struct Pieces(VecDeque<Bytes>);

impl Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

type Client = SendRequest<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

/// An h2c connection with prior knowledge to `listen`.
async fn connect(listen: &str) -> Client {
    connect_watched(listen).await.0
}

/// [`connect`], with the task that ends when the connection does.
async fn connect_watched(listen: &str) -> (Client, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(listen).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("HTTP/2 handshake");
    let ended = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, ended)
}

/// Polls until a new stream on `client` is refused (GOAWAY came), for at
/// most `within`; a stream the client sent before it arrived is served.
async fn wait_refused(client: &Client, listen: &str, within: Duration) {
    poll(within, "a new stream refused", || {
        let client = client.clone();
        let listen = listen.to_string();
        async move {
            let late = send(&client, request(Method::GET, &listen, "/late", empty()));
            match tokio::time::timeout(Duration::from_secs(1), late).await {
                Ok(Err(_)) => Ok(()),
                Ok(Ok((status, ..))) => Err(format!("still served: {status}")),
                Err(_) => Err("no answer within 1 s".to_string()),
            }
        }
    })
    .await;
}

fn empty() -> http_body_util::combinators::BoxBody<Bytes, Infallible> {
    http_body_util::Empty::new().boxed()
}

/// A request to `http://{authority}{path}`.
fn request(
    method: Method,
    authority: &str,
    path: &str,
    body: http_body_util::combinators::BoxBody<Bytes, Infallible>,
) -> Request<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"))
        .body(body)
        .unwrap()
}

/// Sends `req` on `client`; the status, headers and whole body.
async fn send(
    client: &Client,
    req: Request<http_body_util::combinators::BoxBody<Bytes, Infallible>>,
) -> Result<(StatusCode, HeaderMap, Bytes), hyper::Error> {
    let mut client = client.clone();
    let resp = client.send_request(req).await?;
    assert_eq!(resp.version(), Version::HTTP_2);
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// A GET of `path` on `client`, answered within 30 s.
async fn get(client: &Client, listen: &str, path: &str) -> (StatusCode, HeaderMap, Bytes) {
    let req = request(Method::GET, listen, path, empty());
    tokio::time::timeout(Duration::from_secs(30), send(client, req))
        .await
        .expect("answered in time")
        .expect("answered")
}

/// A backend that answers each request with its method, target, body
/// length and a checksum of the body, chunked, with the connection-specific
/// headers HTTP/2 forbids.
async fn echo_backend() -> ScriptedBackend {
    ScriptedBackend::start(|mut c: BackendConn| async move {
        while let Some(req) = c.read_request().await {
            let sum: u64 = req.body.iter().map(|b| u64::from(*b)).sum();
            let text = format!("{} {} {} {sum}", req.method, req.target, req.body.len());
            let answer = format!(
                "HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\
                 transfer-encoding: chunked\r\nx-backend: echo\r\n\r\n{:x}\r\n{text}\r\n0\r\n\r\n",
                text.len()
            );
            if !c.write(answer).await {
                return;
            }
        }
    })
    .await
}

fn sum(data: &[u8]) -> u64 {
    data.iter().map(|b| u64::from(*b)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_to_the_backend_as_http1_with_host_from_the_authority() {
    // A raw backend, to see the request line and head as sluice wrote them.
    let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw_addr = raw.local_addr().unwrap().to_string();
    let head = tokio::spawn(async move {
        let (mut io, _) = raw.accept().await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = io.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole head");
            got.extend_from_slice(&chunk[..n]);
        }
        io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8(got).unwrap()
    });
    let (_node, listen) = node_over(&[&raw_addr], "60s", "1s").await;
    let client = connect(&listen).await;
    let req = Request::builder()
        .uri("http://shop.example:8080/hello?x=1")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("te", "trailers")
        .body(empty())
        .unwrap();
    let (status, headers, body) = send(&client, req).await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    assert!(headers.get("connection").is_none(), "{headers:?}");
    let head = head.await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /hello?x=1 http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nhost: shop.example:8080\r\n"), "{head}");
    assert_eq!(head.matches("\r\nhost:").count(), 1, "{head}");
    assert!(head.contains("\r\ncookie: a=1; b=2\r\n"), "{head}");
    assert!(!head.contains("\r\nte:"), "{head}");
    assert!(
        head.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_with_and_without_a_length_are_forwarded_whole() {
    let b = echo_backend().await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let client = connect(&listen).await;

    // With Content-Length.
    let data = Bytes::from_static(b"hello h2");
    let req = request(
        Method::POST,
        &listen,
        "/len",
        http_body_util::Full::new(data.clone()).boxed(),
    );
    let (status, headers, body) = send(&client, req).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("POST /len 8 {}", sum(&data)));
    // The backend's chunked framing and keep-alive stay on its hop.
    for hop in ["connection", "keep-alive", "transfer-encoding"] {
        assert!(headers.get(hop).is_none(), "{hop}: {headers:?}");
    }
    assert_eq!(headers["x-backend"], "echo");

    // Without: the backend gets it chunked.
    let pieces = Pieces(VecDeque::from([
        Bytes::from_static(b"one,"),
        Bytes::from_static(b"two,"),
        Bytes::from_static(b"three"),
    ]));
    let req = request(Method::POST, &listen, "/chunks", pieces.boxed());
    let (status, _, body) = send(&client, req).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("POST /chunks 13 {}", sum(b"one,two,three")));

    // Large bodies, 8 MiB, both ways of framing: past every flow-control
    // window on the client's side.
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(big);
    let req = request(
        Method::PUT,
        &listen,
        "/big",
        http_body_util::Full::new(big.clone()).boxed(),
    );
    let (status, _, body) = send(&client, req).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("PUT /big {} {}", big.len(), sum(&big)));
    let pieces = Pieces(big.chunks(100_000).map(Bytes::copy_from_slice).collect());
    let req = request(Method::POST, &listen, "/big-chunks", pieces.boxed());
    let (status, _, body) = send(&client, req).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        format!("POST /big-chunks {} {}", big.len(), sum(&big))
    );

    let seen = b.requests();
    let chunked: Vec<_> = seen
        .iter()
        .map(|r| r.header("transfer-encoding").is_some())
        .collect();
    assert_eq!(chunked, [false, true, false, true], "{seen:?}");
    assert_eq!(seen[0].header("content-length"), Some("8"));
    assert_eq!(seen[2].header("content-length"), Some("8388608"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_reaches_the_client_whole() {
    const LEN: usize = 6 * 1024 * 1024;
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        while c.read_request().await.is_some() {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {LEN}\r\n\r\n");
            let body: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
            if !c.write(head).await || !c.write(body).await {
                return;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let client = connect(&listen).await;
    let (status, headers, body) = get(&client, &listen, "/large").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], LEN.to_string());
    assert_eq!(body.len(), LEN);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams_run_at_once_on_one_connection() {
    const STREAMS: usize = 200;
    const DELAY: Duration = Duration::from_millis(500);
    let b = backend("b1", Duration::ZERO).await;
    let (_node, listen) = node_over(&[&b.addr().to_string()], "60s", "1s").await;
    let client = connect(&listen).await;
    let started = Instant::now();
    let streams: Vec<_> = (0..STREAMS)
        .map(|i| {
            let client = client.clone();
            let listen = listen.clone();
            tokio::spawn(async move {
                let path = format!("/?delay={}ms&n={i}", DELAY.as_millis());
                get(&client, &listen, &path).await
            })
        })
        .collect();
    for s in streams {
        let (status, _, body) = s.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "Hello from b1\n");
    }
    // One after another they would take STREAMS × DELAY (100 s): they ran
    // together, on the one connection the client has.
    let took = started.elapsed();
    assert!(
        took < DELAY * 20,
        "{STREAMS} streams of {DELAY:?} took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_gets_504_at_its_timeout_while_a_quick_one_is_answered() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let b = backend("web", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let (_node, listen) = node_over(&[&addr], "1s", "60s").await;
    let client = connect(&listen).await;
    let started = Instant::now();
    let stalled = {
        let (client, listen) = (client.clone(), listen.clone());
        tokio::spawn(async move {
            let r = get(&client, &listen, "/?delay=30s").await;
            (r, started.elapsed())
        })
    };
    let ((status, _, body), quick_took) = {
        let r = get(&client, &listen, "/?delay=300ms").await;
        (r, started.elapsed())
    };
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert!(quick_took < TIMEOUT, "the quick stream took {quick_took:?}");
    let ((status, headers, body), took) = stalled.await.unwrap();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body:?}");
    assert_eq!(headers["x-sluice-error"], "backend_timeout");
    assert!(
        took >= TIMEOUT - Duration::from_millis(50) && took < TIMEOUT + Duration::from_millis(800),
        "504 came after {took:?}, request timeout {TIMEOUT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backend_s_stream_gets_500_while_another_stream_completes() {
    const DRAIN: Duration = Duration::from_secs(2);
    let slow = backend("slow", Duration::ZERO).await;
    let other = backend("other", Duration::ZERO).await;
    let slow_addr = slow.addr().to_string();
    let (node, listen) = node_over(&[&slow_addr], "60s", "2s").await;
    let client = connect(&listen).await;

    // A stream to the backend about to be removed.
    let cut = {
        let (client, listen) = (client.clone(), listen.clone());
        tokio::spawn(async move {
            let r = get(&client, &listen, "/?delay=30s").await;
            (r, Instant::now())
        })
    };
    slow.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the stream reached the slow backend");
    cli_ok(&node, &["backend", "add", "web", &other.addr().to_string()]).await;
    let removed_at = Instant::now();
    remove(&node, &slow_addr).await.expect("the backend drains");

    // A second stream on the same connection, to the backend that stays:
    // it starts before the deadline and ends after it.
    let goes_on = {
        let (client, listen) = (client.clone(), listen.clone());
        tokio::spawn(async move {
            let r = get(&client, &listen, "/?delay=3s").await;
            (r, Instant::now())
        })
    };
    other
        .wait_for(
            |e| matches!(e, BackendEvent::RequestStarted { .. }),
            Duration::from_secs(2),
        )
        .await
        .expect("the second stream reached the other backend");
    assert!(removed_at.elapsed() < DRAIN, "started before the deadline");

    let ((status, headers, body), cut_at) = cut.await.unwrap();
    let after = cut_at - removed_at;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body:?}");
    assert_eq!(headers["x-sluice-error"], "drain_deadline");
    assert!(headers.get("connection").is_none(), "{headers:?}");
    assert!(String::from_utf8_lossy(&body).contains("draining deadline"));
    assert!(
        after >= DRAIN - Duration::from_millis(100) && after < DRAIN + Duration::from_millis(800),
        "500 came {after:?} after the removal, drain timeout {DRAIN:?}"
    );

    let ((status, _, body), done_at) = goes_on.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Hello from other\n");
    assert!(done_at > cut_at, "the second stream ended after the cut");
    // The connection itself goes on.
    let (status, _, body) = get(&client, &listen, "/").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"Hello from other\n"[..])
    );
    assert!(wait_removed(&node, &slow_addr, Duration::from_secs(2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_drain_sends_goaway_and_lets_the_stream_in_flight_finish() {
    let be = backend("b1", Duration::ZERO).await;
    let mut opts = NodeOptions::local(1);
    opts.stop_timeout = Some("6s".into());
    opts.accept_grace = Some("3s".into());
    let addr = be.addr().to_string();
    let (mut node, listen) = node_with(
        opts,
        &["--drain-timeout", "2s"],
        &["--no-health-checks"],
        &[&addr],
        "60s",
    )
    .await;
    let client = connect(&listen).await;
    assert_eq!(get(&client, &listen, "/").await.0, StatusCode::OK);
    let in_flight = {
        let (client, listen) = (client.clone(), listen.clone());
        tokio::spawn(async move { get(&client, &listen, "/?delay=2s").await })
    };
    be.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { path } if path == "/?delay=2s"),
        Duration::from_secs(5),
    )
    .await
    .expect("the stream reached the backend");

    let signalled = Instant::now();
    node.signal("TERM").unwrap();
    // GOAWAY: the client may open no new stream on this connection.
    wait_refused(&client, &listen, Duration::from_secs(2)).await;
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "GOAWAY came {:?} after SIGTERM",
        signalled.elapsed()
    );

    // The stream in flight completes.
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Hello from b1\n");

    let exit = tokio::task::spawn_blocking(move || {
        let exit = node.wait_exit(Duration::from_secs(15)).unwrap();
        (node, exit)
    })
    .await
    .unwrap();
    let (node, exit) = exit;
    assert!(
        exit.is_some_and(|e| e.success()),
        "exit: {exit:?}\n{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_listener_sends_goaway_and_ends_its_streams_at_the_deadline() {
    const DRAIN: Duration = Duration::from_secs(2);
    let b = backend("b1", Duration::ZERO).await;
    let (node, listen) = node_over(&[&b.addr().to_string()], "60s", "2s").await;
    let (client, conn) = connect_watched(&listen).await;
    let slow = {
        let (client, listen) = (client.clone(), listen.clone());
        tokio::spawn(async move {
            let r = get(&client, &listen, "/?delay=30s").await;
            (r, Instant::now())
        })
    };
    b.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the stream reached the backend");
    let port = listen.rsplit(':').next().unwrap().to_string();
    let removed_at = Instant::now();
    cli_ok(&node, &["listener", "remove", &port]).await;
    wait_refused(&client, &listen, Duration::from_secs(1)).await;

    // The stream in flight runs until the listener's deadline, then 500.
    let ((status, headers, body), cut_at) = slow.await.unwrap();
    let after = cut_at - removed_at;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body:?}");
    assert_eq!(headers["x-sluice-error"], "drain_deadline");
    assert!(String::from_utf8_lossy(&body).contains("this listener was removed"));
    assert!(
        after >= DRAIN - Duration::from_millis(100) && after < DRAIN + Duration::from_millis(800),
        "500 came {after:?} after the removal, drain timeout {DRAIN:?}"
    );
    // With its last stream answered, the connection closes.
    tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("the connection closed after its last stream")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_closes_after_the_header_read_timeout() {
    let b = backend("b1", Duration::ZERO).await;
    let mut opts = NodeOptions::local(1);
    opts.extra_toml = "[proxy]\nheader_read_timeout = \"1s\"\n".into();
    let addr = b.addr().to_string();
    let (_node, listen) = node_with(
        opts,
        &["--drain-timeout", "1s"],
        &["--no-health-checks"],
        &[&addr],
        "60s",
    )
    .await;
    let (client, mut conn) = connect_watched(&listen).await;
    // A stream open longer than the timeout keeps the connection.
    let (status, _, _) = get(&client, &listen, "/?delay=2500ms").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!conn.is_finished(), "closed under an open stream");
    let answered = Instant::now();
    tokio::time::timeout(Duration::from_secs(4), &mut conn)
        .await
        .expect("the idle connection closed")
        .unwrap();
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(900),
        "closed {idle:?} after its last stream, timeout 1 s"
    );
}

/// How a stream read by hand ended.
#[derive(Debug, PartialEq)]
enum StreamEnd {
    /// Answered: the DATA it carried.
    Answered(Vec<u8>),
    /// RST_STREAM with this error code.
    Reset(u32),
}

/// Reads HTTP/2 frames from `io` (acknowledging the server's SETTINGS)
/// until stream `id` ends.
async fn stream_end(io: &mut TcpStream, id: u32) -> StreamEnd {
    let mut data = Vec::new();
    loop {
        let mut head = [0u8; 9];
        io.read_exact(&mut head).await.expect("a frame");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload)
            .await
            .expect("a frame's payload");
        assert_ne!(kind, 0x7, "GOAWAY: {payload:?}");
        if kind == 0x4 && flags & 0x1 == 0 {
            io.write_all(&[0, 0, 0, 0x4, 0x1, 0, 0, 0, 0])
                .await
                .unwrap();
        }
        if stream != id {
            continue;
        }
        match kind {
            0x3 => return StreamEnd::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap())),
            0x0 => data.extend_from_slice(&payload),
            _ => {}
        }
        if flags & 0x1 != 0 && matches!(kind, 0x0 | 0x1) {
            return StreamEnd::Answered(data);
        }
    }
}

/// A HEADERS frame opening stream `id` with `block` (HPACK), END_HEADERS
/// and END_STREAM set.
fn headers_frame(id: u32, block: &[u8]) -> Vec<u8> {
    let mut out = (block.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[0x1, 0x5]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(block);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_refused_request_is_answered_and_the_node_goes_on() {
    let b = backend("b1", Duration::ZERO).await;
    let (_node, listen) = node_over(&[&b.addr().to_string()], "60s", "1s").await;

    let mut io = TcpStream::connect(&listen).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    // CONNECT without :authority: one literal field `:method: CONNECT`
    // (its name from HPACK's static table, entry 2). sluice forwards no
    // CONNECT: 405.
    out.extend_from_slice(&headers_frame(1, b"\x02\x07CONNECT"));
    io.write_all(&out).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), stream_end(&mut io, 1))
        .await
        .expect("an answer to the CONNECT");
    match end {
        StreamEnd::Answered(body) => {
            let body = String::from_utf8_lossy(&body).into_owned();
            assert!(body.starts_with("405 Method Not Allowed"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    // A GET without :scheme (`:method: GET`, `:path: /`, both indexed):
    // malformed, reset with PROTOCOL_ERROR; the connection goes on.
    io.write_all(&headers_frame(3, b"\x82\x84")).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), stream_end(&mut io, 3))
        .await
        .expect("an answer to the malformed GET");
    assert_eq!(end, StreamEnd::Reset(0x1), "PROTOCOL_ERROR");
    // `:method: GET`, `:scheme: http`, `:path: /` (all indexed), and
    // `:authority: a` (literal, name entry 1).
    io.write_all(&headers_frame(5, b"\x82\x86\x84\x01\x01a"))
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), stream_end(&mut io, 5))
        .await
        .expect("an answer to the GET");
    assert_eq!(end, StreamEnd::Answered(b"Hello from b1\n".to_vec()));

    // A CONNECT with an authority, from hyper's client: 405 too.
    let client = connect(&listen).await;
    let req = Request::builder()
        .method(Method::CONNECT)
        .uri("example.com:443")
        .body(empty())
        .unwrap();
    let (status, headers, _) = send(&client, req).await.unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(headers.get("x-sluice-error").is_some(), "{headers:?}");
    let (status, _, body) = get(&client, &listen, "/").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"Hello from b1\n"[..])
    );
    assert_eq!(b.requests_started(), 2, "only the GETs reached the backend");
}
