//! A node whose storage fails (N2: a node whose Raft core stopped reports
//! not ready), with a real full disk, and SIGTERM bounded by the node's
//! stop bounds despite a stalled admin request.
//!
//! Node 3 of a three-node cluster runs with a small tmpfs as its data dir,
//! mounted in a mount namespace of its own (the mount ends with the
//! process). The test fills that tmpfs from inside the namespace and writes
//! through the other nodes until node 3's next sled write fails with ENOSPC
//! and its Raft core stops. Needs root and util-linux (`unshare`,
//! `nsenter`) on Linux; without them the test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{sluice_ok, try_status, Cluster};
use common::BIN;
use sluice_testkit::{NodeOptions, NodeProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Size of node 3's data dir: room for its store, little more.
const TMPFS_MIB: u64 = 8;
/// Node 3's stop timeout: it stays up, not ready, for a quarter of it (3 s)
/// after its Raft core stopped, then stops within the rest.
const STOP_TIMEOUT: Duration = Duration::from_secs(12);
/// A write through a healthy node answers within this; waiting for the
/// stopped node cost each write the 2 s propagation wait.
const QUICK_WRITE: Duration = Duration::from_millis(1500);
/// Writes driven onto the full disk before giving up on node 3 stopping.
const MAX_WRITES: usize = 300;

/// Panics with a clear message unless this process may mount a tmpfs in a
/// mount namespace of its own.
fn require_mount_namespaces() {
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs "$d" && umount "$d" && rmdir "$d""#)
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "this test gives a node a real full disk: it needs root and mount namespaces \
             (unshare --mount, mount -t tmpfs); the probe failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("this test needs util-linux's unshare and nsenter; running unshare: {e}"),
    }
}

/// Three nodes formed into one cluster (node 1 initialised, 2 and 3 joined);
/// node 3's data dir is a `TMPFS_MIB` tmpfs and its stop timeout
/// `STOP_TIMEOUT`.
async fn cluster_with_small_disk_on_node_3() -> Cluster {
    Cluster::formed_with(|opts| {
        if opts.node_id == 3 {
            opts.tmpfs_data_dir_mib = Some(TMPFS_MIB);
            opts.stop_timeout = Some(format!("{}s", STOP_TIMEOUT.as_secs()));
        }
    })
    .await
}

/// Fills `node`'s data dir (the tmpfs in its mount namespace) to the last
/// byte.
fn fill_data_dir(node: &NodeProcess) {
    let pid = node.pid().expect("node 3 runs").to_string();
    let data = node.dir().join("data");
    let out = Command::new("nsenter")
        .args(["-t", &pid, "-m", "--", "dd", "if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", data.join("fill").display()))
        .output()
        .expect("run nsenter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No space left on device"),
        "filling node 3's data dir did not end on a full disk: {} {stderr}",
        out.status
    );
    assert!(
        !data.join("fill").exists(),
        "the fill landed outside node 3's own tmpfs"
    );
}

/// `group create <name>` through node `via`; panics unless it succeeded
/// within [`QUICK_WRITE`].
async fn quick_write(cluster: &Cluster, via: u64, name: &str) {
    let start = Instant::now();
    sluice_ok(cluster.node(via), &["group", "create", name]).await;
    let took = start.elapsed();
    assert!(
        took < QUICK_WRITE,
        "a write through node {via} took {took:?} (want under {QUICK_WRITE:?})"
    );
}

/// `GET /readyz` on `node`: status and body.
async fn readyz(node: &NodeProcess) -> Result<(u16, String), String> {
    let url = format!("{}/readyz", node.admin_url());
    let resp = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

/// Whether node `id`'s process still runs (a zero-wait check).
async fn still_runs(cluster: &mut Cluster, id: u64) -> bool {
    exit_within(cluster, id, Duration::ZERO).await.is_none()
}

/// Waits up to `within` for node `id` to exit, off the async runtime.
async fn exit_within(
    cluster: &mut Cluster,
    id: u64,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let i = usize::try_from(id - 1).unwrap();
    let mut node = cluster.nodes.remove(i);
    let (node, status) = tokio::task::spawn_blocking(move || {
        let status = node.wait_exit(within).expect("wait for the node");
        (node, status)
    })
    .await
    .expect("wait task");
    cluster.nodes.insert(i, node);
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_fills_up_says_why_goes_unready_and_exits_while_writes_stay_quick() {
    require_mount_namespaces();
    let mut cluster = cluster_with_small_disk_on_node_3().await;
    let leader = cluster.leader().await;
    assert_ne!(
        leader, 3,
        "node 3 (the small disk) leads; this test wants it a follower"
    );
    quick_write(&cluster, 1, "before-1").await;
    quick_write(&cluster, 2, "before-2").await;

    fill_data_dir(cluster.node(3));

    // Write through nodes 1 and 2 until node 3's next sled write fails and
    // its Raft core stops: /readyz then says so, while the node is up.
    let mut writes = 0;
    let refusal = loop {
        let (status, body) = readyz(cluster.node(3)).await.unwrap_or_else(|e| {
            panic!("node 3 stopped answering before it reported not ready: {e}")
        });
        if status != 200 {
            break (status, body);
        }
        assert!(
            writes < MAX_WRITES,
            "node 3 is still ready after {writes} writes onto its full disk"
        );
        quick_write(&cluster, 1 + (writes as u64 % 2), &format!("g{writes}")).await;
        writes += 1;
    };
    let noticed = Instant::now();
    let (status, body) = refusal;
    assert_eq!(status, 503, "/readyz on node 3: {body}");
    let body: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/readyz body is not JSON ({e}): {body}"));
    assert_eq!(body["error"]["code"], "raft_stopped", "{body}");
    assert!(body["error"]["field"].is_null(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("No space left on device")),
        "/readyz does not say why: {body}"
    );

    // Meanwhile writes through the healthy nodes do not wait for node 3.
    quick_write(&cluster, 1, "meanwhile-1").await;
    quick_write(&cluster, 2, "meanwhile-2").await;

    // `cluster status` on node 3 answers from itself, saying why.
    let st = try_status(cluster.node(3)).await.expect("status on node 3");
    assert_eq!(st["node"], 3, "{st}");
    assert!(
        st["leader"].is_null(),
        "a stopped node follows no one: {st}"
    );
    assert!(
        st["stopped"]
            .as_str()
            .is_some_and(|s| s.contains("No space left on device")),
        "cluster status on node 3 does not say why its Raft core stopped: {st}"
    );
    assert!(
        still_runs(&mut cluster, 3).await,
        "node 3 exited before the checks above ran while it was up"
    );

    // Then it exits, non-zero, with the code that says "restart me".
    let bound = STOP_TIMEOUT + Duration::from_secs(3);
    let exit = exit_within(&mut cluster, 3, bound.saturating_sub(noticed.elapsed())).await;
    let exit =
        exit.unwrap_or_else(|| panic!("node 3 still runs {bound:?} after its Raft core stopped"));
    assert_eq!(exit.code(), Some(75), "node 3 exited with {exit}");
    let log = cluster.node(3).log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("Raft core stopped"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "want one ERROR line saying the Raft core stopped, got: {errors:#?}"
    );
    assert!(
        errors[0].contains("No space left on device"),
        "the ERROR line does not give the cause: {}",
        errors[0]
    );

    quick_write(&cluster, 1, "after-1").await;
    quick_write(&cluster, 2, "after-2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_node_within_its_stop_bounds_despite_a_stalled_admin_request() {
    // No client connection and no accept grace: the node's drain ends at
    // once, then the admin API's open requests get half of the 5 s the rest
    // of the stop may take.
    let stop_timeout = Duration::from_secs(4);
    let mut opts = NodeOptions::local(1);
    opts.stop_timeout = Some(format!("{}s", stop_timeout.as_secs()));
    opts.accept_grace = Some("0s".into());
    let mut node = tokio::task::spawn_blocking(move || {
        NodeProcess::start(BIN.as_ref(), opts).unwrap_or_else(|e| panic!("start the node: {e:#}"))
    })
    .await
    .unwrap();

    // A client served once on a kept-alive connection, that then sends a
    // write's head and half its body and nothing more.
    let mut stalled = tokio::net::TcpStream::connect(node.admin_addr())
        .await
        .expect("connect to the admin port");
    stalled
        .write_all(b"GET /livez HTTP/1.1\r\nhost: sluice\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    let n = stalled.read(&mut answer).await.expect("read /livez");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let head = format!(
        "POST /v1/groups HTTP/1.1\r\nhost: sluice\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\":",
        node.token()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    // The node reads the head as it arrives; give it a moment to have
    // started the request before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;

    node.signal("TERM").expect("send SIGTERM");
    let bound = stop_timeout + Duration::from_secs(2);
    let (node, exit) = tokio::task::spawn_blocking(move || {
        let exit = node.wait_exit(bound).expect("wait for the node");
        (node, exit)
    })
    .await
    .unwrap();
    let exit = exit.unwrap_or_else(|| {
        panic!("the node still runs {bound:?} after SIGTERM (stop timeout {stop_timeout:?})")
    });
    assert!(exit.success(), "the node exited with {exit}");
    let log = node.log();
    assert!(
        log.contains("admin API requests still open; closing them"),
        "the node did not say what it cut short:\n{log}"
    );
    drop(stalled);
}
