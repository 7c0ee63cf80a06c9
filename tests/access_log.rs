//! The access log and the audit line, end to end: the real binary, real
//! sockets, demo backends. One line per request and per tunnel, with the
//! drain it ended under; sluice's own answers carry their code; the log
//! can be turned off, and a bad setting stops the node at start; every
//! admin write, accepted or refused, leaves an audit line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sluice_testkit::{BackendEvent, NodeOptions, NodeProcess};
use tokio_tungstenite::tungstenite::Message;

/// The node's id in these tests: not 1, so a default cannot pass for it.
const NODE: u64 = 3;

/// A node with JSON access lines on its standard output (beside its text
/// logs) and `extra` config.
fn opts(extra: &str) -> NodeOptions {
    let mut o = NodeOptions::local(NODE);
    o.extra_toml = format!("[access_log]\nformat = \"json\"\n{extra}");
    o
}

/// The access lines in the node's output so far (JSON objects with a
/// `kind`), each a whole line.
fn access_lines(node: &NodeProcess) -> Vec<Value> {
    node.log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

/// Sends one more request and waits for its line: lines are written in
/// the order requests end, so every line of what ended before is out.
async fn written_through(node: &NodeProcess, listen: &str) {
    let _ = http_client()
        .get(format!("http://{listen}/written-through"))
        .send()
        .await
        .unwrap();
    lines_for(node, "/written-through", 1).await;
}

/// Waits up to 3 s for `n` access lines whose path is `path`.
async fn lines_for(node: &NodeProcess, path: &str, n: usize) -> Vec<Value> {
    poll(Duration::from_secs(3), "access lines", || {
        let lines: Vec<Value> = access_lines(node)
            .into_iter()
            .filter(|v| v["path"] == path)
            .collect();
        async move {
            if lines.len() >= n {
                Ok(lines)
            } else {
                Err(format!("{} of {n}", lines.len()))
            }
        }
    })
    .await
}

/// The RFC 3339 (UTC, ms) form of Unix ms `ms`.
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The audit lines in the node's output so far.
fn audit_lines(node: &NodeProcess) -> Vec<String> {
    node.log()
        .lines()
        .filter(|l| l.contains("sluice::audit"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_leaves_one_line_with_every_field() {
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let (node, listen) = node_with(opts(""), &[], &[], &[&addr], "10s").await;
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let before = common::now_ms();
    let resp = http_client()
        .get(format!("http://{listen}/hello/world?token=secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let post = http_client()
        .post(format!("http://{listen}/upload"))
        .body("twelve bytes")
        .send()
        .await
        .unwrap();
    let post_status = post.status().as_u16();
    let post_body = post.bytes().await.unwrap();

    let lines = lines_for(&node, "/hello/world", 1).await;
    written_through(&node, &listen).await;
    let lines_again = lines_for(&node, "/hello/world", 1).await;
    assert_eq!(lines_again.len(), 1, "{lines_again:#?}");
    let l = &lines[0];
    // Every key, once (the order is the formatter's unit test's).
    let mut keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = [
        "time",
        "level",
        "node",
        "target",
        "kind",
        "listener",
        "client",
        "method",
        "path",
        "version",
        "status",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "group",
        "backend",
        "error",
        "drain",
        "drain_of",
        "drain_deadline",
        "closed_at_deadline",
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "{l}");
    let time = l["time"].as_str().unwrap();
    let parsed = humantime::parse_rfc3339(time).unwrap();
    let at = parsed.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(at >= before && at <= common::now_ms(), "{time}");
    assert_eq!(time.len(), "2025-01-01T00:00:00.000Z".len(), "{time}");
    assert_eq!(l["node"], NODE);
    assert_eq!(l["kind"], "request");
    assert_eq!(l["listener"], port);
    assert!(
        l["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{l}"
    );
    assert_eq!(l["method"], "GET");
    assert_eq!(l["target"], "sluice::access");
    assert_eq!(l["path"], "/hello/world", "no query by default");
    assert_eq!(l["version"], "HTTP/1.1");
    assert_eq!(l["status"], 200);
    assert_eq!(l["bytes_in"], 0);
    assert_eq!(l["bytes_out"], body.len());
    assert!(l["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(l["group"], "web");
    assert_eq!(l["backend"], addr.as_str());
    for key in [
        "error",
        "drain",
        "drain_of",
        "drain_deadline",
        "closed_at_deadline",
    ] {
        assert_eq!(l[key], Value::Null, "{key}: {l}");
    }
    let p = &lines_for(&node, "/upload", 1).await[0];
    assert_eq!(p["method"], "POST");
    assert_eq!(p["bytes_in"], 12);
    assert_eq!(p["status"], post_status);
    assert_eq!(p["bytes_out"], post_body.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_is_kept_when_asked_for_and_text_lines_read_like_the_logs() {
    let b = backend("ecs01", Duration::ZERO).await;
    let mut o = NodeOptions::local(NODE);
    o.extra_toml = "[access_log]\nquery = true\n".into();
    let (node, listen) = node_with(o, &[], &[], &[&b.addr().to_string()], "10s").await;
    let resp = http_client()
        .get(format!("http://{listen}/q?a=1&b=two"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Text logs, so text access lines: `<time> ACCESS node=<id> …`.
    let line = poll(Duration::from_secs(3), "a text access line", || {
        let found = node
            .log()
            .lines()
            .find(|l| l.contains(" ACCESS "))
            .map(str::to_owned);
        async move { found.ok_or_else(|| "none yet".to_owned()) }
    })
    .await;
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[1..3], ["ACCESS", &format!("node={NODE}")], "{line}");
    // `=` in a value quotes it, so `key=value` splits at the first `=`.
    assert!(words.contains(&r#"path="/q?a=1&b=two""#), "{line}");
    assert!(words.contains(&"status=200"), "{line}");
    assert!(words.contains(&"error=-"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sluice_made_answer_carries_its_code() {
    let (node, listen) = node_with(opts(""), &[], &[], &[], "10s").await;
    let resp = http_client()
        .get(format!("http://{listen}/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-sluice-error"], "no_backend");
    let l = &lines_for(&node, "/nobody", 1).await[0];
    assert_eq!(l["status"], 503);
    assert_eq!(l["error"], "no_backend");
    assert_eq!(l["group"], Value::Null);
    assert_eq!(l["backend"], Value::Null);
    assert!(l["bytes_out"].as_u64().unwrap() > 0, "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_under_a_drain_name_it_and_whether_its_deadline_closed_them() {
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let (node, listen) =
        node_with(opts(""), &["--drain-timeout", "2s"], &[], &[&addr], "60s").await;
    let slow = tokio::spawn(
        http_client()
            .get(format!("http://{listen}/slow?delay=10s"))
            .send(),
    );
    let quick = tokio::spawn(
        http_client()
            .get(format!("http://{listen}/quick?delay=800ms"))
            .send(),
    );
    poll(
        Duration::from_secs(5),
        "both requests at the backend",
        || {
            let n = b.requests_started();
            async move {
                if n >= 2 {
                    Ok(())
                } else {
                    Err(format!("{n}"))
                }
            }
        },
    )
    .await;
    let removed = cli_json(&node, &["backend", "remove", "web", &addr]).await;
    let drain = removed["drain"]["id"].as_u64().expect("a drain id");
    let deadline = removed["drain"]["deadline_ms"]
        .as_u64()
        .expect("a deadline");

    let quick = quick.await.unwrap().unwrap();
    assert_eq!(quick.status(), 200);
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), 500);
    let slow_body = slow.bytes().await.unwrap();

    let s = &lines_for(&node, "/slow", 1).await[0];
    assert_eq!(s["status"], 500);
    assert_eq!(s["error"], "drain_deadline");
    assert_eq!(s["backend"], addr.as_str());
    assert_eq!(s["drain"], format!("d{drain}"));
    assert_eq!(s["drain_of"], "backend");
    assert_eq!(s["drain_deadline"], rfc3339(deadline));
    assert_eq!(s["closed_at_deadline"], true);
    assert_eq!(s["bytes_out"], slow_body.len());
    let ended = humantime::parse_rfc3339(s["time"].as_str().unwrap())
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let late = ended - deadline as i64;
    assert!(
        (0..500).contains(&late),
        "line {late} ms after the deadline"
    );

    let q = &lines_for(&node, "/quick", 1).await[0];
    assert_eq!(q["status"], 200);
    assert_eq!(q["error"], Value::Null);
    assert_eq!(q["drain"], format!("d{drain}"));
    assert_eq!(q["drain_deadline"], rfc3339(deadline));
    assert_eq!(q["closed_at_deadline"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_closed_by_the_drain_deadline_leaves_one_tunnel_line() {
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let (node, listen) =
        node_with(opts(""), &["--drain-timeout", "1s"], &[], &[&addr], "60s").await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{listen}/chat"))
        .await
        .expect("websocket through sluice");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello 1")).await.unwrap();
    let echo = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => break t,
            _ => continue,
        }
    };
    assert!(echo.contains("hello 1"), "{echo}");
    let removed = cli_json(&node, &["backend", "remove", "web", &addr]).await;
    let drain = removed["drain"]["id"].as_u64().expect("a drain id");
    let deadline = removed["drain"]["deadline_ms"]
        .as_u64()
        .expect("a deadline");
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no Close: {other:?}"),
        }
    };
    assert_eq!(code, Some(1001));
    drop(ws);
    b.wait_for(
        |e| matches!(e, BackendEvent::WebSocketCloseReceived { code: Some(1001) }),
        Duration::from_secs(3),
    )
    .await
    .expect("the backend got Close 1001");

    let lines = lines_for(&node, "/chat", 1).await;
    written_through(&node, &listen).await;
    assert_eq!(
        lines_for(&node, "/chat", 1).await.len(),
        1,
        "one line per tunnel"
    );
    let t = &lines[0];
    assert_eq!(t["kind"], "tunnel");
    assert_eq!(t["status"], 101);
    assert_eq!(t["method"], "GET");
    assert_eq!(t["backend"], addr.as_str());
    assert_eq!(t["drain"], format!("d{drain}"));
    assert_eq!(t["drain_of"], "backend");
    assert_eq!(t["drain_deadline"], rfc3339(deadline));
    assert_eq!(t["closed_at_deadline"], true);
    assert_eq!(t["close_code"], 1001);
    assert!(
        t["bytes_in"].as_u64().unwrap() >= "hello 1".len() as u64,
        "{t}"
    );
    assert!(t["bytes_out"].as_u64().unwrap() >= echo.len() as u64, "{t}");
    assert!(t["duration_ms"].as_f64().unwrap() >= 1000.0, "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_access_log_writes_nothing() {
    let b = backend("ecs01", Duration::ZERO).await;
    let (node, listen) = node_with(
        opts("enabled = false\n"),
        &[],
        &[],
        &[&b.addr().to_string()],
        "10s",
    )
    .await;
    for _ in 0..3 {
        let resp = http_client()
            .get(format!("http://{listen}/quiet"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Ten writer periods: an enabled log would have written by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines = access_lines(&node);
    assert!(lines.is_empty(), "{lines:#?}");
    assert!(!node.log().contains("/quiet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_format_stops_the_node_at_start_naming_field_value_and_choices() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{}\"\n[access_log]\nformat = \"xml\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["node", "run", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"access_log.format = "xml" is invalid: expected "json" or "text""#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_leave_audit_lines_accepted_or_refused() {
    let (node, _listen) = node_with(opts(""), &[], &[], &[], "10s").await;
    // node_with created the group and the listener: two accepted writes.
    let created = poll(
        Duration::from_secs(3),
        "the create_group audit line",
        || {
            let line = audit_lines(&node)
                .into_iter()
                .find(|l| has(l, "command", "create_group"));
            async move { line.ok_or_else(|| "none yet".to_owned()) }
        },
    )
    .await;
    assert!(has(&created, "who", &token_id(node.token())), "{created}");
    assert!(has(&created, "method", "POST"), "{created}");
    assert!(has(&created, "path", "/v1/groups"), "{created}");
    assert!(has(&created, "status", "201"), "{created}");
    // The group was the first command after the node's own start-up ones.
    let index: u64 = created
        .split(" index=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("no index: {created}"));
    assert!(index >= 1, "{created}");

    // A write with a wrong token is refused, and audited.
    let resp = http_client()
        .post(format!("{}/v1/groups", node.admin_url()))
        .bearer_auth("not-the-token-at-all")
        .json(&serde_json::json!({"name": "intruder"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let refused = poll(
        Duration::from_secs(3),
        "the refused write's audit line",
        || {
            let line = audit_lines(&node)
                .into_iter()
                .find(|l| has(l, "who", "none"));
            async move { line.ok_or_else(|| "none yet".to_owned()) }
        },
    )
    .await;
    assert!(has(&refused, "status", "401"), "{refused}");
    assert!(has(&refused, "command", "create_group"), "{refused}");
    assert!(has(&refused, "error", "unauthorized"), "{refused}");
    assert!(!refused.contains("index="), "{refused}");
    assert!(
        !node.log().contains(node.token()),
        "the token itself is never logged"
    );
}

/// Whether the text log line has the field `key` with `value` (quoted or
/// not, as tracing writes strings and numbers).
fn has(line: &str, key: &str, value: &str) -> bool {
    line.contains(&format!(" {key}={value}")) || line.contains(&format!(" {key}=\"{value}\""))
}

/// `token:` and the first 8 hex digits of the token's SHA-256.
fn token_id(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("token:{hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_refused_before_it_was_a_request_leaves_a_line_with_its_code() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (node, listen) = node_with(opts(""), &[], &[], &[], "10s").await;
    let mut s = tokio::net::TcpStream::connect(&listen).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nhost: a\r\nno colon here\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let l = &lines_for(&node, "-", 1).await[0];
    assert_eq!(l["status"], 400, "{l}");
    assert_eq!(l["error"], "bad_request", "{l}");
    assert_eq!(l["method"], "-", "{l}");
    assert_eq!(l["version"], "-", "{l}");
    assert_eq!(l["backend"], Value::Null, "{l}");
    assert_eq!(l["client"], s.local_addr().unwrap().to_string(), "{l}");
    assert!(l["duration_ms"].as_f64().unwrap() < 5_000.0, "{l}");
}
