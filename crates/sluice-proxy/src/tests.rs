//! In-crate tests that need the actors' private messages (supervision) or
//! a whole data plane (a drain cutting a streaming response). They wait for
//! the event itself (a connection gone, a drain reported), never a fixed
//! time.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sluice_model::{Command, DrainId, DrainPolicy, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::messages::ConnectionMessage;
use crate::{DataPlane, DataPlaneEvents, ProxySettings};

struct NoReports;
impl DataPlaneEvents for NoReports {
    fn drain_finished(&self, _: DrainId, _: &str, _: &str) {}
}

async fn ok_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        bytes::Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one keep-alive GET and reads one response; `None` if the
/// connection is closed.
async fn get(s: &mut TcpStream) -> Option<String> {
    s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn a_crashing_connection_loses_only_itself() {
    let backend = ok_backend().await;
    let port = free_port();
    let settings = ProxySettings {
        node_id: 9001,
        ..ProxySettings::default()
    };
    let dp = DataPlane::start(settings, Arc::new(NoReports))
        .await
        .unwrap();
    let s = one_route(9001, backend, port, DrainPolicy::default(), 5_000);
    dp.apply(Arc::new(s)).await.unwrap();

    let mut a = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut b = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(get(&mut a).await.unwrap().ends_with("ok"));
    assert!(get(&mut b).await.unwrap().ends_with("ok"));

    // Each connection is an actor while it has requests (and for a moment
    // after): the two answered just now.
    let listener = ractor::registry::where_is(format!("node9001-listener-{port}")).unwrap();
    let conns = listener.get_children();
    assert!(!conns.is_empty());
    let crashed = conns[0].clone();
    crashed
        .send_message(ConnectionMessage::Panic)
        .expect("connection alive");

    // Exactly one of the two connections is gone; the other still works.
    let start = std::time::Instant::now();
    while !matches!(crashed.get_status(), ractor::ActorStatus::Stopped) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the crashed connection was not removed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (ra, rb) = (get(&mut a).await, get(&mut b).await);
    assert_eq!(
        [ra.is_some(), rb.is_some()].iter().filter(|x| **x).count(),
        1,
        "{ra:?} {rb:?}"
    );
    // The listener still accepts and serves.
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(get(&mut c).await.unwrap().ends_with("ok"));
    assert_eq!(dp.metrics().connection_crashes.load(Ordering::Relaxed), 1);
    dp.stop().await;
}

/// Sends each `drain_finished` it is told.
struct Finished(Mutex<tokio::sync::mpsc::UnboundedSender<DrainId>>);
impl DataPlaneEvents for Finished {
    fn drain_finished(&self, drain: DrainId, _: &str, _: &str) {
        let _ = self.0.lock().unwrap().send(drain);
    }
}

/// A backend that answers every request with a chunked head and one chunk,
/// then holds the response open.
async fn streaming_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                .await
                .unwrap();
            held.push(s);
        }
    });
    addr
}

// R3 for a response already streaming: at the deadline its connection
// ends, the backend's work ends with it and the drain is reported.
#[tokio::test]
async fn a_drain_deadline_cuts_a_streaming_response_and_the_drain_finishes() {
    let backend = streaming_backend().await;
    let port = free_port();
    let (tx, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let settings = ProxySettings {
        node_id: 9002,
        ..ProxySettings::default()
    };
    let dp = DataPlane::start(settings, Arc::new(Finished(Mutex::new(tx))))
        .await
        .unwrap();
    let mut s = one_route(
        9002,
        backend,
        port,
        DrainPolicy {
            enabled: true,
            timeout_ms: 1_000,
        },
        30_000,
    );
    dp.apply(Arc::new(s.clone())).await.unwrap();

    let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("first") {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the head and first chunk came")
            .unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }

    let removed = Instant::now();
    s.apply(&Command::RemoveBackend {
        group: "web".into(),
        addr: backend.to_string(),
        at: sluice_clock::now_ms(),
    })
    .unwrap();
    dp.apply(Arc::new(s)).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .expect("the connection ended at the deadline")
        .ok();
    let cut = removed.elapsed();
    assert!(
        cut >= Duration::from_millis(900),
        "cut before the deadline: {cut:?}"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("0\r\n\r\n"),
        "no clean end"
    );
    let drain = tokio::time::timeout(Duration::from_secs(2), finished.recv())
        .await
        .expect("the drain was reported finished");
    assert!(drain.is_some());
    dp.stop().await;
}

/// A backend that answers `/404` with 404, `/slow` after 2 s, anything
/// else with 200; every body is `hello`, after reading the request's.
async fn status_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                    if path == "/slow" {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    let mut resp =
                        hyper::Response::new(Full::new(bytes::Bytes::from_static(b"hello")));
                    if path == "/404" {
                        *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends `request` on a new connection (it says `connection: close`);
/// returns the status and the body's length.
async fn exchange(port: u16, request: impl AsRef<str>) -> (u16, usize) {
    let request = request.as_ref();
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().unwrap();
    (status, body.len())
}

// Part of issue 17: what `/metrics` reads of a backend, counted per
// request by status class and sluice's own error code, with body bytes
// each way and both latency histograms.
#[tokio::test]
async fn a_backends_traffic_counts_classes_codes_bytes_and_latency() {
    let backend = status_backend().await;
    let port = free_port();
    let dp = DataPlane::start(
        ProxySettings {
            node_id: 9003,
            ..ProxySettings::default()
        },
        Arc::new(NoReports),
    )
    .await
    .unwrap();
    let s = one_route(9003, backend, port, DrainPolicy::default(), 1_000);
    dp.apply(Arc::new(s)).await.unwrap();
    let addr = backend.to_string();
    assert!(
        dp.backend_traffic("web", &addr).is_none(),
        "no counters before the backend's first request"
    );

    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    let mut bytes_out = 0;
    for _ in 0..3 {
        let (status, len) = exchange(port, get("/")).await;
        assert_eq!((status, len), (200, 5));
        bytes_out += len;
    }
    let post = "POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 11\r\nconnection: close\r\n\r\nhello world";
    bytes_out += exchange(port, post).await.1;
    for _ in 0..2 {
        let (status, len) = exchange(port, get("/404")).await;
        assert_eq!(status, 404);
        bytes_out += len;
    }
    let slow = tokio::spawn(exchange(port, get("/slow")));
    // While it waits, its upstream connection is open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = dp.backend_traffic("web", &addr).unwrap();
    assert!(waiting.connections_open >= 1, "{waiting:?}");
    let (status, len) = slow.await.unwrap();
    assert_eq!(status, 504);
    bytes_out += len;

    let start = Instant::now();
    let t = loop {
        let t = dp.backend_traffic("web", &addr).unwrap();
        if t.total_time.count == 7 || start.elapsed() > Duration::from_secs(5) {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(t.responses_by_class, [0, 4, 0, 2, 1]);
    assert_eq!(t.errors_by_code, vec![("backend_timeout", 1)]);
    assert_eq!(t.bytes_in, 11);
    assert_eq!(t.bytes_out, bytes_out as u64);
    assert_eq!(t.time_to_first_byte.count, 7);
    assert_eq!(t.total_time.count, 7);
    // The 504 came after the 1 s request timeout: above the 1 s bound, at
    // or below 2.5 s (and over 1 s in the sum); the rest were quick.
    assert_eq!(t.total_time.cumulative[8], 6, "{:?}", t.total_time);
    assert_eq!(t.total_time.cumulative[9], 6, "{:?}", t.total_time);
    assert_eq!(t.total_time.cumulative[10], 7, "{:?}", t.total_time);
    assert!(t.total_time.sum_seconds >= 1.0, "{:?}", t.total_time);
    assert_eq!(dp.backend_traffic("web", "127.0.0.1:1"), None);
    dp.stop().await;
}

/// A state of node `node` with group `web` of one backend, `backend`,
/// behind a listener on `port`.
fn one_route(
    node: u64,
    backend: std::net::SocketAddr,
    port: u16,
    drain: DrainPolicy,
    request_timeout_ms: u64,
) -> State {
    let mut s = State::with_nodes([node]);
    for c in [
        Command::CreateGroup {
            name: "web".into(),
            drain,
            slow_start_ms: None,
        },
        Command::AddBackend {
            group: "web".into(),
            addr: backend.to_string(),
            weight: 100,
            at: 0,
        },
        Command::AddListener {
            port,
            group: "web".into(),
            request_timeout_ms,
            tls: vec![],
        },
    ] {
        s.apply(&c).unwrap();
    }
    s
}
