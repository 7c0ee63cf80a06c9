//! `sluice node check`, the container image's health check: exit 0 for a
//! ready node, 1 with the reason for one that is down, silent or answers
//! something else, 2 for a bad flag.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use sluice_testkit::{NodeOptions, NodeProcess};

/// Runs `sluice node check` against `url`; returns (exit code, stdout, stderr).
async fn check(url: &str, extra: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .args(["node", "check", "--node", url])
        .args(extra)
        .env_remove("SLUICE_NODE")
        .output()
        .await
        .expect("run sluice");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP server on a thread that reads one request and answers `reply`
/// (or nothing at all, holding the connection, when `reply` is empty).
fn one_shot_server(reply: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        if reply.is_empty() {
            std::thread::sleep(Duration::from_secs(5));
        } else {
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_check_exits_0_only_for_a_ready_node() {
    let mut node = tokio::task::spawn_blocking(|| {
        NodeProcess::start(BIN.as_ref(), NodeOptions::local(1)).expect("start node")
    })
    .await
    .unwrap();
    let url = node.admin_url();

    let (code, stdout, stderr) = check(&url, &[]).await;
    assert_eq!(code, 0, "ready node: {stdout}{stderr}");
    assert_eq!(stdout.trim(), format!("sluice node at {url} is ready"));
    let (code, stdout, _) = check(&url, &["--output", "json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ready"], true);

    let node = tokio::task::spawn_blocking(move || {
        node.kill();
        node
    })
    .await
    .unwrap();
    let (code, _, stderr) = check(&url, &[]).await;
    assert_eq!(code, 1, "stopped node: {stderr}");
    assert!(
        stderr.contains(&format!("cannot reach sluice node at {url}")),
        "{stderr}"
    );
    drop(node);

    let unavailable =
        one_shot_server("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    let (code, _, stderr) = check(&unavailable, &[]).await;
    assert_eq!(code, 1, "503: {stderr}");
    assert!(
        stderr.contains("is not ready: /readyz answered 503 Service Unavailable"),
        "{stderr}"
    );

    let silent = one_shot_server("");
    let started = Instant::now();
    let (code, _, stderr) = check(&silent, &["--timeout", "300ms"]).await;
    assert_eq!(code, 1, "silent server: {stderr}");
    assert!(
        stderr.contains("is not ready: no answer within 300ms"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the check took {:?}, its timeout is 300ms",
        started.elapsed()
    );

    let (code, _, stderr) = check(&url, &["--timeout", "2m"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: --timeout = 2m is out of range 100ms..=60s"
    );
}
