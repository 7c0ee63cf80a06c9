//! The upstream side of a forwarded request, against hand-written backends
//! on raw sockets: refused connections, idle connections the backend closed,
//! connection reuse, body framing both ways, and the request target and
//! `Host` the backend sees.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What a raw backend saw: connections accepted and closed by it, and
/// request heads (with bodies) read.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    closed: AtomicUsize,
    requests: Mutex<Vec<String>>,
}

impl Seen {
    /// Waits until the backend closed `n` connections.
    async fn closed(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.closed.load(Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "backend closed fewer than {n}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// How the raw backend answers each request.
#[derive(Clone, Copy)]
enum Answer {
    /// `200 ok`, keep-alive.
    Ok,
    /// `200 ok`, then the backend closes the connection without saying so
    /// (an idle timeout on its side).
    OkThenClose,
    /// `200 ok` to a connection's first request; the second one is read
    /// and the connection closed without an answer (the backend closed it
    /// just as the request went out).
    DropSecond,
    /// `204 No Content`, keep-alive.
    NoContent,
    /// A chunked body in three chunks.
    Chunked,
}

async fn raw_backend(answer: Answer) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            s.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_raw(sock, answer, s.clone()));
        }
    });
    (addr, seen)
}

async fn serve_raw(sock: TcpStream, answer: Answer, seen: Arc<Seen>) {
    let mut r = BufReader::new(sock);
    for served in 0.. {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let body = read_body(&mut r, &head).await;
        head.push_str(&String::from_utf8_lossy(&body));
        seen.requests.lock().unwrap().push(head);
        if let (Answer::DropSecond, 1) = (answer, served) {
            break;
        }
        let out: &[u8] = match answer {
            Answer::Ok | Answer::OkThenClose | Answer::DropSecond => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok"
            }
            Answer::NoContent => b"HTTP/1.1 204 No Content\r\n\r\n",
            Answer::Chunked => {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n"
            }
        };
        if r.get_mut().write_all(out).await.is_err() {
            return;
        }
        if let Answer::OkThenClose = answer {
            break;
        }
    }
    drop(r);
    seen.closed.fetch_add(1, Ordering::SeqCst);
}

/// Sends raw bytes on one client connection and reads one response (head
/// and a body framed by Content-Length or chunked).
async fn exchange(conn: &mut BufReader<TcpStream>, request: &[u8]) -> (u16, String, String) {
    conn.get_mut().write_all(request).await.unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(conn.read_line(&mut line).await.unwrap() > 0, "closed");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status: u16 = head[9..12].parse().unwrap();
    let body = read_body(conn, &head).await;
    (status, head, String::from_utf8(body).unwrap())
}

/// Reads the body `head` announces: Content-Length, chunked, or none.
async fn read_body(r: &mut BufReader<TcpStream>, head: &str) -> Vec<u8> {
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(n) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        body.resize(n, 0);
        r.read_exact(&mut body).await.unwrap();
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await.unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    body
}

async fn connect(listen: &str) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(listen).await.unwrap())
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nhost: shop.example\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_backend_gets_502_backend_failed() {
    let dead = sluice_testkit::free_port();
    let (_node, listen) = node_over(&[&format!("127.0.0.1:{dead}")], "60s", "300s").await;
    let mut c = connect(&listen).await;
    let (status, head, body) = exchange(&mut c, GET).await;
    assert_eq!(status, 502, "{head}");
    assert!(head.contains("x-sluice-error: backend_failed"), "{head}");
    assert!(
        body.contains(&dead.to_string()),
        "names the backend: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_and_an_idle_one_the_backend_closed_is_replaced() {
    let (addr, seen) = raw_backend(Answer::Ok).await;
    let (_node, listen) = node_over(&[&addr], "60s", "300s").await;
    let mut c = connect(&listen).await;
    for _ in 0..20 {
        let (status, _, body) = exchange(&mut c, GET).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    assert_eq!(
        seen.accepted.load(Ordering::SeqCst),
        1,
        "one upstream connection serves them all"
    );

    let (addr, seen) = raw_backend(Answer::OkThenClose).await;
    let (_node, listen) = node_over(&[&addr], "60s", "300s").await;
    let mut c = connect(&listen).await;
    for i in 0..5 {
        let (status, head, body) = exchange(&mut c, GET).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "request {i}: {head}");
        seen.closed(i + 1).await;
    }
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_an_idle_connection_lost_is_sent_again_on_a_new_one() {
    let (addr, seen) = raw_backend(Answer::DropSecond).await;
    let (_node, listen) = node_over(&[&addr], "60s", "300s").await;
    let mut c = connect(&listen).await;
    for i in 0..3 {
        let (status, head, body) = exchange(&mut c, GET).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "request {i}: {head}");
    }
    // Requests 2 and 3 each went out on the pooled connection, which the
    // backend closed unanswered, then again on a new one.
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 3);
    assert_eq!(seen.requests.lock().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_framed_both_ways() {
    let (addr, seen) = raw_backend(Answer::Chunked).await;
    let (_node, listen) = node_over(&[&addr], "60s", "300s").await;
    let mut c = connect(&listen).await;
    // A chunked request body reaches the backend whole; a chunked
    // response body reaches the client whole.
    let (status, _, body) = exchange(
        &mut c,
        b"POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "onetwothree"));
    let (status, _, body) = exchange(
        &mut c,
        b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "onetwothree"));
    let reqs = seen.requests.lock().unwrap().clone();
    assert!(reqs[0].ends_with("\r\n\r\nabcdef"), "{:?}", reqs[0]);
    assert!(reqs[1].ends_with("\r\n\r\nhello"), "{:?}", reqs[1]);

    // An answer without a body leaves the connection usable.
    let (addr, seen) = raw_backend(Answer::NoContent).await;
    let (_node, listen) = node_over(&[&addr], "60s", "300s").await;
    let mut c = connect(&listen).await;
    for _ in 0..3 {
        let (status, _, body) = exchange(&mut c, GET).await;
        assert_eq!((status, body.as_str()), (204, ""));
    }
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_sees_the_origin_form_a_host_and_no_hop_by_hop_headers() {
    let (addr, seen) = raw_backend(Answer::Ok).await;
    let (_node, listen) = node_over(&[&addr], "60s", "300s").await;
    let mut c = connect(&listen).await;
    exchange(
        &mut c,
        b"GET http://shop.example/p?q=1 HTTP/1.1\r\nhost: shop.example\r\nconnection: keep-alive, x-trace\r\nx-trace: 1\r\nkeep-alive: timeout=5\r\nx-keep: yes\r\n\r\n",
    )
    .await;
    let mut c10 = connect(&listen).await;
    c10.get_mut()
        .write_all(b"GET /old HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    c10.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );

    let reqs = seen.requests.lock().unwrap().clone();
    let first = reqs[0].to_ascii_lowercase();
    assert!(first.starts_with("get /p?q=1 http/1.1\r\n"), "{first}");
    assert!(first.contains("x-keep: yes"), "{first}");
    assert!(first.contains("x-forwarded-for: 127.0.0.1"), "{first}");
    for gone in ["x-trace", "keep-alive:", "connection:"] {
        assert!(
            !first.contains(gone),
            "{gone} must not be forwarded: {first}"
        );
    }
    let second = reqs[1].to_ascii_lowercase();
    assert!(second.starts_with("get /old http/1.1\r\n"), "{second}");
    assert!(second.contains(&format!("host: {addr}")), "{second}");
}
