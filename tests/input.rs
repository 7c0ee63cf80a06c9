//! Bad input gets a clear answer and changes nothing: CLI values, config
//! files, tokens, and malformed or slow HTTP clients.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use sluice_testkit::{NodeOptions, NodeProcess};

async fn node_with(extra_toml: &str) -> NodeProcess {
    let mut opts = NodeOptions::local(1);
    opts.extra_toml = extra_toml.to_string();
    tokio::task::spawn_blocking(move || NodeProcess::start(BIN.as_ref(), opts).expect("start node"))
        .await
        .unwrap()
}

async fn fails_with(node: &NodeProcess, args: &[&str], needles: &[&str]) {
    let out = cli(node, args).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "sluice {args:?} should fail");
    for n in needles {
        assert!(
            err.contains(n),
            "sluice {args:?}: {err:?} should mention {n:?}"
        );
    }
    assert_eq!(err.trim().lines().count(), 1, "one readable line: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cli_values_name_the_flag_value_and_range() {
    let node = node_with("").await;
    cli_ok(&node, &["group", "create", "web"]).await;
    fails_with(
        &node,
        &["group", "create", "api", "--drain-timeout", "2h"],
        &["--drain-timeout", "2h", "0s..=3600s"],
    )
    .await;
    fails_with(
        &node,
        &["group", "create", "api", "--drain-timeout", "soon"],
        &["--drain-timeout", "soon"],
    )
    .await;
    fails_with(&node, &["group", "create", "Not_OK"], &["Not_OK"]).await;
    fails_with(
        &node,
        &["backend", "add", "web", "10.0.0.1:8080", "--weight", "101"],
        &["--weight", "101", "0..=100"],
    )
    .await;
    fails_with(
        &node,
        &["backend", "add", "web", "10.0.0.1"],
        &["10.0.0.1", "host:port"],
    )
    .await;
    fails_with(
        &node,
        &["listener", "add", "--port", "70000", "--group", "web"],
        &["--port", "70000", "1..=65535"],
    )
    .await;
    fails_with(
        &node,
        &[
            "listener",
            "add",
            "--port",
            "8080",
            "--group",
            "web",
            "--request-timeout",
            "0s",
        ],
        &["--request-timeout", "1s..=600s"],
    )
    .await;
    fails_with(
        &node,
        &["backend", "add", "nope", "10.0.0.1:8080"],
        &["nope"],
    )
    .await;
    fails_with(
        &node,
        &["backend", "remove", "web", "10.9.9.9:80"],
        &["10.9.9.9:80"],
    )
    .await;
    // Nothing of that reached the state.
    let groups = cli_json(&node, &["group", "list"]).await;
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert!(groups[0]["backends"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_right_token() {
    let node = node_with("").await;
    let before = reqwest::get(format!("{}/v1/state", node.admin_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // No token at all: 401 with a JSON error.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/groups", node.admin_url()))
        .json(&serde_json::json!({"name": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    // A wrong token, through the CLI.
    let out = tokio::process::Command::new(BIN)
        .args(["group", "create", "web"])
        .env("SLUICE_NODE", node.admin_url())
        .env("SLUICE_TOKEN", "not-the-token-at-all")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
    let after = reqwest::get(format!("{}/v1/state", node.admin_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(before, after, "a refused write changes nothing");
}

#[tokio::test]
async fn invalid_config_names_file_field_value_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[proxy]\nheader_read_timeout = \"0s\"\n").unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["node", "run", "--config", path.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for n in ["bad.toml", "proxy.header_read_timeout", "0s", "1s..=300s"] {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
}

/// Writes raw bytes to the listener and returns what came back.
fn raw_exchange(port: u16, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_slow_and_oversized_requests_get_4xx() {
    let node = node_with("[proxy]\nheader_read_timeout = \"1s\"\n").await;
    let b = backend("ecs01", Duration::ZERO).await;
    cli_ok(&node, &["group", "create", "web"]).await;
    cli_ok(&node, &["backend", "add", "web", &b.addr().to_string()]).await;
    let port = sluice_testkit::free_port();
    cli_ok(
        &node,
        &[
            "listener",
            "add",
            "--port",
            &port.to_string(),
            "--group",
            "web",
        ],
    )
    .await;

    let answers = tokio::task::spawn_blocking(move || {
        let garbage = raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n", Duration::from_secs(3));
        let big = format!(
            "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let oversized = raw_exchange(port, big.as_bytes(), Duration::from_secs(3));
        let t = Instant::now();
        let slow = raw_exchange(
            port,
            b"GET / HTTP/1.1\r\nhost: x\r\n",
            Duration::from_secs(5),
        );
        (garbage, oversized, slow, t.elapsed())
    })
    .await
    .unwrap();
    assert!(answers.0.starts_with("HTTP/1.1 400"), "{:?}", answers.0);
    assert!(answers.1.starts_with("HTTP/1.1 431"), "{:?}", answers.1);
    assert!(answers.2.starts_with("HTTP/1.1 408"), "{:?}", answers.2);
    assert!(answers.2.contains("via: 1.1 sluice"));
    assert!(
        answers.3 >= Duration::from_millis(900) && answers.3 < Duration::from_secs(3),
        "408 after {:?}",
        answers.3
    );
    // The node is unharmed.
    let r = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
