//! Shared set-up for the end-to-end tests: a real `sluice` node process,
//! in-process demo backends, and the CLI run as a real process.

#![allow(dead_code)]

pub mod chromium;
pub mod cluster;
pub mod tunnel;

use std::future::Future;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_testkit::{DemoBackend, DemoBackendConfig, NodeOptions, NodeProcess};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// How often [`poll`] probes.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// Polls `probe` every 25 ms until it answers `Ok`, for at most `within`;
/// panics with `what` and the last `Err` explanation when time runs out.
pub async fn poll<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(why) if start.elapsed() >= within => {
                panic!("{what}: still not so after {within:?}: {why}")
            }
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

pub use sluice_clock::now_ms;

/// Runs the CLI against `node` without blocking the test's runtime.
pub async fn cli(node: &NodeProcess, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env("SLUICE_NODE", node.admin_url())
        .env("SLUICE_TOKEN", node.token());
    // A node with TLS: its members' CA, as `--ca` would give it.
    if let Some(ca) = node.ca_file() {
        command.env("SLUICE_CA", ca);
    }
    command.output().await.expect("run sluice")
}

/// Runs the CLI and insists it succeeded; returns stdout.
pub async fn cli_ok(node: &NodeProcess, args: &[&str]) -> String {
    let out = cli(node, args).await;
    assert!(
        out.status.success(),
        "sluice {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the CLI with `--output json` and parses what it printed.
pub async fn cli_json(node: &NodeProcess, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = cli_ok(node, &all).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

pub async fn backend(name: &str, delay: Duration) -> DemoBackend {
    DemoBackend::start(DemoBackendConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        name: name.to_string(),
        delay,
    })
    .await
    .expect("start demo backend")
}

/// A node with group `web` (drain flags as given), the backends, and a
/// listener; returns the node and the listener's base URL.
pub async fn cluster_of_one(
    drain_flags: &[&str],
    backends: &[&DemoBackend],
    request_timeout: &str,
) -> (NodeProcess, String) {
    let addrs: Vec<String> = backends.iter().map(|b| b.addr().to_string()).collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let (node, listen) = one_node(drain_flags, &[], &addrs, request_timeout).await;
    (node, format!("http://{listen}"))
}

/// A node with group `web` (drain timeout `drain`, health checks off:
/// probes would be requests and connections of their own) over the backends
/// at `addrs`, and a listener with `request_timeout`; returns the node and
/// the listener's `host:port`.
pub async fn node_over(
    addrs: &[&str],
    request_timeout: &str,
    drain: &str,
) -> (NodeProcess, String) {
    one_node(
        &["--drain-timeout", drain],
        &["--no-health-checks"],
        addrs,
        request_timeout,
    )
    .await
}

/// A node, group `web` created with `create_flags` (then updated with
/// `update_flags`, if any) over `addrs`, and a listener; returns the node
/// and the listener's `host:port`.
async fn one_node(
    create_flags: &[&str],
    update_flags: &[&str],
    addrs: &[&str],
    request_timeout: &str,
) -> (NodeProcess, String) {
    let opts = NodeOptions::local(1);
    node_with(opts, create_flags, update_flags, addrs, request_timeout).await
}

/// [`one_node`] for a node started with `opts`.
pub async fn node_with(
    opts: NodeOptions,
    create_flags: &[&str],
    update_flags: &[&str],
    addrs: &[&str],
    request_timeout: &str,
) -> (NodeProcess, String) {
    let node = tokio::task::spawn_blocking(move || {
        NodeProcess::start(BIN.as_ref(), opts).expect("start node")
    })
    .await
    .unwrap();
    let mut create = vec!["group", "create", "web"];
    create.extend_from_slice(create_flags);
    cli_ok(&node, &create).await;
    if !update_flags.is_empty() {
        let mut update = vec!["group", "update", "web"];
        update.extend_from_slice(update_flags);
        cli_ok(&node, &update).await;
    }
    for a in addrs {
        cli_ok(&node, &["backend", "add", "web", a]).await;
    }
    let port = sluice_testkit::free_port().to_string();
    cli_ok(
        &node,
        &[
            "listener",
            "add",
            "--port",
            &port,
            "--group",
            "web",
            "--request-timeout",
            request_timeout,
        ],
    )
    .await;
    (node, format!("127.0.0.1:{port}"))
}

/// Removes a backend through the CLI; returns the drain's deadline (Unix ms)
/// when it drains.
pub async fn remove(node: &NodeProcess, addr: &str) -> Option<u64> {
    let v = cli_json(node, &["backend", "remove", "web", addr]).await;
    v["drain"]["deadline_ms"].as_u64()
}

/// Polls the admin API until the backend is gone from the group.
pub async fn wait_removed(node: &NodeProcess, addr: &str, within: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        let out = cli(node, &["backend", "list", "web", "--output", "json"]).await;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if v.as_array()
            .is_some_and(|a| a.iter().all(|b| b["addr"].as_str() != Some(addr)))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub fn http_client() -> reqwest::Client {
    sluice_testkit::member_tls::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}
