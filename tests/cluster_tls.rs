//! Encrypted cluster traffic end to end, on real processes: nodes whose
//! `[admin.tls]` names a certificate signed by the members' CA (made here,
//! `sluice_testkit::tls`), their admin API and Raft RPCs over TLS, and the
//! CLI with `--ca` (`SLUICE_CA`).
//!
//! | test | what it shows |
//! |---|---|
//! | [`a_tls_cluster_forms_forwards_and_refuses_a_stranger`] | three nodes form over https, a write on a follower is forwarded and shows on every node; `/v1/overview` on a follower, read without a client certificate, reached every member over TLS; a fourth node whose certificate another CA signed cannot join (the error names the certificate), is never listed, never gets the state, and its certificate is refused at the handshake |
//! | [`a_tls_admin_port_refuses_what_cannot_prove_membership`] | plain HTTP to the TLS port fails; a Raft RPC or a forwarded call with the right token but no client certificate gets `403 member_certificate_required` (with a member's certificate it passes that check); the CLI with a wrong or no `--ca` says the certificate is not trusted |

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::Duration;

use common::cluster::{sluice, sluice_ok, try_status, Cluster};
use common::{poll, BIN};
use serde_json::Value;
use sluice_testkit::member_tls::{MemberCa, NodeTls};
use sluice_testkit::{NodeOptions, NodeProcess};

/// Starts node `id` with TLS from `tls` (`bootstrap = false`, `https://`
/// advertised).
async fn start_tls_member(id: u64, token: &str, tls: NodeTls) -> NodeProcess {
    let opts = NodeOptions::cluster_member_tls(id, token, tls);
    tokio::task::spawn_blocking(move || {
        NodeProcess::start(BIN.as_ref(), opts).unwrap_or_else(|e| panic!("start node {id}: {e:#}"))
    })
    .await
    .unwrap()
}

/// An https client trusting only `ca`, presenting `identity` if given.
fn https_client(ca: &NodeTls, identity: Option<&NodeTls>) -> reqwest::Client {
    let pem = std::fs::read(&ca.ca).unwrap();
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
    if let Some(id) = identity {
        let mut both = std::fs::read(&id.cert).unwrap();
        both.extend(std::fs::read(&id.key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&both).unwrap());
    }
    b.build().unwrap()
}

/// The group names `node` has applied (`GET /v1/state`, trusting `ca`).
async fn groups_on(node: &NodeProcess, ca: &NodeTls) -> Result<Vec<String>, String> {
    let url = format!("{}/v1/state", node.admin_url());
    let state: Value = https_client(ca, None)
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    Ok(state["groups"]
        .as_object()
        .map(|g| g.keys().cloned().collect())
        .unwrap_or_default())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_forms_forwards_and_refuses_a_stranger() {
    let dir = tempfile::tempdir().unwrap();
    let members = MemberCa::new(dir.path(), "members").unwrap();
    let other = MemberCa::new(dir.path(), "other").unwrap();
    let token = NodeOptions::local(1).token;
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let tls = members.issue(&format!("node{id}"), &["127.0.0.1"]).unwrap();
        nodes.push(start_tls_member(id, &token, tls).await);
    }
    let member_tls = members.issue("probe", &["127.0.0.1"]).unwrap();
    let cluster = Cluster { nodes, port: 0 };
    for n in &cluster.nodes {
        assert!(n.admin_url().starts_with("https://"), "{}", n.admin_url());
    }
    cluster.init_and_join(&[(2, 1), (3, 1)]).await;
    let (leader, _) = cluster.wait_formed(Duration::from_secs(15)).await;

    // A write on a follower is forwarded to the leader over TLS and shows
    // on every node.
    let follower = cluster.followers(leader)[0];
    sluice_ok(
        cluster.node(follower),
        &["group", "create", "web", "--drain-timeout", "5s"],
    )
    .await;
    for n in &cluster.nodes {
        poll(
            Duration::from_secs(5),
            &format!("node {} shows group web", n.node_id()),
            || async {
                let groups = groups_on(n, &member_tls).await?;
                if groups == ["web"] {
                    Ok(())
                } else {
                    Err(format!("groups {groups:?}"))
                }
            },
        )
        .await;
    }

    // The dashboard's overview, read by an operator (no client
    // certificate) from a follower: that follower read every member's
    // local view over TLS.
    let url = format!("{}/v1/overview", cluster.node(follower).admin_url());
    let overview: Value = https_client(&member_tls, None)
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reached: Vec<(u64, bool, bool)> = overview["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members: {overview}"))
        .iter()
        .map(|m| {
            (
                m["node"].as_u64().unwrap(),
                m["reachable"] == true,
                m["applied"].is_u64(),
            )
        })
        .collect();
    assert_eq!(
        reached,
        [(1, true, true), (2, true, true), (3, true, true)],
        "{overview}"
    );
    assert_eq!(overview["groups"][0]["name"], "web", "{overview}");

    // A fourth node whose certificate another CA signed (and which trusts
    // that CA) is refused: the leader cannot verify it.
    let stranger_tls = other.issue("node4", &["127.0.0.1"]).unwrap();
    let stranger = start_tls_member(4, &token, stranger_tls.clone()).await;
    let out = sluice(
        cluster.node(follower),
        &["cluster", "join", &stranger.admin_url()],
    )
    .await;
    assert!(!out.status.success(), "join of a stranger succeeded");
    let err = stderr(&out);
    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "the join error names the certificate problem: {err}"
    );
    // Its own certificate, presented as a member's, is refused at the
    // handshake (a member trusting its CA cannot talk to the cluster).
    let url = format!("{}/raft/vote", cluster.node(leader).admin_url());
    let sent = https_client(&member_tls, Some(&stranger_tls))
        .post(&url)
        .bearer_auth(&token)
        .body(Vec::new())
        .send()
        .await;
    assert!(
        sent.is_err(),
        "a certificate of another CA got an answer: {sent:?}"
    );
    // Never a member, and never given the state.
    sluice_ok(cluster.node(leader), &["group", "create", "api"]).await;
    for n in &cluster.nodes {
        let s = try_status(n).await.unwrap();
        let ids: Vec<u64> = s["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["node"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [1, 2, 3], "node {} lists {s}", n.node_id());
    }
    poll(
        Duration::from_secs(5),
        "every member has both groups",
        || async {
            for n in &cluster.nodes {
                let g = groups_on(n, &member_tls).await?;
                if g != ["api", "web"] {
                    return Err(format!("node {}: {g:?}", n.node_id()));
                }
            }
            Ok(())
        },
    )
    .await;
    assert_eq!(
        groups_on(&stranger, &stranger_tls).await.unwrap(),
        Vec::<String>::new(),
        "the refused node got state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_admin_port_refuses_what_cannot_prove_membership() {
    let dir = tempfile::tempdir().unwrap();
    let members = MemberCa::new(dir.path(), "members").unwrap();
    let other = MemberCa::new(dir.path(), "other").unwrap();
    let mut opts = NodeOptions::local(1);
    opts.tls = Some(members.issue("node1", &["127.0.0.1"]).unwrap());
    let node = tokio::task::spawn_blocking(move || {
        NodeProcess::start(BIN.as_ref(), opts).unwrap_or_else(|e| panic!("start node: {e:#}"))
    })
    .await
    .unwrap();
    let member = members.issue("member", &["127.0.0.1"]).unwrap();
    let https = node.admin_url();
    let plain = https.replacen("https://", "http://", 1);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let answer = reqwest::Client::new()
        .get(format!("{plain}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(answer.is_err(), "plain HTTP got an answer: {answer:?}");
    let out = sluice(&node, &["group", "list", "--node", &plain]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("use an https:// --node"),
        "{}",
        stderr(&out)
    );

    // The right token without a client certificate: 403 on the Raft RPCs,
    // forwarded writes and any call that says it comes from a member.
    let operator = https_client(&member, None);
    for path in [
        "/raft/vote",
        "/raft/append",
        "/raft/snapshot",
        "/raft/write",
    ] {
        let resp = operator
            .post(format!("{https}{path}"))
            .bearer_auth(node.token())
            .body(Vec::new())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "member_certificate_required",
            "{path}: {body}"
        );
    }
    let resp = operator
        .get(format!("{https}/v1/cluster/status"))
        .header("x-sluice-forwarded", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // The operator's own calls need no certificate.
    let resp = operator
        .get(format!("{https}/v1/cluster/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // With a member's certificate the RPC passes that check: the empty body
    // is refused by the RPC itself.
    let resp = https_client(&member, Some(&member))
        .post(format!("{https}/raft/vote"))
        .bearer_auth(node.token())
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "{:?}", resp.text().await);

    // The CLI: the right CA works; a wrong one, or none (the system's
    // roots), fails naming the certificate.
    let out = sluice(&node, &["group", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let wrong = other.ca_file();
    let out = sluice(&node, &["group", "list", "--ca", wrong.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("certificate not trusted") && stderr(&out).contains("--ca FILE"),
        "{}",
        stderr(&out)
    );
    let out = tokio::process::Command::new(BIN)
        .args(["group", "list", "--node", &https])
        .env_remove("SLUICE_CA")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("certificate not trusted"),
        "{}",
        stderr(&out)
    );
    // A --ca that is not a certificate is refused before anything is sent.
    let out = sluice(
        &node,
        &[
            "group",
            "list",
            "--ca",
            node.config_path().to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca"), "{}", stderr(&out));
}
