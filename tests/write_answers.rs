//! A write's answer is the truth (N2): what the leader applied, whichever
//! node was asked and however far behind it is; request bodies that would
//! silently fall back to defaults, and updates that change nothing, are
//! refused before they reach the log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use sluice_testkit::{NodeOptions, NodeProcess};

use common::cluster::{data_address, free_port_on, poll, Cluster};
use common::BIN;

async fn one_node() -> NodeProcess {
    tokio::task::spawn_blocking(|| {
        NodeProcess::start(BIN.as_ref(), NodeOptions::local(1)).expect("start node")
    })
    .await
    .unwrap()
}

/// Sends `method path` with a JSON body and the node's token; status and
/// JSON answer.
async fn call(node: &NodeProcess, method: &str, path: &str, body: Value) -> (u16, Value) {
    let http = reqwest::Client::new();
    let r = http
        .request(
            method.parse().unwrap(),
            format!("{}{path}", node.admin_url()),
        )
        .bearer_auth(node.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn revision(node: &NodeProcess) -> u64 {
    let (status, state) = call(node, "GET", "/v1/state", Value::Null).await;
    assert_eq!(status, 200);
    state["revision"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_in_a_body_is_refused_with_the_field_named() {
    let node = one_node().await;
    let (status, body) = call(
        &node,
        "POST",
        "/v1/groups",
        json!({"name": "web", "drain_timeout": 15000}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "unknown_field", "{body}");
    assert_eq!(body["error"]["field"], "drain_timeout", "{body}");
    let (status, _) = call(&node, "GET", "/v1/groups/web", Value::Null).await;
    assert_eq!(status, 404, "nothing was created with the 300 s default");

    // Nested bodies too: a health-check typo.
    let (status, _) = call(&node, "POST", "/v1/groups", json!({"name": "web"})).await;
    assert_eq!(status, 201);
    let (status, body) = call(
        &node,
        "PATCH",
        "/v1/groups/web",
        json!({"health": {"intervall_ms": 1000}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "intervall_ms", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_that_change_nothing_are_refused_before_the_log() {
    let node = one_node().await;
    call(&node, "POST", "/v1/groups", json!({"name": "web"})).await;
    // No probes: their reports would be log entries of their own.
    let (status, _) = call(
        &node,
        "PATCH",
        "/v1/groups/web",
        json!({"health": {"enabled": false}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &node,
        "POST",
        "/v1/groups/web/backends",
        json!({"addr": "127.0.0.1:9"}),
    )
    .await;
    assert_eq!(status, 200);
    let before = revision(&node).await;
    for (method, path) in [
        ("PATCH", "/v1/groups/web"),
        ("PATCH", "/v1/groups/web/backends/127.0.0.1:9"),
        ("PATCH", "/v1/listeners/8080"),
    ] {
        let (status, body) = call(&node, method, path, json!({})).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "nothing_to_update", "{body}");
    }
    assert_eq!(revision(&node).await, before, "nothing reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_dependent_refusals_come_from_the_state_machine() {
    let node = one_node().await;
    call(&node, "POST", "/v1/groups", json!({"name": "web"})).await;
    // Every refusal names what is wrong, with a stable code and status.
    let cases = [
        (
            "DELETE",
            "/v1/groups/web/backends/10.0.0.1:80",
            404,
            "backend_not_found",
        ),
        ("DELETE", "/v1/listeners/8080", 404, "listener_not_found"),
        ("DELETE", "/v1/groups/nope", 404, "group_not_found"),
        ("PATCH", "/v1/listeners/0", 400, "out_of_range"),
    ];
    for (method, path, want, code) in cases {
        let body = if method == "PATCH" {
            json!({"group": "web"})
        } else {
            Value::Null
        };
        let (status, answer) = call(&node, method, path, body).await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (want, &json!(code)),
            "{method} {path}: {answer}"
        );
    }
    // A used group is refused without force, named with what uses it.
    call(
        &node,
        "POST",
        "/v1/groups/web/backends",
        json!({"addr": "127.0.0.1:9"}),
    )
    .await;
    let (status, answer) = call(&node, "DELETE", "/v1/groups/web", Value::Null).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "group_in_use");
    let (status, answer) = call(&node, "DELETE", "/v1/groups/web?force=true", Value::Null).await;
    assert!(status == 200 || status == 202, "{status} {answer}");
}

/// A follower that lags: the leader's entries to it are held back (its
/// heartbeats still go, so it knows its leader and forwards writes to it),
/// so it never applies what it is asked to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_answers_with_what_the_leader_applied() {
    let cluster = Cluster::formed_with_fault_hook().await;
    let leader = cluster.leader().await;
    let follower = cluster.followers(leader)[0];
    let (l, f) = (cluster.node(leader), cluster.node(follower));
    let (status, _) = call(
        l,
        "POST",
        "/v1/groups",
        json!({"name": "web", "drain_timeout_ms": 60000}),
    )
    .await;
    assert_eq!(status, 201);
    call(
        l,
        "PATCH",
        "/v1/groups/web",
        json!({"health": {"enabled": false}}),
    )
    .await;
    call(
        l,
        "POST",
        "/v1/groups/web/backends",
        json!({"addr": "127.0.0.1:9"}),
    )
    .await;
    // The follower has everything so far.
    poll(
        Duration::from_secs(5),
        "the follower has backend 127.0.0.1:9",
        || async {
            let (s, _) = call(f, "GET", "/v1/groups/web/backends/127.0.0.1:9", Value::Null).await;
            if s == 200 {
                Ok(())
            } else {
                Err(format!("{s}"))
            }
        },
    )
    .await;
    let (status, body) = call(
        l,
        "PUT",
        "/v1/debug/faults",
        json!({"hold_entries_to": [follower]}),
    )
    .await;
    assert!(status < 300, "{status} {body}");

    // Each write through the follower is committed by the leader; the
    // answer is the leader's, and names the follower as not caught up.
    let (status, body) = call(
        f,
        "POST",
        "/v1/groups/web/backends",
        json!({"addr": "127.0.0.1:10"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "active", "{body}");
    assert_eq!(body["addr"], "127.0.0.1:10", "{body}");
    assert_eq!(body["pending_nodes"], json!([follower]), "{body}");

    let (status, body) = call(f, "POST", "/v1/groups", json!({"name": "api"})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["name"], "api", "{body}");

    let port = free_port_on(&[data_address(1), data_address(2), data_address(3)]);
    let (status, body) = call(
        f,
        "POST",
        "/v1/listeners",
        json!({"port": port, "group": "web"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["port"], json!(port), "{body}");
    assert_eq!(body["group"], "web", "{body}");

    // A removal of a backend the follower has never seen: the leader has
    // it, so it drains — never 404 from the follower's lagging copy.
    let (status, body) = call(
        f,
        "DELETE",
        "/v1/groups/web/backends/127.0.0.1:10",
        Value::Null,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "draining", "{body}");
    assert!(body["drain"]["deadline_ms"].as_u64().is_some(), "{body}");
    let (status, _) = call(
        f,
        "GET",
        "/v1/groups/web/backends/127.0.0.1:10",
        Value::Null,
    )
    .await;
    assert_eq!(
        status, 404,
        "the follower's own copy still lags: the answer did not come from it"
    );

    // Healed, the follower catches up on its own.
    call(l, "PUT", "/v1/debug/faults", json!({"hold_entries_to": []})).await;
    // The next entry the leader replicates carries what was held back.
    let (status, _) = call(l, "POST", "/v1/groups", json!({"name": "later"})).await;
    assert_eq!(status, 201);
    poll(
        Duration::from_secs(10),
        "the follower catches up",
        || async {
            let (s, b) = call(f, "GET", "/v1/groups/later", Value::Null).await;
            if s == 200 {
                Ok(())
            } else {
                Err(format!("{s} {b}"))
            }
        },
    )
    .await;
    // It applied the removal: the backend drains there, or its drain has
    // already completed everywhere (nothing held it) and it is gone — the
    // leader says which, and the follower's own copy agrees.
    let path = "/v1/groups/web/backends/127.0.0.1:10";
    let (mine, mine_body) = call(f, "GET", path, Value::Null).await;
    let (leaders, leaders_body) =
        call(l, "GET", &format!("{path}?consistent=true"), Value::Null).await;
    assert!(
        (mine == 200 && mine_body["state"] == "draining") || (mine == 404 && leaders == 404),
        "follower: {mine} {mine_body}; leader: {leaders} {leaders_body}"
    );
}

/// A committed write names its log entry and the revision right after it;
/// a refused one names neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_write_names_its_log_index_and_revision() {
    let node = one_node().await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", node.admin_url()))
            .bearer_auth(node.token())
            .json(&body)
            .send()
    };
    let header = |r: &reqwest::Response, name: &str| -> Option<u64> {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().parse().unwrap())
    };
    let first = post("/v1/groups", json!({"name": "web"})).await.unwrap();
    assert_eq!(first.status(), 201);
    let (index1, rev1) = (
        header(&first, "x-sluice-log-index").expect("log index"),
        header(&first, "x-sluice-revision").expect("revision"),
    );
    let second = post("/v1/groups/web/backends", json!({"addr": "127.0.0.1:9"}))
        .await
        .unwrap();
    assert!(second.status().is_success(), "{}", second.status());
    let (index2, rev2) = (
        header(&second, "x-sluice-log-index").unwrap(),
        header(&second, "x-sluice-revision").unwrap(),
    );
    assert!(index2 > index1, "{index1} then {index2}");
    assert!(rev2 > rev1, "{rev1} then {rev2}");
    assert!(revision(&node).await >= rev2);

    let refused = post("/v1/groups", json!({"name": "web"})).await.unwrap();
    assert_eq!(refused.status(), 409);
    assert!(header(&refused, "x-sluice-log-index").is_none());
}
