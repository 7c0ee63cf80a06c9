//! HTTP/1.1 semantics a proxy must keep, end to end: the real binary
//! between a raw client and a scripted, misbehaving backend. Each test
//! asserts the status, the bytes the client got and how many requests the
//! backend saw.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sluice_testkit::{BackendConn, NodeProcess, RawClient, ScriptedBackend};

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A backend that answers `200 ok` to every request on every connection.
async fn ok_backend() -> ScriptedBackend {
    ScriptedBackend::start(|mut c: BackendConn| async move {
        while c.read_request().await.is_some() {
            if !c.write(OK).await {
                return;
            }
        }
    })
    .await
}

/// One request on a new connection; the response (the connection may
/// close after it).
async fn one(listen: &str, request: &str, method: &str) -> sluice_testkit::RawResponse {
    let mut c = RawClient::connect(listen).await;
    c.send(request).await;
    c.response(method).await.expect("a response")
}

fn sluice_error(r: &sluice_testkit::RawResponse) -> &str {
    r.header("x-sluice-error").unwrap_or("")
}

// === 1. no duplicate delivery ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_backend_took_and_dropped_is_resent_only_if_idempotent() {
    // `/warm` is answered (slowly, so the warm-up opens several pooled
    // connections); `/drop` is read and the connection closed unanswered.
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        while let Some(req) = c.read_request().await {
            if req.target != "/warm" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !c.write(OK).await {
                return;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let listen = listen.clone();
            tokio::spawn(async move {
                one(&listen, "GET /warm HTTP/1.1\r\nhost: a\r\n\r\n", "GET").await
            })
        })
        .collect();
    for w in warm {
        assert_eq!(w.await.unwrap().status, 200);
    }
    assert_eq!(b.connections(), 8, "eight pooled connections");

    for (i, (method, body, sends)) in [
        ("POST", "", 1),
        ("PATCH", "", 1),
        ("POST", "hello", 1),
        ("DELETE", "", 2),
        ("GET", "", 2),
    ]
    .into_iter()
    .enumerate()
    {
        let framing = if body.is_empty() {
            String::new()
        } else {
            format!("content-length: {}\r\n", body.len())
        };
        let r = one(
            &listen,
            &format!("{method} /drop/{i} HTTP/1.1\r\nhost: a\r\n{framing}\r\n{body}"),
            method,
        )
        .await;
        assert_eq!(r.status, 502, "{method}: {}", r.text());
        assert_eq!(sluice_error(&r), "backend_failed");
        assert_eq!(
            b.count(method, &format!("/drop/{i}")),
            sends,
            "{method} {body:?} reached the backend this often"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_never_deliver_a_post_twice_nor_turn_an_answer_into_502() {
    // Every third request id is reset (TCP RST, no answer) the first time
    // it arrives; everything else is answered, keep-alive.
    let answered = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let deliveries = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let (a, d) = (answered.clone(), deliveries.clone());
    let b = ScriptedBackend::start(move |mut c: BackendConn| {
        let (answered, deliveries) = (a.clone(), d.clone());
        async move {
            while let Some(req) = c.read_request().await {
                let id = req.header("x-id").unwrap_or("").to_string();
                let n: u64 = id.parse().unwrap_or(0);
                let first = {
                    let mut d = deliveries.lock().unwrap();
                    let count = d.entry(id.clone()).or_default();
                    *count += 1;
                    *count == 1
                };
                if n.is_multiple_of(3) && first {
                    c.reset();
                    return;
                }
                *answered.lock().unwrap().entry(id).or_default() += 1;
                if !c
                    .write(format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{n}",
                        n.to_string().len()
                    ))
                    .await
                {
                    return;
                }
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let clients: Vec<_> = (0..4u64)
        .map(|client| {
            let listen = listen.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut c = RawClient::connect(&listen).await;
                for i in 0..60u64 {
                    let id = client * 1000 + i;
                    let method = if i % 2 == 0 { "GET" } else { "POST" };
                    let body = if method == "POST" {
                        "content-length: 0\r\n"
                    } else {
                        ""
                    };
                    let req =
                        format!("{method} /r HTTP/1.1\r\nhost: a\r\nx-id: {id}\r\n{body}\r\n");
                    if !c.try_send(&req).await {
                        c = RawClient::connect(&listen).await;
                        c.send(&req).await;
                    }
                    let r = match c.response(method).await {
                        Some(r) => r,
                        None => panic!("request {id}: connection closed without an answer"),
                    };
                    if r.header("connection") == Some("close") {
                        c = RawClient::connect(&listen).await;
                    }
                    got.push((id, method, r.status, r.text()));
                }
                got
            })
        })
        .collect();
    let mut results = Vec::new();
    for c in clients {
        results.extend(c.await.unwrap());
    }
    let answered = answered.lock().unwrap().clone();
    let deliveries = deliveries.lock().unwrap().clone();
    let mut resent_gets = 0;
    for (id, method, status, body) in results {
        let key = id.to_string();
        let sent = deliveries.get(&key).copied().unwrap_or(0);
        match method {
            "POST" => assert_eq!(sent, 1, "POST {id} delivered {sent} times"),
            _ => assert!(sent <= 2, "GET {id} delivered {sent} times"),
        }
        if status == 502 {
            assert!(
                !answered.contains_key(&key),
                "{method} {id}: 502 for an answered request"
            );
            assert_eq!((method, id % 3), ("POST", 0), "only a reset POST gets 502");
        } else {
            assert_eq!((status, body), (200, key.clone()), "{method} {id}");
            assert_eq!(answered.get(&key), Some(&1));
        }
        if method == "GET" && sent == 2 {
            resent_gets += 1;
        }
    }
    assert!(resent_gets > 0, "reset GETs were resent and answered");
}

// === 2. response and request framing ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_wins_over_content_length_and_other_codings_pass_through() {
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        while let Some(req) = c.read_request().await {
            let answer: &[u8] = match req.target.as_str() {
                "/both" => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                "/gzip" => b"HTTP/1.1 200 OK\r\ncontent-encoding: identity\r\ntransfer-encoding: gzip, chunked\r\n\r\n4\r\nGZ\x00\x01\r\n0\r\n\r\n",
                _ => OK.as_bytes(),
            };
            if !c.write(answer).await {
                return;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let mut c = RawClient::connect(&listen).await;
    c.send("GET /both HTTP/1.1\r\nhost: a\r\n\r\n").await;
    let r = c.response("GET").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert_eq!(r.header("content-length"), None, "{:?}", r.headers);
    assert!(!r.truncated);

    c.send("GET /gzip HTTP/1.1\r\nhost: a\r\n\r\n").await;
    let r = c.response("GET").await.unwrap();
    let te = r
        .header("transfer-encoding")
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(te.starts_with("gzip") && te.ends_with("chunked"), "{te}");
    assert_eq!(r.body, b"GZ\x00\x01");

    // The same connection still works: framing stayed in step.
    c.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(c.response("GET").await.unwrap().text(), "ok");

    // A request coding sluice cannot pass on is refused before any backend.
    let r = one(
        &listen,
        "POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST",
    )
    .await;
    assert_eq!(r.status, 501, "{}", r.text());
    assert_eq!(sluice_error(&r), "unsupported_transfer_coding");
    assert_eq!(b.count("POST", "/up"), 0);
}

// === 3. early answers and Expect ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_body_reaches_the_client() {
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        let Some(mut req) = c.read_head().await else { return };
        match req.target.as_str() {
            "/upload" => {
                c.write("HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 9\r\n\r\ntoo large").await;
            }
            "/guarded" => {
                c.write("HTTP/1.1 401 Unauthorized\r\ncontent-length: 4\r\n\r\nwho?").await;
                c.closed_within(Duration::from_secs(1)).await;
            }
            "/continue" => {
                c.write("HTTP/1.1 100 Continue\r\n\r\n").await;
                c.read_body(&mut req).await;
                let body = String::from_utf8_lossy(&req.body).into_owned();
                c.write(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len())).await;
            }
            _ => {}
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;

    // The body would come half a second after the head: the backend's 413
    // is the answer (before this issue: 502).
    let mut c = RawClient::connect(&listen).await;
    c.send("POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 100000\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = c.try_send(vec![b'x'; 100_000]).await;
    let r = c.response("POST").await.expect("the backend's answer");
    assert_eq!((r.status, r.text().as_str()), (413, "too large"));
    assert_eq!(b.count("POST", "/upload"), 1);

    // Expect: 100-continue is the backend's to answer: its refusal comes
    // without a 100 first, and no body byte reaches it.
    let mut c = RawClient::connect(&listen).await;
    c.send(
        "POST /guarded HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
    )
    .await;
    let r = c.response("POST").await.unwrap();
    assert_eq!(r.status, 401, "the refusal, not a 100 from the proxy");
    let seen = b.requests();
    let guarded = seen.iter().find(|r| r.target == "/guarded").unwrap();
    assert_eq!(guarded.header("expect"), Some("100-continue"), "forwarded");

    // A backend that agrees: its 100 reaches the client, then the body goes.
    let mut c = RawClient::connect(&listen).await;
    c.send(
        "POST /continue HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
    )
    .await;
    let started = Instant::now();
    let r = c.response("POST").await.unwrap();
    assert_eq!(r.status, 100);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "not the proxy's own timeout"
    );
    c.send("hello").await;
    let r = c.response("POST").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

// === 4 and 5. stalls and partial answers ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_partial_bodies_end_within_the_request_timeout() {
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        let Some(req) = c.read_head().await else {
            return;
        };
        match req.target.as_str() {
            "/stall" => {
                c.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                    .await;
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
            "/half" => {
                c.write(format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}",
                    "x".repeat(50)
                ))
                .await;
            }
            _ => {
                // A request body that never comes whole: wait for it.
                let mut req = req;
                c.read_body(&mut req).await;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "1s", "1s").await;

    // Headers and 10 of 100 bytes, then silence: cut after the 1 s
    // request timeout, the client keeps what arrived.
    let started = Instant::now();
    let r = one(&listen, "GET /stall HTTP/1.1\r\nhost: a\r\n\r\n", "GET").await;
    let took = started.elapsed();
    assert_eq!(
        (r.status, r.text().as_str(), r.truncated),
        (200, "0123456789", true)
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // The backend closes after 50 of 100 bytes: the client gets the head
    // and the 50 bytes, then its connection ends.
    let r = one(&listen, "GET /half HTTP/1.1\r\nhost: a\r\n\r\n", "GET").await;
    assert_eq!((r.status, r.body.len(), r.truncated), (200, 50, true));

    // A client that stops sending its body: 408 after the request timeout.
    let started = Instant::now();
    let mut c = RawClient::connect(&listen).await;
    c.send("POST /slow HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nabc")
        .await;
    let r = c.response("POST").await.expect("an answer");
    let took = started.elapsed();
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(sluice_error(&r), "request_body_timeout");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

// === 7. Host ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_checked_and_never_dropped() {
    let b = ok_backend().await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    for (request, why) in [
        (
            "GET /two HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
            "two Host headers",
        ),
        ("GET /none HTTP/1.1\r\n\r\n", "HTTP/1.1 without Host"),
    ] {
        let r = one(&listen, request, "GET").await;
        assert_eq!(r.status, 400, "{why}");
        assert_eq!(sluice_error(&r), "bad_request", "{why}");
        assert_eq!(r.header("via"), Some("1.1 sluice"));
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert_eq!(b.count("GET", "/two") + b.count("GET", "/none"), 0);

    let mut c = RawClient::connect(&listen).await;
    c.send("GET /listed HTTP/1.1\r\nhost: shop.example\r\nconnection: host, content-length\r\ncontent-length: 0\r\n\r\n").await;
    assert_eq!(c.response("GET").await.unwrap().status, 200);
    c.send("GET http://other.example/abs?q=1 HTTP/1.1\r\nhost: shop.example\r\n\r\n")
        .await;
    assert_eq!(c.response("GET").await.unwrap().status, 200);
    let seen = b.requests();
    let listed = seen.iter().find(|r| r.target == "/listed").unwrap();
    assert_eq!(
        listed.header("host"),
        Some("shop.example"),
        "Connection: host must not drop Host"
    );
    let abs = seen.iter().find(|r| r.target == "/abs?q=1").unwrap();
    assert_eq!(
        abs.header("host"),
        Some("other.example"),
        "the absolute form's authority"
    );
    assert_eq!(abs.header_count("host"), 1);
}

// === 8, 9, 10. client errors and the rest ===

async fn metric(node: &NodeProcess, name: &str) -> u64 {
    let text = http_client()
        .get(format!("{}/metrics", node.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_bodies_are_the_clients_fault() {
    let b = ok_backend().await;
    let (node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let failed = metric(&node, "sluice_requests_failed_total").await;
    let rejected = metric(&node, "sluice_requests_rejected_total").await;
    for (chunks, what) in [
        ("zz\r\nhello\r\n0\r\n\r\n", "an invalid chunk size"),
        ("5\nhello\n0\n\n", "bare-LF chunk lines"),
        ("3\r\nhello\r\n0\r\n\r\n", "chunk data longer than its size"),
    ] {
        let r = one(
            &listen,
            &format!("POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n{chunks}"),
            "POST",
        )
        .await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(sluice_error(&r), "bad_request_body", "{what}");
    }
    assert_eq!(
        metric(&node, "sluice_requests_rejected_total").await,
        rejected + 3
    );
    assert_eq!(
        metric(&node, "sluice_requests_failed_total").await,
        failed,
        "no backend failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_long_targets_reasons_and_head_lengths() {
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        while let Some(req) = c.read_request().await {
            let answer = match req.target.as_str() {
                "/reason" => "HTTP/1.1 200 Fine Thanks\r\ncontent-length: 2\r\n\r\nok",
                "/head" => "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                "/cached" => {
                    "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\netag: \"v1\"\r\n\r\n"
                }
                _ => OK,
            };
            if !c.write(answer).await {
                return;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;

    let r = one(
        &listen,
        "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
        "CONNECT",
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(sluice_error(&r), "method_not_allowed");

    let long = format!("GET /{} HTTP/1.1\r\nhost: a\r\n\r\n", "a".repeat(9000));
    let r = one(&listen, &long, "GET").await;
    assert_eq!(r.status, 414);
    assert_eq!(sluice_error(&r), "uri_too_long");
    assert_eq!(b.requests().len(), 0, "neither reached the backend");

    let mut c = RawClient::connect(&listen).await;
    c.send("GET /reason HTTP/1.1\r\nhost: a\r\n\r\n").await;
    let r = c.response("GET").await.unwrap();
    assert_eq!((r.status, r.reason.as_str()), (200, "Fine Thanks"));
    c.send("HEAD /head HTTP/1.1\r\nhost: a\r\n\r\n").await;
    let r = c.response("HEAD").await.unwrap();
    assert_eq!(r.header("content-length"), Some("5"), "{:?}", r.headers);
    c.send("GET /cached HTTP/1.1\r\nhost: a\r\nif-none-match: \"v1\"\r\n\r\n")
        .await;
    let r = c.response("GET").await.unwrap();
    assert_eq!(r.status, 304);
    assert_eq!(r.header("content-length"), Some("5"), "{:?}", r.headers);
    c.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(
        c.response("GET").await.unwrap().text(),
        "ok",
        "still in step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_sluice_refuses_get_its_own_answer_and_http_1_2_is_1_1() {
    let b = ok_backend().await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let many: String = (0..120).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let big = format!("x-big: {}\r\n", "b".repeat(20 * 1024));
    let cases = [
        (
            "GET / HTTP/1.1\r\nhost: a\r\nno colon here\r\n\r\n".to_string(),
            400,
            "bad_request",
        ),
        (
            "GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"
                .to_string(),
            400,
            "bad_request",
        ),
        (
            format!("GET / HTTP/1.1\r\nhost: a\r\n{many}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            format!("GET / HTTP/1.1\r\nhost: a\r\n{big}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            "GET / HTTP/3.0\r\nhost: a\r\n\r\n".to_string(),
            505,
            "version_not_supported",
        ),
    ];
    for (request, status, code) in cases {
        let mut c = RawClient::connect(&listen).await;
        let _ = c.try_send(&request).await;
        let r = c.response("GET").await.expect("an answer");
        let what: String = request.chars().take(60).collect();
        assert_eq!((r.status, sluice_error(&r)), (status, code), "{what:?}");
        assert_eq!(r.header("via"), Some("1.1 sluice"));
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert_eq!(b.requests().len(), 0, "none reached the backend");

    // RFC 9112 §2.3: a higher minor version is read as HTTP/1.1.
    let mut c = RawClient::connect(&listen).await;
    c.send("GET /minor HTTP/1.2\r\nhost: a\r\n\r\n").await;
    let r = c.response("GET").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(b.count("GET", "/minor"), 1);
}

// === 6. interim answers; 10. an HTTP/2 preface (h2c) ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_answers_are_forwarded_on_http1_and_an_http2_client_is_served() {
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        while c.read_request().await.is_some() {
            c.write("HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            if !c.write(OK).await {
                return;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;

    let mut c = RawClient::connect(&listen).await;
    for _ in 0..2 {
        c.send("GET /hints HTTP/1.1\r\nhost: a\r\n\r\n").await;
        let hints = c.response("GET").await.unwrap();
        assert_eq!((hints.status, hints.reason.as_str()), (103, "Early Hints"));
        assert_eq!(hints.header("link"), Some("</style.css>; rel=preload"));
        let r = c.response("GET").await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    }
    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
    let r = one(&listen, "GET /hints HTTP/1.0\r\n\r\n", "GET").await;
    assert_eq!(r.status, 200);

    // A prior-knowledge HTTP/2 client (h2c) is served; hyper's HTTP/2
    // server sends no 1xx, so the hints stay behind and the answer comes.
    let tcp = tokio::net::TcpStream::connect(&listen).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://{listen}/hints"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = h2.send_request(req).await.expect("an HTTP/2 answer");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("link").is_none(), "{resp:?}");
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"ok");
    assert_eq!(b.count("GET", "/hints"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        while let Some(req) = c.read_request().await {
            let body = format!("{} {}", req.target, String::from_utf8_lossy(&req.body));
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if !c.write(answer).await {
                return;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let mut c = RawClient::connect(&listen).await;
    // Three requests in one write, the second with a chunked body.
    c.send(
        "GET /1 HTTP/1.1\r\nhost: a\r\n\r\n\
         POST /2 HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
         POST /3 HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nde",
    )
    .await;
    for want in ["/1 ", "/2 abc", "/3 de"] {
        let r = c.response("POST").await.expect("an answer");
        assert_eq!((r.status, r.text().as_str()), (200, want));
    }
}

// === peers that misbehave in other ways ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_sends_past_its_length_loses_that_connection() {
    // The first answer carries 4 bytes more than its Content-Length: the
    // connection is out of step and must not serve another request.
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        let first = c.number() == 0;
        while c.read_request().await.is_some() {
            let answer = if first {
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokJUNK"
            } else {
                OK
            };
            if !c.write(answer).await {
                return;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let mut c = RawClient::connect(&listen).await;
    for i in 0..3 {
        c.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
        let r = c.response("GET").await.expect("an answer");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "request {i}");
    }
    assert_eq!(
        b.connections(),
        2,
        "the lying connection was dropped, the next reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_body_ends_only_its_own_exchange() {
    let b = ScriptedBackend::start(|mut c: BackendConn| async move {
        while let Some(mut req) = c.read_head().await {
            if c.read_body(&mut req).await.is_none() {
                return; // the proxy closed: the body will never be whole
            }
            if !c.write(OK).await {
                return;
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let mut c = RawClient::connect(&listen).await;
    c.send("POST /cut HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n0123456789")
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.count("POST", "/cut") == 0 {
        assert!(Instant::now() < deadline, "the request reached the backend");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(c);
    // The next request gets a connection in step (the cut one is gone).
    let r = one(&listen, "GET /after HTTP/1.1\r\nhost: a\r\n\r\n", "GET").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let after = b
        .requests()
        .into_iter()
        .find(|r| r.target == "/after")
        .unwrap();
    let cut = b
        .requests()
        .into_iter()
        .find(|r| r.target == "/cut")
        .unwrap();
    assert_ne!(
        after.connection, cut.connection,
        "not sent after a half body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_holds_back_a_fast_backend() {
    // 64 MiB is more than every socket buffer between the two together:
    // the backend can write it all only if sluice buffers without bound.
    const SIZE: usize = 64 * 1024 * 1024;
    let written = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let w = written.clone();
    let b = ScriptedBackend::start(move |mut c: BackendConn| {
        let written = w.clone();
        async move {
            if c.read_request().await.is_none() {
                return;
            }
            let mut answer =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n").into_bytes();
            answer.resize(answer.len() + SIZE, b'z');
            if c.write(answer).await {
                written.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let mut c = RawClient::connect(&listen).await;
    c.send("GET /big HTTP/1.1\r\nhost: a\r\n\r\n").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !written.load(std::sync::atomic::Ordering::SeqCst),
        "sluice took the whole body while its client read nothing"
    );
    let r = c.response("GET").await.expect("the answer");
    assert_eq!((r.status, r.body.len(), r.truncated), (200, SIZE, false));
    assert!(r.body.iter().all(|b| *b == b'z'));
}
