//! A node restarted (even killed) comes back with every acknowledged write,
//! before its listeners accept traffic: from the log alone, and from a
//! snapshot and the log after it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sluice_testkit::{NodeOptions, NodeProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_keeps_every_acknowledged_write() {
    let b = backend("ecs01", Duration::ZERO).await;
    let (mut node, url) = cluster_of_one(&["--drain-timeout", "20s"], &[&b], "5s").await;
    cli_ok(&node, &["group", "create", "api", "--no-drain"]).await;
    cli_ok(
        &node,
        &["backend", "add", "api", "10.0.0.7:80", "--weight", "7"],
    )
    .await;
    // Each node logs its own health views when it likes; with checks off
    // the state holds only the writes above.
    for group in ["web", "api"] {
        cli_ok(&node, &["group", "update", group, "--no-health-checks"]).await;
    }
    let before: serde_json::Value = reqwest::get(format!("{}/v1/state", node.admin_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut node = tokio::task::spawn_blocking(move || {
        node.kill();
        node.restart().expect("restart");
        node
    })
    .await
    .unwrap();
    let after: serde_json::Value = reqwest::get(format!("{}/v1/state", node.admin_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before, after);
    // The listener is back as soon as the node is ready.
    let r = reqwest::get(format!("{url}/")).await.unwrap();
    assert_eq!(r.status(), 200);
    node.kill();
}

async fn state_of(node: &NodeProcess) -> Value {
    reqwest::get(format!("{}/v1/state", node.admin_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Adds backends `from..from + n` to group `web`, one acknowledged write
/// each.
async fn add_backends(node: &NodeProcess, from: u32, n: u32) {
    let http = reqwest::Client::new();
    for i in from..from + n {
        let addr = format!("10.1.{}.{}:80", i / 256, i % 256);
        let r = http
            .post(format!("{}/v1/groups/web/backends", node.admin_url()))
            .bearer_auth(node.token())
            .json(&json!({ "addr": addr }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "adding {addr}");
    }
}

async fn kill_and_restart(node: NodeProcess) -> NodeProcess {
    tokio::task::spawn_blocking(move || {
        let mut node = node;
        node.kill();
        node.restart().expect("restart");
        node
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_has_every_write_before_and_after_its_first_snapshot() {
    let mut opts = NodeOptions::local(1);
    opts.extra_toml = "[cluster]\nsnapshot_every = 100\n".into();
    let node = tokio::task::spawn_blocking(move || NodeProcess::start(BIN.as_ref(), opts))
        .await
        .unwrap()
        .expect("start node");
    cli_ok(&node, &["group", "create", "web", "--no-drain"]).await;
    cli_ok(&node, &["group", "update", "web", "--no-health-checks"]).await;

    // Fewer entries than a snapshot takes: the restart applies the log.
    add_backends(&node, 0, 40).await;
    let before = state_of(&node).await;
    let node = kill_and_restart(node).await;
    assert!(!node.log().contains("snapshot built"), "no snapshot yet");
    assert_eq!(state_of(&node).await, before, "from the log alone");

    // Past a snapshot, and writes after it: the restart loads the snapshot
    // and applies the log after it.
    add_backends(&node, 40, 120).await;
    poll(Duration::from_secs(10), "a snapshot", || async {
        match node.log().contains("snapshot built") {
            true => Ok(()),
            false => Err("no `snapshot built` line".to_owned()),
        }
    })
    .await;
    add_backends(&node, 160, 20).await;
    let before = state_of(&node).await;
    let mut node = kill_and_restart(node).await;
    let after = state_of(&node).await;
    assert_eq!(after, before, "from the snapshot and the log after it");
    assert_eq!(
        after["groups"]["web"]["backends"]
            .as_object()
            .map(|b| b.len()),
        Some(180)
    );
    node.kill();
}
