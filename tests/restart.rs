//! A node restarted (even killed) comes back with every acknowledged write,
//! before its listeners accept traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::Duration;

use common::*;

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
