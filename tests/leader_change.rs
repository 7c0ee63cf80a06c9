//! Writes across leader changes, end to end on three real `sluice`
//! processes (set-up in `tests/common/cluster.rs`).
//!
//! | test | what |
//! |---|---|
//! | [`a_write_through_a_follower_follows_the_new_leader`] | the leader is stopped (SIGSTOP) and a write goes through a follower at once: it is re-sent to the new leader and succeeds within about an election, not after the 10 s forward timeout; once the old leader runs again every node has the write once |
//! | [`a_write_on_a_cut_off_leader_fails_with_commit_timeout`] | with the test-only fault hook the leader is cut off from both followers: a write sent to it answers 503 `commit_timeout` within a few election timeouts instead of hanging; the others elect a leader and take writes; after healing, the timed-out write is nowhere |
//! | [`removing_a_node_that_is_not_a_member_is_node_not_found`] | `cluster remove-node` of a non-member fails (404 `node_not_found`) and changes nothing; the fault hook is off by default (404 `no_such_route`) |
//!
//! Timing: election timeout 500 ms..1 s ([`sluice_testkit::harness`]); a
//! test takes 5–15 s.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{json, Value};
use sluice_testkit::{NodeOptions, NodeProcess};

/// Sends `SIGSTOP` or `SIGCONT` (`sig` = "STOP" / "CONT") to `node`.
fn signal(node: &NodeProcess, sig: &str) {
    let pid = node.pid().expect("the node runs");
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// Resumes a stopped node when dropped (also when the test fails).
struct Stopped<'a>(&'a NodeProcess);

impl Stopped<'_> {
    fn stop(node: &NodeProcess) -> Stopped<'_> {
        signal(node, "STOP");
        Stopped(node)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// `method path` on `node`'s admin API with its token and a JSON body;
/// the status and the JSON answer (`null` if none). Bounded by 15 s.
async fn admin(
    node: &NodeProcess,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let resp = client
        .request(method.clone(), format!("{}{path}", node.admin_url()))
        .bearer_auth(node.token())
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on node {}: {e}", node.node_id()));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Drops `from`'s Raft RPCs to the nodes `to` (the test-only fault hook).
async fn drop_raft(cluster: &Cluster, from: u64, to: &[u64]) {
    let (status, body) = admin(
        cluster.node(from),
        reqwest::Method::PUT,
        "/v1/debug/faults",
        json!({ "drop_raft_to": to }),
    )
    .await;
    assert_eq!(status, 200, "fault hook on node {from}: {body}");
    assert_eq!(body["drop_raft_to"], json!(to), "{body}");
}

/// The leader `node` names in `cluster status`, if any.
async fn leader_seen_by(node: &NodeProcess) -> Result<u64, String> {
    let s = try_status(node).await?;
    s["leader"]
        .as_u64()
        .ok_or_else(|| format!("node {} names no leader: {s}", node.node_id()))
}

/// Polls until the nodes `ids` name one leader other than `old`.
async fn new_leader(cluster: &Cluster, ids: &[u64], old: u64) -> u64 {
    poll(
        Duration::from_secs(10),
        "the other nodes agree on a new leader",
        || async {
            let mut seen = Vec::new();
            for &id in ids {
                seen.push(leader_seen_by(cluster.node(id)).await?);
            }
            match seen[0] {
                l if l != old && seen.iter().all(|&x| x == l) => Ok(l),
                _ => Err(format!("leaders named: {seen:?}")),
            }
        },
    )
    .await
}

/// The group names in a `/v1/state` answer.
fn groups(state: &Value) -> Vec<String> {
    state["groups"]
        .as_object()
        .map(|g| g.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_follows_the_new_leader() {
    let cluster = Cluster::formed().await;
    let old = cluster.leader().await;
    let followers = cluster.followers(old);
    let via = followers[0];

    let stopped = Stopped::stop(cluster.node(old));
    // At once: the follower still names the stopped leader and forwards to it.
    let started = Instant::now();
    let out = sluice(cluster.node(via), &["group", "create", "web"]).await;
    let took = started.elapsed();
    eprintln!("the write answered after {took:?}");
    assert!(
        out.status.success(),
        "the write through node {via} failed after {took:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // An election (0.5–1 s here), the re-send, and up to 2 s waiting for
    // the stopped node to apply it; never the 10 s forward timeout.
    assert!(
        took < Duration::from_secs(8),
        "the write took {took:?}: it waited for the lost leader"
    );
    let new = new_leader(&cluster, &followers, old).await;
    assert_ne!(new, old);

    drop(stopped);
    cluster.wait_formed(Duration::from_secs(10)).await;
    let state = cluster.wait_same_state(Duration::from_secs(5)).await;
    assert_eq!(groups(&state), vec!["web".to_string()], "{state}");
    // Created once: creating it again is refused.
    let again = sluice(cluster.node(old), &["group", "create", "web"]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_cut_off_leader_fails_with_commit_timeout() {
    let cluster = Cluster::formed_with_fault_hook().await;
    let old = cluster.leader().await;
    let others = cluster.followers(old);
    drop_raft(&cluster, old, &others).await;
    for &id in &others {
        drop_raft(&cluster, id, &[old]).await;
    }

    // Straight to the cut-off leader, which still believes it leads.
    let started = Instant::now();
    let (status, body) = admin(
        cluster.node(old),
        reqwest::Method::POST,
        "/v1/groups",
        json!({ "name": "api" }),
    )
    .await;
    let took = started.elapsed();
    eprintln!("the write answered after {took:?}");
    assert_eq!(status, 503, "after {took:?}: {body}");
    assert_eq!(body["error"]["code"], "commit_timeout", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unknown"),
        "says the outcome is unknown: {message}"
    );
    // It gives up once no majority answered for 2 s (two longest election
    // timeouts here), well before the 7 s any write gets.
    assert!(took < Duration::from_secs(6), "answered after {took:?}");

    // The two others elect a leader and take writes.
    new_leader(&cluster, &others, old).await;
    sluice_ok(cluster.node(others[0]), &["group", "create", "web"]).await;

    // Healed, the old leader follows; the write it could not commit is gone.
    for id in cluster.ids() {
        drop_raft(&cluster, id, &[]).await;
    }
    cluster.wait_formed(Duration::from_secs(10)).await;
    let state = cluster.wait_same_state(Duration::from_secs(5)).await;
    assert_eq!(groups(&state), vec!["web".to_string()], "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_that_is_not_a_member_is_node_not_found() {
    let node = tokio::task::spawn_blocking(|| {
        NodeProcess::start(BIN.as_ref(), NodeOptions::local(1)).expect("start node")
    })
    .await
    .unwrap();
    poll(Duration::from_secs(5), "the node leads", || async {
        leader_seen_by(&node).await.and_then(|l| {
            if l == 1 {
                Ok(())
            } else {
                Err(format!("leader {l}"))
            }
        })
    })
    .await;

    let out = sluice(&node, &["cluster", "remove-node", "9"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "remove-node 9 succeeded: {}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("not a member"), "{stderr}");
    let (status, body) = admin(
        &node,
        reqwest::Method::DELETE,
        "/v1/cluster/nodes/9",
        Value::Null,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "node_not_found", "{body}");
    let members = try_status(&node).await.unwrap()["members"].clone();
    assert_eq!(members.as_array().map(Vec::len), Some(1), "{members}");

    // The fault hook exists only where the config enables it.
    let (status, body) = admin(
        &node,
        reqwest::Method::PUT,
        "/v1/debug/faults",
        json!({ "drop_raft_to": [2] }),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "no_such_route", "{body}");
}
