//! The three-node cluster, end to end: three real `sluice` processes (node
//! `i` serving its listeners on `127.0.0.i`), formed with `sluice cluster
//! init` / `join`, driven through the CLI and the admin API, with demo
//! backends and real HTTP/WebSocket clients (set-up in
//! `tests/common/cluster.rs`).
//!
//! What each test checks (rules of `DESIGN.md` §1 and §2):
//!
//! | test | rules |
//! |---|---|
//! | [`formation_one_leader_two_followers_on_every_node`] | C1: one leader, named alike by every node, two followers, all reachable and caught up; `join` works through a follower; a write through a follower is on every node when the call returns |
//! | [`replicated_drain_closes_every_tunnel_at_one_deadline`] | C3, R3, R1: a removal through a follower gives every node the same drain id and `deadline_ms`; the tunnels through all three nodes keep echoing until that deadline, then get Close 1001 within 250 ms of it and within 150 ms of each other; the backend gets three Close 1001 |
//! | [`removal_stops_new_work_on_every_node_when_the_call_returns`] | R1, C2: right after `backend remove` returns (through a follower), no node sends the removed, still draining backend a new request |
//! | [`idle_backend_leaves_every_node_at_once`] | R2, C2: with a 300 s drain and no work anywhere, every node stops listing the backend within 1 s (every node finishes, so the drain completes), and the pooled upstream connections are closed |
//! | [`leader_killed_mid_drain_survivors_still_close_at_the_deadline`] | C3, C1: `kill -9` of the leader mid-drain: a survivor becomes leader, the survivors' tunnels still close at the original deadline, writes through a survivor still succeed |
//! | [`restarted_follower_keeps_the_drain_and_every_write`] | C5, C3, C1: a follower killed and restarted mid-drain shows the same drain id and deadline as soon as it is ready, catches up with a write made while it was down, and in the end every node has every acknowledged write (identical `/v1/state`) |
//! | [`a_removed_listener_closes_every_nodes_tunnels_at_one_deadline`] | C3, R3 for a listener: `listener remove` through a follower stops every node accepting on the port at once; the tunnels through all three nodes keep echoing until the group's deadline (the answer's `drain_deadline_ms`), then get Close 1001 within 250 ms of it and of each other |
//! | [`writes_and_raft_rpcs_need_the_token`] | §4 auth, C1: a write with a wrong token is refused on a follower and on the leader and changes nothing anywhere; `/raft/{vote,append,snapshot}` answer 401 without or with a wrong token |
//!
//! Not covered here: C4 (fail static under a partition) and C6 (consensus
//! health) need fault injection or failing backends; R4–R11 are one-node
//! behaviours covered by `drain_http.rs` and `websocket.rs`.
//!
//! Timing: drains of 3–5 s; every wait is a poll with a deadline; a test
//! takes 5–12 s.
//!
//! Interface assumed beyond the (`[cluster]` config, `cluster
//! init|join|status|remove-node`, forwarding, `/raft/*`):
//! - a node started with `bootstrap = false` answers `/readyz` 200 before it
//!   is initialised or joined (the harness waits for it);
//! - `cluster status`: a member's `addr` is its `advertise` URL verbatim;
//!   `last_applied`/`lag` null means "not known here", and the leader knows
//!   every member's; once formed, every node names the same `term`;
//! - "the call returns once every reachable node routes by the new state"
//!   covers the admin reads (`group list`, `backend list`) of every node;
//! - a restarted node rejoins by itself and answers from its restored state
//!   as soon as `/readyz` is 200;
//! - `/raft/*` check the token before decoding the body: the right token
//!   with a body that is not a Raft message gets neither 401 nor 404;
//! - the CLI's error for a wrong token names the token on stderr (as on one
//!   node), and `/v1/state` needs no token (as on one node).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::tunnel::*;
use common::*;
use serde_json::Value;
use sluice_testkit::{http_get, BackendEvent, DemoBackend, NodeProcess};
use tokio::task::{JoinHandle, JoinSet};

/// Starts a tunnel through each of `nodes` and waits until each has echoed
/// three times.
async fn pingers(cluster: &Cluster, nodes: &[u64]) -> Vec<Pinger> {
    let mut all = Vec::new();
    for &id in nodes {
        all.push(Pinger::start(id, &cluster.ws_url(id, "/chat")).await);
    }
    wait_echoing(&all).await;
    all
}

/// Waits until the backend has received `n` Close 1001 frames.
async fn wait_backend_closes(b: &DemoBackend, n: usize) {
    poll(
        Duration::from_secs(2),
        &format!("{} received {n} Close 1001", b.name()),
        move || async move {
            let seen = b
                .events()
                .iter()
                .filter(|r| {
                    matches!(
                        r.event,
                        BackendEvent::WebSocketCloseReceived { code: Some(1001) }
                    )
                })
                .count();
            if seen >= n {
                Ok(())
            } else {
                Err(format!("{seen} so far"))
            }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// Small helpers.

/// `backend remove web <addr>` on node `via`; returns the answer, checking
/// that the drain's deadline is the removal time plus `timeout_ms` (the
/// leader stamps it while the call runs).
async fn remove_draining(cluster: &Cluster, via: u64, addr: &str, timeout_ms: u64) -> Value {
    let before = now_ms();
    let removed = sluice_json(cluster.node(via), &["backend", "remove", "web", addr]).await;
    let after = now_ms();
    assert_eq!(removed["state"], "draining", "{removed}");
    let deadline = removed["drain"]["deadline_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no drain.deadline_ms: {removed}"));
    assert!(
        deadline >= before + timeout_ms && deadline <= after + timeout_ms,
        "deadline {deadline} is not the removal time ({before}..={after}) + {timeout_ms} ms"
    );
    removed
}

/// Waits for each tunnel's end (until 2 s past `deadline`) and checks it
/// was drained (echoing until the deadline, Close 1001 just after it);
/// returns when each got its Close, by node.
async fn all_closed_at(tunnels: Vec<Pinger>, removed_ms: u64, deadline: u64) -> Vec<(u64, u64)> {
    let mut closes = Vec::new();
    for t in tunnels {
        let node = t.node;
        let wait = Duration::from_millis(deadline.saturating_sub(now_ms()) + 2_000);
        let log = t.finish(wait).await;
        closes.push((node, assert_drained(node, &log, removed_ms, deadline)));
    }
    closes
}

/// Names of the groups `node` lists.
async fn group_names(node: &NodeProcess) -> Vec<String> {
    let v = sluice_json(node, &["group", "list"]).await;
    let mut names: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("group list is not an array: {v}"))
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Sends `GET /?delay=30s` to `base` (a listener's `http://host:port`)
/// until one is running on `target` rather than on `other` (the listener
/// spreads work over the group's backends); returns the requests, to be
/// aborted by the caller.
async fn hold_slow_request(
    target: &DemoBackend,
    other: &DemoBackend,
    base: &str,
) -> Vec<JoinHandle<()>> {
    const PATH: &str = "/?delay=30s";
    let mut held = Vec::new();
    for _ in 0..6 {
        let since = Instant::now();
        let url = format!("{base}{PATH}");
        held.push(tokio::spawn(async move {
            let _ = http_get(&url, Duration::from_secs(40)).await;
        }));
        let started = |b: &DemoBackend| {
            b.events().iter().any(|r| {
                r.at >= since
                    && matches!(&r.event, BackendEvent::RequestStarted { path } if path == PATH)
            })
        };
        let on_target = poll(
            Duration::from_secs(2),
            "the slow request reached a backend",
            move || async move {
                if started(target) {
                    Ok(true)
                } else if started(other) {
                    Ok(false)
                } else {
                    Err("not yet".to_string())
                }
            },
        )
        .await;
        if on_target {
            return held;
        }
    }
    panic!(
        "six slow requests through {base}, none on {}",
        target.name()
    );
}

// ---------------------------------------------------------------------------
// The tests.

/// C1: init + joins (node 3 through node 2, a follower) give one cluster:
/// asked on any node, `cluster status` names the same leader in the same
/// term, the two other nodes as followers, all reachable, caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formation_one_leader_two_followers_on_every_node() {
    let cluster = Cluster::start(3).await;
    cluster.init_and_join(&[(2, 1), (3, 2)]).await;
    // wait_formed checks every answer: members 1, 2, 3 at their advertised
    // URLs, exactly one leader (the same everywhere), the rest followers,
    // all reachable, equal last_applied and lag 0.
    let (leader, answers) = cluster.wait_formed(Duration::from_secs(5)).await;
    assert_eq!(answers.len(), 3);
    for s in &answers {
        let members = s["members"].as_array().unwrap();
        let leaders = members.iter().filter(|m| m["role"] == "leader").count();
        let followers = members.iter().filter(|m| m["role"] == "follower").count();
        assert_eq!((leaders, followers), (1, 2), "{s}");
    }

    // A write through a follower is on every node when the call returns.
    let follower = *cluster.followers(leader).last().unwrap();
    sluice_ok(
        cluster.node(follower),
        &["group", "create", "web", "--drain-timeout", "3s"],
    )
    .await;
    for n in &cluster.nodes {
        assert_eq!(
            group_names(n).await,
            ["web"],
            "node {} right after the write",
            n.node_id()
        );
    }
    // And every node catches up to the same log position and state.
    cluster.wait_formed(Duration::from_secs(5)).await;
    cluster.wait_same_state(Duration::from_secs(3)).await;
}

/// C3 + R3: one drain, one deadline, three nodes closing at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_drain_closes_every_tunnel_at_one_deadline() {
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let cluster = Cluster::web(&["--drain-timeout", "3s"], &[&b]).await;
    let leader = cluster.leader().await;
    let follower = cluster.followers(leader)[0];
    let tunnels = pingers(&cluster, &cluster.ids()).await;

    let removed_ms = now_ms();
    let removed = remove_draining(&cluster, follower, &addr, 3_000).await;
    let deadline = removed["drain"]["deadline_ms"].as_u64().unwrap();
    // C3: every node has the same drain, deadline included; no node has
    // finished, each holding a tunnel.
    for n in &cluster.nodes {
        let list = backend_list(n, "web").await;
        let entry = find_backend(&list, &addr)
            .unwrap_or_else(|| panic!("node {} lost {addr}: {list:?}", n.node_id()));
        assert_eq!(entry["state"], "draining", "node {}: {entry}", n.node_id());
        assert_eq!(
            entry["drain"]["id"],
            removed["drain"]["id"],
            "node {}",
            n.node_id()
        );
        assert_eq!(
            entry["drain"]["deadline_ms"].as_u64(),
            Some(deadline),
            "node {}",
            n.node_id()
        );
        let nodes = entry["drain"]["nodes"].as_array().unwrap();
        let mut ids: Vec<u64> = nodes.iter().filter_map(|d| d["node"].as_u64()).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3], "node {}: {entry}", n.node_id());
        assert!(
            nodes.iter().all(|d| d["finished"] == false),
            "a node holding a tunnel has not finished: {entry}"
        );
    }

    let closes = all_closed_at(tunnels, removed_ms, deadline).await;
    assert_spread(&closes);
    // The backend side of each tunnel got Close 1001 too.
    wait_backend_closes(&b, 3).await;
    // Every node finished, so the drain completes and the backend is gone.
    cluster
        .wait_gone_everywhere(&addr, Duration::from_secs(2))
        .await;
}

/// R1 + C2: when `backend remove` returns, no node sends new work there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_stops_new_work_on_every_node_when_the_call_returns() {
    let removed_b = backend("ecs01", Duration::ZERO).await;
    let kept = backend("ecs02", Duration::ZERO).await;
    let cluster = Cluster::web(&["--drain-timeout", "10s"], &[&removed_b, &kept]).await;
    // Both backends take work through every node.
    for id in cluster.ids() {
        for _ in 0..4 {
            let (status, ..) = http_get(&cluster.url(id, "/"), Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(status, 200);
        }
    }
    assert!(removed_b.requests_started() > 0 && kept.requests_started() > 0);
    // A request in flight on ecs01 keeps its drain going through the burst
    // (so the burst tests "draining takes no new work", not only "gone").
    let held = hold_slow_request(&removed_b, &kept, &cluster.url(1, "")).await;

    let leader = cluster.leader().await;
    let follower = cluster.followers(leader)[0];
    remove_draining(&cluster, follower, &removed_b.addr().to_string(), 10_000).await;
    let removed_before = removed_b.requests_started();
    let kept_before = kept.requests_started();

    // At once, a burst through every node.
    const PER_NODE: u64 = 30;
    let mut burst = JoinSet::new();
    for id in cluster.ids() {
        for _ in 0..PER_NODE {
            let url = cluster.url(id, "/");
            burst.spawn(async move { (id, http_get(&url, Duration::from_secs(10)).await) });
        }
    }
    while let Some(r) = burst.join_next().await {
        let (id, answer) = r.unwrap();
        let (status, headers, body) = answer.unwrap_or_else(|e| panic!("through node {id}: {e:#}"));
        assert_eq!(status, 200, "through node {id}: {body}");
        assert_eq!(headers["x-backend"], "ecs02", "through node {id}");
    }
    assert_eq!(
        removed_b.requests_started(),
        removed_before,
        "R1: the removed backend got new requests after the removal returned"
    );
    assert_eq!(kept.requests_started(), kept_before + 3 * PER_NODE);
    for h in held {
        h.abort();
    }
}

/// R2 + C2: an idle backend's removal completes on every node at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_backend_leaves_every_node_at_once() {
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    // Cluster::web leaves an idle pooled upstream connection on every node.
    let cluster = Cluster::web(&["--drain-timeout", "300s"], &[&b]).await;
    let leader = cluster.leader().await;
    let follower = cluster.followers(leader)[0];

    let removed = sluice_json(cluster.node(follower), &["backend", "remove", "web", &addr]).await;
    assert!(
        removed["state"] == "draining" || removed["state"] == "removed",
        "{removed}"
    );
    // Each node has nothing on it, finishes at once, so the drain completes
    // without waiting for its 300 s.
    let gone = cluster
        .wait_gone_everywhere(&addr, Duration::from_secs(1))
        .await;
    eprintln!("gone from each node after {gone:?}");
    // The idle pooled connections (and any health probe's) were closed.
    let b_ref = &b;
    poll(
        Duration::from_secs(2),
        "every connection to the removed backend is closed",
        move || async move {
            let events = b_ref.events();
            let opened = events
                .iter()
                .filter(|r| matches!(r.event, BackendEvent::ConnectionOpened { .. }))
                .count();
            let closed = events
                .iter()
                .filter(|r| matches!(r.event, BackendEvent::ConnectionClosed { .. }))
                .count();
            if opened == closed {
                Ok(())
            } else {
                Err(format!("{opened} opened, {closed} closed"))
            }
        },
    )
    .await;
    cluster.wait_same_state(Duration::from_secs(3)).await;
}

/// C3 + C1 across a leader failure: the deadline is in the log, not in the
/// leader; the survivors elect a leader and keep taking writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_drain_survivors_still_close_at_the_deadline() {
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let mut cluster = Cluster::web(&["--drain-timeout", "4s"], &[&b]).await;
    let old = cluster.leader().await;
    let survivors = cluster.followers(old);
    let tunnels = pingers(&cluster, &cluster.ids()).await;

    let removed_ms = now_ms();
    let removed = remove_draining(&cluster, survivors[0], &addr, 4_000).await;
    let deadline = removed["drain"]["deadline_ms"].as_u64().unwrap();
    cluster.kill(old).await;

    // A survivor becomes leader; both survivors say so and see the old
    // leader unreachable.
    let c = &cluster;
    let survivors_ref = &survivors;
    let new = poll(
        Duration::from_secs(5),
        "the survivors elect a new leader",
        move || async move {
            let mut named = Vec::new();
            for &id in survivors_ref {
                let s = try_status(c.node(id)).await?;
                let dead = s["members"]
                    .as_array()
                    .and_then(|m| m.iter().find(|m| m["node"] == old))
                    .cloned();
                if dead.as_ref().map(|d| &d["reachable"]) != Some(&Value::Bool(false)) {
                    return Err(format!("node {id} shows the killed node {old} as {dead:?}"));
                }
                named.push(s["leader"].as_u64());
            }
            match named[0] {
                Some(l) if l != old && named.iter().all(|n| *n == Some(l)) => Ok(l),
                _ => Err(format!("survivors name leaders {named:?}")),
            }
        },
    )
    .await;
    assert!(survivors.contains(&new));

    // Writes go on, through the survivor that is not the leader.
    let other = *survivors.iter().find(|&&id| id != new).unwrap();
    sluice_ok(cluster.node(other), &["group", "create", "api"]).await;
    for &id in &survivors {
        assert_eq!(group_names(cluster.node(id)).await, ["api", "web"]);
    }

    // The survivors' tunnels close at the original deadline; the killed
    // node's tunnel simply died with it.
    let mut closes = Vec::new();
    for t in tunnels {
        let node = t.node;
        let wait = Duration::from_millis(deadline.saturating_sub(now_ms()) + 2_000);
        let log = t.finish(wait).await;
        if node != old {
            closes.push((node, assert_drained(node, &log, removed_ms, deadline)));
        }
    }
    assert_eq!(closes.len(), 2);
    assert_spread(&closes);
    wait_backend_closes(&b, 2).await;
    cluster.wait_same_state(Duration::from_secs(3)).await;
}

/// C5: a follower killed and restarted mid-drain restores the drain (same
/// id, same deadline) before it answers, and no acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_follower_keeps_the_drain_and_every_write() {
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let mut cluster = Cluster::web(&["--drain-timeout", "5s"], &[&b]).await;
    let leader = cluster.leader().await;
    let followers = cluster.followers(leader);
    let (restarted, other) = (followers[0], followers[1]);

    // Writes acknowledged before the restart, through both followers.
    sluice_ok(
        cluster.node(restarted),
        &["group", "create", "api", "--no-drain"],
    )
    .await;
    sluice_ok(
        cluster.node(other),
        &["backend", "add", "api", "10.0.0.7:80", "--weight", "7"],
    )
    .await;
    // A tunnel through the leader keeps the drain going until its deadline.
    let tunnel = pingers(&cluster, &[leader]).await.remove(0);

    let removed_ms = now_ms();
    let removed = remove_draining(&cluster, restarted, &addr, 5_000).await;
    let deadline = removed["drain"]["deadline_ms"].as_u64().unwrap();

    cluster.kill(restarted).await;
    // Acknowledged while the follower is down: it must catch up on it.
    sluice_ok(cluster.node(leader), &["group", "create", "down"]).await;
    cluster.restart(restarted).await;
    assert!(
        now_ms() + 500 < deadline,
        "the restart took too long: the drain is (nearly) over, nothing left to check"
    );

    // Ready means restored: the drain as it was, at once.
    let list = backend_list(cluster.node(restarted), "web").await;
    let entry = find_backend(&list, &addr)
        .unwrap_or_else(|| panic!("the restarted node lost {addr}: {list:?}"));
    assert_eq!(entry["state"], "draining", "{entry}");
    assert_eq!(entry["drain"]["id"], removed["drain"]["id"], "{entry}");
    assert_eq!(
        entry["drain"]["deadline_ms"].as_u64(),
        Some(deadline),
        "{entry}"
    );

    // Writes acknowledged after the restart, one through the restarted node.
    sluice_ok(
        cluster.node(restarted),
        &["backend", "add", "api", "10.0.0.8:80"],
    )
    .await;
    sluice_ok(
        cluster.node(other),
        &["group", "create", "ops", "--drain-timeout", "10s"],
    )
    .await;

    // The drain ends at its deadline, as if nothing happened.
    let wait = Duration::from_millis(deadline.saturating_sub(now_ms()) + 2_000);
    let log = tunnel.finish(wait).await;
    assert_drained(leader, &log, removed_ms, deadline);
    cluster
        .wait_gone_everywhere(&addr, Duration::from_secs(3))
        .await;

    // Every acknowledged write on every node; identical states.
    cluster.wait_same_state(Duration::from_secs(5)).await;
    for n in &cluster.nodes {
        assert_eq!(
            group_names(n).await,
            ["api", "down", "ops", "web"],
            "node {}",
            n.node_id()
        );
        let api = backend_list(n, "api").await;
        let weights: Vec<(String, u64)> = api
            .iter()
            .map(|b| {
                (
                    b["addr"].as_str().unwrap().to_string(),
                    b["weight"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            weights,
            [
                ("10.0.0.7:80".to_string(), 7),
                ("10.0.0.8:80".to_string(), 100)
            ],
            "node {}",
            n.node_id()
        );
    }
}

/// §4 auth: the shared token guards admin writes (on any node, forwarded
/// or not) and Raft RPCs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_raft_rpcs_need_the_token() {
    const WRONG: &str = "wrong-token-0123456789abcdef";
    let cluster = Cluster::formed().await;
    let leader = cluster.leader().await;
    let follower = cluster.followers(leader)[0];
    let before = cluster.wait_same_state(Duration::from_secs(3)).await;

    // A wrong token: refused on a follower (which must not forward it on
    // its own credentials) and on the leader.
    for id in [follower, leader] {
        let out = sluice_with_token(cluster.node(id), WRONG, &["group", "create", "evil"]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "node {id} took a wrong token");
        assert!(
            err.contains("token"),
            "node {id}: {err:?} should name the token"
        );
    }
    // No token at all, on the API.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/v1/groups", cluster.node(follower).admin_url()))
        .json(&serde_json::json!({"name": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    // Nothing changed, anywhere.
    for n in &cluster.nodes {
        assert_eq!(
            try_state(n).await.unwrap(),
            before,
            "node {} after refused writes",
            n.node_id()
        );
    }
    // A good write through the same follower is applied everywhere when it
    // returns, and so would anything logged before it: still no `evil`.
    sluice_ok(cluster.node(follower), &["group", "create", "good"]).await;
    for n in &cluster.nodes {
        assert_eq!(group_names(n).await, ["good"], "node {}", n.node_id());
    }

    // Raft RPCs: 401 without a token and with a wrong one; with the right
    // token the route exists (a body that is not a Raft message is refused
    // for what it is, not for the token).
    for n in &cluster.nodes {
        for rpc in ["vote", "append", "snapshot"] {
            let url = format!("{}/raft/{rpc}", n.admin_url());
            let post = |token: Option<&str>| {
                let mut req = http
                    .post(&url)
                    .header("content-type", "application/octet-stream")
                    .body("not a raft message");
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                req.send()
            };
            let none = post(None).await.unwrap().status();
            assert_eq!(none, 401, "POST {url} without a token");
            let wrong = post(Some(WRONG)).await.unwrap().status();
            assert_eq!(wrong, 401, "POST {url} with a wrong token");
            let right = post(Some(n.token())).await.unwrap().status();
            assert!(
                right != 401 && right != 404,
                "POST {url} with the right token answered {right}"
            );
        }
    }
    // The cluster is unharmed by all that.
    cluster.wait_formed(Duration::from_secs(5)).await;
    cluster.wait_same_state(Duration::from_secs(3)).await;
}

/// C4 fail static: a node cut off from the majority (here: the other two
/// are down) keeps serving from its last applied state; writes fail with a
/// clear error instead of hanging; when the others return, it catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_majority_keeps_serving_and_catches_up() {
    let b = backend("ecs01", Duration::ZERO).await;
    let mut cluster = Cluster::web(&["--drain-timeout", "3s"], &[&b]).await;
    let leader = cluster.leader().await;
    let survivor = cluster.followers(leader)[0];
    for id in cluster.ids() {
        if id != survivor {
            cluster.kill(id).await;
        }
    }
    // Still routing by its last state.
    for _ in 0..10 {
        let (status, headers, _) = http_get(&cluster.url(survivor, "/"), Duration::from_secs(2))
            .await
            .expect("listener answers");
        assert_eq!(status, 200);
        assert_eq!(headers["x-backend"], "ecs01");
    }
    // A write cannot commit: a clear error, not a hang.
    let started = Instant::now();
    let out = sluice(cluster.node(survivor), &["group", "create", "api"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("leader") || err.contains("quorum"),
        "clear error: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // Reads still answer locally.
    assert_eq!(
        group_names(cluster.node(survivor)).await,
        vec!["web".to_string()]
    );
    // The others come back; a write through the survivor lands everywhere.
    for id in cluster.ids() {
        if id != survivor {
            cluster.restart(id).await;
        }
    }
    cluster.wait_formed(Duration::from_secs(10)).await;
    sluice_ok(cluster.node(survivor), &["group", "create", "api"]).await;
    let state = cluster.wait_same_state(Duration::from_secs(5)).await;
    assert!(state["groups"]["api"].is_object(), "{state}");
}

/// `cluster remove-node`: the node leaves the membership, and drains stop
/// waiting for its report (a dead node no longer holds removals open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_dead_node_lets_its_drains_complete() {
    let b = backend("ecs01", Duration::ZERO).await;
    let mut cluster = Cluster::web(&["--drain-timeout", "300s"], &[&b]).await;
    let leader = cluster.leader().await;
    let [gone, stays] = {
        let f = cluster.followers(leader);
        [f[0], f[1]]
    };
    cluster.kill(gone).await;
    let addr = b.addr().to_string();
    let removed = sluice_json(cluster.node(stays), &["backend", "remove", "web", &addr]).await;
    assert_eq!(removed["state"], "draining", "{removed}");
    // The live nodes hold nothing and report at once; the dead node never
    // reports: once both live nodes' reports are in, the drain stays open...
    poll(
        Duration::from_secs(5),
        "the live nodes report their part finished",
        || async {
            let list = backend_list(cluster.node(leader), "web").await;
            let Some(b) = find_backend(&list, &addr) else {
                return Err(format!("{addr} is gone already: {list:?}"));
            };
            let nodes = b["drain"]["nodes"].as_array().cloned().unwrap_or_default();
            let finished = |id: u64| {
                nodes
                    .iter()
                    .any(|n| n["node"] == id && n["finished"] == true)
            };
            if finished(leader) && finished(stays) {
                Ok(())
            } else {
                Err(b.to_string())
            }
        },
    )
    .await;
    let list = backend_list(cluster.node(leader), "web").await;
    assert!(find_backend(&list, &addr).is_some());
    // ...until the operator removes the node.
    sluice_ok(
        cluster.node(stays),
        &["cluster", "remove-node", &gone.to_string()],
    )
    .await;
    let st = sluice_json(cluster.node(leader), &["cluster", "status"]).await;
    let members: Vec<u64> = st["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node"].as_u64().unwrap())
        .collect();
    assert!(!members.contains(&gone), "{st}");
    poll(Duration::from_secs(2), "the drain completes", || async {
        let list = backend_list(cluster.node(leader), "web").await;
        match find_backend(&list, &addr) {
            None => Ok(()),
            Some(b) => Err(b.to_string()),
        }
    })
    .await;
}

/// Reads are local by default; `--consistent` goes through the leader and
/// sees every committed write, also on a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_reads_on_a_follower() {
    let cluster = Cluster::formed().await;
    let leader = cluster.leader().await;
    let follower = cluster.followers(leader)[0];
    sluice_ok(cluster.node(leader), &["group", "create", "web"]).await;
    let v = sluice_json(cluster.node(follower), &["group", "list", "--consistent"]).await;
    assert_eq!(v[0]["name"], "web", "{v}");
    let st = sluice_json(
        cluster.node(follower),
        &["cluster", "status", "--consistent"],
    )
    .await;
    assert_eq!(st["leader"].as_u64(), Some(leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_is_never_forwarded_again() {
    // A member passes a request to the one it takes for the leader at most
    // once: members that disagree on who leads (or one whose stopped Raft
    // core still names itself) cannot send a request round in circles.
    let cluster = Cluster::formed().await;
    let leader = cluster.leader().await;
    let follower = cluster.node(cluster.followers(leader)[0]);
    let http = reqwest::Client::new();
    let read = |hop: bool| {
        let mut r = http
            .get(format!("{}/v1/state?consistent=true", follower.admin_url()))
            .bearer_auth(follower.token());
        if hop {
            r = r.header("x-sluice-forwarded", "1");
        }
        r.send()
    };
    let direct = read(false).await.unwrap();
    assert_eq!(
        direct.status(),
        200,
        "a client's read is forwarded to the leader"
    );
    let hop = read(true).await.unwrap();
    assert_eq!(hop.status(), 503);
    let body: Value = hop.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_leader", "{body}");
}

/// C3 for a listener: its removal, made through a follower, closes what is
/// left on every node at one deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_listener_closes_every_nodes_tunnels_at_one_deadline() {
    let b = backend("ecs01", Duration::ZERO).await;
    let cluster = Cluster::web(&["--drain-timeout", "3s"], &[&b]).await;
    let leader = cluster.leader().await;
    let follower = cluster.followers(leader)[0];
    let tunnels = pingers(&cluster, &cluster.ids()).await;

    let port = cluster.port.to_string();
    let removed_ms = now_ms();
    let removed = sluice_json(cluster.node(follower), &["listener", "remove", &port]).await;
    let after = now_ms();
    assert_eq!(removed["state"], "draining", "{removed}");
    let deadline = removed["drain_deadline_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no drain_deadline_ms: {removed}"));
    assert!(
        deadline >= removed_ms + 3_000 && deadline <= after + 3_000,
        "deadline {deadline} is not the removal time ({removed_ms}..={after}) + 3 s"
    );
    // When the call returns, no node accepts on the port any more.
    for id in cluster.ids() {
        let refused = tokio::net::TcpStream::connect((data_address(id), cluster.port)).await;
        assert!(
            refused.is_err(),
            "node {id} still accepts on the removed listener"
        );
    }

    let closes = all_closed_at(tunnels, removed_ms, deadline).await;
    assert_spread(&closes);
}
