//! Listeners and backends through their life on one node, end to end: a
//! removed listener drains like a backend (R1–R3 for its connections), an
//! updated listener routes new requests by its new settings, a backend in
//! maintenance keeps its connections but takes no new work, and a listener
//! whose port is taken is reported, retried and bound once it is free.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::tunnel::{wait_echoing, Pinger};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use sluice_testkit::{BackendEvent, NodeProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Calls the admin API; returns the status and the JSON answer.
async fn admin(
    node: &NodeProcess,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", node.admin_url()))
        .bearer_auth(node.token())
        .timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin call");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

/// One response read off a raw connection.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A client connection driven by hand, so the test knows it is the same
/// connection from one request to the next.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        Raw {
            s: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, path: &str) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: lifecycle.test\r\n\r\n");
        self.s
            .write_all(req.as_bytes())
            .await
            .expect("send request");
    }

    /// Sends a GET and reads its answer.
    async fn get(&mut self, path: &str) -> Resp {
        self.send(path).await;
        self.response(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no answer to GET {path}"))
    }

    /// Reads more bytes; false when the connection ended.
    async fn fill(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.s.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) => n > 0,
            Ok(Err(_)) => false,
            Err(_) => panic!("nothing read within the time allowed"),
        }
    }

    /// The next response; `None` when the connection ended first.
    async fn response(&mut self, within: Duration) -> Option<Resp> {
        let until = Instant::now() + within;
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if !self.fill(until).await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = Vec::new();
        if headers
            .get("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    if !self.fill(until).await {
                        return None;
                    }
                };
                let size_line = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .expect("chunk size");
                while self.buf.len() < line_end + 2 + size + 2 {
                    if !self.fill(until).await {
                        return None;
                    }
                }
                body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            let len: usize = headers
                .get("content-length")
                .map(|l| l.parse().unwrap())
                .unwrap_or(0);
            while self.buf.len() < len {
                if !self.fill(until).await {
                    return None;
                }
            }
            body.extend(self.buf.drain(..len));
        }
        Some(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        })
    }

    /// Whether the peer closed the connection within `within` (anything
    /// else read meanwhile fails the test).
    async fn closed_within(&mut self, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(within, self.s.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => panic!("unexpected bytes on a connection that should close"),
            Err(_) => false,
        }
    }
}

/// Whether a new connection to `addr` is refused.
async fn refused(addr: &str) -> bool {
    matches!(
        TcpStream::connect(addr).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Polls `GET /v1/listeners` until `port`'s node 1 shows `status`.
async fn wait_listener_status(
    node: &NodeProcess,
    port: u16,
    status: &str,
    within: Duration,
) -> Value {
    let what = format!("listener {port} {status}");
    poll(within, &what, || async {
        let (_, v) = admin(node, Method::GET, "/v1/listeners", None).await;
        let l = v
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|l| l["port"] == json!(port) && l["state"] == "active")
            })
            .cloned()
            .unwrap_or(Value::Null);
        if l["nodes"][0]["status"] == status {
            Ok(l)
        } else {
            Err(l.to_string())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_listener_drains_its_connections_until_the_deadline() {
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let (node, listen) = node_over(&[&addr], "60s", "3s").await;
    let port = port_of(&listen);

    // An idle kept-alive connection, one with a slow request in flight, and
    // a WebSocket tunnel.
    let mut idle = Raw::connect(&listen).await;
    let first = idle.get("/").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_ne!(first.header("connection"), Some("close"));
    let mut busy = Raw::connect(&listen).await;
    assert_eq!(busy.get("/").await.status, 200);
    busy.send("/?delay=1500ms").await;
    b.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { path } if path == "/?delay=1500ms"),
        Duration::from_secs(5),
    )
    .await
    .expect("the slow request reached the backend");
    // A request that would outlast the drain.
    let mut cut = Raw::connect(&listen).await;
    cut.send("/?delay=10s").await;
    b.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { path } if path == "/?delay=10s"),
        Duration::from_secs(5),
    )
    .await
    .expect("the long request reached the backend");
    let cut = tokio::spawn(async move {
        let r = cut.response(Duration::from_secs(12)).await;
        (r, now_ms(), cut.closed_within(Duration::from_secs(1)).await)
    });
    let pinger = Pinger::start(1, &format!("ws://{listen}/")).await;
    wait_echoing(std::slice::from_ref(&pinger)).await;

    let removed_ms = now_ms();
    let (status, v) = admin(
        &node,
        Method::DELETE,
        &format!("/v1/listeners/{port}"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let deadline = v["drain_deadline_ms"].as_u64().expect("a drain deadline");
    assert!(
        deadline >= removed_ms + 2_900 && deadline <= now_ms() + 3_100,
        "deadline {deadline} is not 3 s after the removal at {removed_ms}"
    );

    // The socket is closed at once: new connections are refused, and an
    // idle kept-alive connection is closed.
    assert!(
        refused(&listen).await,
        "a new connection was accepted after the removal"
    );
    assert!(
        idle.closed_within(Duration::from_millis(500)).await,
        "the idle kept-alive connection stayed open"
    );

    // The port can be added again right away; the new listener serves.
    let (status, v) = admin(
        &node,
        Method::POST,
        "/v1/listeners",
        Some(json!({ "port": port, "group": "web" })),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {v}");
    assert_eq!(v["nodes"][0]["status"], "listening", "{v}");
    let mut fresh = Raw::connect(&listen).await;
    let r = fresh.get("/").await;
    assert_eq!((r.status, r.body.as_str()), (200, "Hello from ecs01\n"));

    // The request in flight completes, and its connection closes after it.
    let r = busy
        .response(Duration::from_secs(3))
        .await
        .expect("the slow request was answered");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "Hello from ecs01\n");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(busy.closed_within(Duration::from_secs(1)).await);

    // The tunnel echoes on until the deadline, then gets Close 1001.
    let log = pinger.finish(Duration::from_secs(8)).await;
    let (code, closed_ms) = log.close.unwrap_or_else(|| panic!("no Close: {log:?}"));
    assert_eq!(code, Some(1001), "{log:?}");
    let late = closed_ms as i64 - deadline as i64;
    assert!(
        (-20..750).contains(&late),
        "the tunnel got its Close {late} ms after the deadline"
    );
    let during = log
        .echoes
        .iter()
        .filter(|&&t| t > removed_ms && t < deadline)
        .count();
    assert!(
        during >= 8,
        "only {during} echoes during the drain: {log:?}"
    );

    // The request still in flight at the deadline gets 500 and a close.
    let (r, answered_ms, closed) = cut.await.unwrap();
    let r = r.expect("the long request was answered");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(r.body.contains("drain"), "{r:?}");
    assert!(closed, "the connection stayed open after its 500");
    let late = answered_ms as i64 - deadline as i64;
    assert!(
        (-20..750).contains(&late),
        "the 500 came {late} ms after the deadline"
    );

    // The old listener's deadline left the new listener's connection alone.
    let r = fresh.get("/").await;
    assert_eq!(r.status, 200);
    assert_ne!(r.header("connection"), Some("close"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_listener_routes_new_requests_by_its_new_settings() {
    let b1 = backend("ecs01", Duration::ZERO).await;
    let b2 = backend("ecs02", Duration::ZERO).await;
    let (node, listen) = node_over(&[&b1.addr().to_string()], "60s", "3s").await;
    let port = port_of(&listen);
    cli_ok(&node, &["group", "create", "blue"]).await;
    cli_ok(&node, &["group", "update", "blue", "--no-health-checks"]).await;
    cli_ok(&node, &["backend", "add", "blue", &b2.addr().to_string()]).await;

    let mut conn = Raw::connect(&listen).await;
    let r = conn.get("/").await;
    assert_eq!((r.status, r.header("x-backend")), (200, Some("ecs01")));

    let (status, v) = admin(
        &node,
        Method::PATCH,
        &format!("/v1/listeners/{port}"),
        Some(json!({ "group": "blue" })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["group"], "blue");

    // The same kept-alive connection: its next request goes to the new
    // group, and the connection stays open.
    let r = conn.get("/").await;
    assert_eq!(
        (r.status, r.header("x-backend")),
        (200, Some("ecs02")),
        "{r:?}"
    );
    assert_ne!(r.header("connection"), Some("close"));
    let mut other = Raw::connect(&listen).await;
    assert_eq!(other.get("/").await.header("x-backend"), Some("ecs02"));

    // A shorter request timeout applies to the next request on it too.
    let (status, v) = admin(
        &node,
        Method::PATCH,
        &format!("/v1/listeners/{port}"),
        Some(json!({ "request_timeout_ms": 1000 })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = Instant::now();
    let r = conn.get("/?delay=3s").await;
    let took = sent.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "504 after {took:?}, expected about 1 s"
    );
    assert_eq!(b1.requests_started(), 1, "the old group got no new request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_in_maintenance_keeps_its_tunnel_and_takes_no_new_work() {
    let b1 = backend("ecs01", Duration::ZERO).await;
    let b2 = backend("ecs02", Duration::ZERO).await;
    // Health checks on: a backend in maintenance must not be probed.
    let (node, url) = cluster_of_one(&["--drain-timeout", "2s"], &[&b1, &b2], "60s").await;
    let listen = url.trim_start_matches("http://").to_string();
    let pinger = Pinger::start(1, &format!("ws://{listen}/")).await;
    wait_echoing(std::slice::from_ref(&pinger)).await;
    let (held, other) = match pinger.backend.as_deref() {
        Some("ecs01") => (&b1, "ecs02"),
        Some("ecs02") => (&b2, "ecs01"),
        x => panic!("tunnel to {x:?}"),
    };
    let path = format!("/v1/groups/web/backends/{}", held.addr());
    // Probed before maintenance.
    let (_, v) = admin(&node, Method::GET, &path, None).await;
    assert!(v["health"]["local"].is_object(), "not probed yet: {v}");

    let (status, v) = admin(
        &node,
        Method::PATCH,
        &path,
        Some(json!({ "maintenance": true })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = admin(&node, Method::GET, &path, None).await;
    assert!(
        v["health"]["local"].is_null(),
        "a backend in maintenance is still probed: {v}"
    );
    assert_eq!(v["tunnels"], 1, "{v}");

    let client = http_client();
    for _ in 0..10 {
        let resp = client.get(format!("{url}/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-backend"], other);
    }
    // Longer than the group's drain timeout: nothing drains or closes it.
    let before = pinger.echoes();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let echoed = pinger.echoes() - before;
    assert!(echoed >= 10, "only {echoed} echoes in 3 s of maintenance");

    let (status, v) = admin(
        &node,
        Method::PATCH,
        &path,
        Some(json!({ "maintenance": false })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let resp = client.get(format!("{url}/")).send().await.unwrap();
        seen.push(resp.headers()["x-backend"].to_str().unwrap().to_string());
    }
    assert!(
        seen.iter().any(|b| b == held.name()),
        "back from maintenance but no new work: {seen:?}"
    );
    let before = pinger.echoes();
    poll(
        Duration::from_millis(700),
        "the tunnel stopped echoing",
        || async {
            if pinger.echoes() > before {
                Ok(())
            } else {
                Err("no echo".to_string())
            }
        },
    )
    .await;
    pinger.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_on_a_taken_port_is_reported_retried_and_bound_once_free() {
    let b = backend("ecs01", Duration::ZERO).await;
    let (node, _) = node_over(&[&b.addr().to_string()], "60s", "3s").await;
    let taken = std::net::TcpListener::bind((node.data_address(), 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("{}:{port}", node.data_address());

    let (status, v) = admin(
        &node,
        Method::POST,
        "/v1/listeners",
        Some(json!({ "port": port, "group": "web" })),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {v}");
    assert_eq!(v["nodes"][0]["status"], "failed", "{v}");
    let detail = v["nodes"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("in use"), "reason: {detail:?}");
    let l = wait_listener_status(&node, port, "failed", Duration::from_secs(1)).await;
    assert!(
        l["nodes"][0]["detail"].as_str().unwrap().contains("in use"),
        "{l}"
    );

    // Still taken across a retry: still failed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    wait_listener_status(&node, port, "failed", Duration::from_secs(1)).await;

    drop(taken);
    let freed = Instant::now();
    // Retries back off (2 s, 4 s, 8 s, ...): the next one is due within 4 s.
    wait_listener_status(&node, port, "listening", Duration::from_secs(6)).await;
    let took = freed.elapsed();
    let mut conn = Raw::connect(&listen).await;
    let r = conn.get("/").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "Hello from ecs01\n"),
        "bound {took:?} after the port was freed"
    );

    let (status, v) = admin(
        &node,
        Method::DELETE,
        &format!("/v1/listeners/{port}"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert!(refused(&listen).await);
}
