//! Certificates as cluster objects, end to end through the CLI against real
//! nodes: `cert add|list|show|update|remove` in table and JSON output; bad
//! input (mismatched key, expired, not PEM, unreadable file) refused with a
//! clear error and nothing stored, an old version kept after a failed
//! update; removal refused while a listener uses the certificate; the key
//! in no CLI output and no API answer; the data dir private (0700) after
//! start; and in a three-node cluster a certificate added on a follower
//! shown by every node with the same version.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::cluster::Cluster;
use common::*;
use serde_json::Value;
use sluice_testkit::{write_pair, NodeOptions, NodeProcess, TestCa};

async fn one_node() -> NodeProcess {
    tokio::task::spawn_blocking(|| {
        NodeProcess::start(BIN.as_ref(), NodeOptions::local(1)).expect("start node")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The CLI's output, both streams.
fn both(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// Runs `args` with `--output json`, insists on exit 1 and returns the
/// error object printed on stderr.
async fn json_failure(node: &NodeProcess, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = cli(node, &all).await;
    assert_eq!(out.status.code(), Some(1), "sluice {all:?}: {}", both(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stderr)));
    v["error"].clone()
}

/// The base64 lines of a PEM key: what must never be printed.
fn key_lines(key_pem: &str) -> Vec<String> {
    key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(String::from)
        .collect()
}

fn assert_no_key(seen: &str, key_pem: &str) {
    for line in key_lines(key_pem) {
        assert!(!seen.contains(&line), "a key line was printed: {seen}");
    }
}

async fn get(node: &NodeProcess, path: &str) -> String {
    reqwest::get(format!("{}{path}", node.admin_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_live_and_die_through_the_cli() {
    let node = one_node().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("sluice test ca");
    let first = ca.leaf(&["www.example.test", "example.test"]);
    let second = ca.leaf(&["www.example.test", "example.test", "127.0.0.1"]);
    let (crt1, key1) = write_pair(dir.path(), "site1", &first).unwrap();
    let (crt2, key2) = write_pair(dir.path(), "site2", &second).unwrap();
    let mut printed = String::new();

    // The data dir, created 0755 by the harness, is private after start.
    let mode = std::fs::metadata(node.dir().join("data"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "data dir mode {mode:o}");
    assert!(node.log().contains("had mode 755"), "{}", node.log());

    let out = cli_ok(
        &node,
        &["cert", "add", "site", "--cert", p(&crt1), "--key", p(&key1)],
    )
    .await;
    assert!(
        out.starts_with("stored certificate site (version "),
        "{out}"
    );
    assert!(out.contains("CN=www.example.test"), "{out}");
    printed.push_str(&out);

    let list = cli_ok(&node, &["cert", "list"]).await;
    let header = list.lines().next().unwrap();
    for col in ["NAME", "SUBJECT/SANS", "ISSUER", "NOT AFTER", "LISTENERS"] {
        assert!(header.contains(col), "{list}");
    }
    let row = list.lines().nth(1).unwrap();
    assert!(row.starts_with("site "), "{list}");
    assert!(row.contains("CN=sluice test ca"), "{list}");
    assert!(
        row.contains("(in 89 days)") || row.contains("(in 90 days)"),
        "{list}"
    );
    printed.push_str(&list);

    let shown = cli_json(&node, &["cert", "show", "site"]).await;
    assert_eq!(shown["name"], "site");
    assert_eq!(shown["subject"], "CN=www.example.test");
    assert_eq!(shown["issuer"], "CN=sluice test ca");
    assert_eq!(
        shown["sans"],
        serde_json::json!(["www.example.test", "example.test"])
    );
    assert_eq!(shown["chain_len"], 1);
    assert_eq!(shown["listeners"], serde_json::json!([]));
    let v1 = shown["version"].as_u64().unwrap();
    let fp1 = shown["fingerprint_sha256"].as_str().unwrap().to_string();
    assert_eq!(fp1.len(), 64);
    for field in ["key_pem", "chain_pem", "key"] {
        assert!(shown.get(field).is_none(), "{shown}");
    }
    printed.push_str(&shown.to_string());

    // A listener terminates TLS with it: removal refused, ports named.
    cli_ok(&node, &["group", "create", "web"]).await;
    let port = sluice_testkit::free_port().to_string();
    let out = cli_ok(
        &node,
        &[
            "listener", "add", "--port", &port, "--group", "web", "--tls", "site",
        ],
    )
    .await;
    assert!(out.contains("TLS site"), "{out}");
    let listeners = cli_ok(&node, &["listener", "list"]).await;
    assert!(
        listeners.lines().next().unwrap().contains("TLS"),
        "{listeners}"
    );
    assert!(listeners.contains(" site "), "{listeners}");
    let shown = cli_json(&node, &["cert", "show", "site"]).await;
    assert_eq!(
        shown["listeners"],
        serde_json::json!([port.parse::<u16>().unwrap()])
    );

    let err = json_failure(&node, &["cert", "remove", "site"]).await;
    assert_eq!(err["code"], "cert_in_use");
    assert!(err["message"].as_str().unwrap().contains(&port), "{err}");
    let out = cli(&node, &["cert", "remove", "site"]).await;
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out.stderr);
    assert!(msg.starts_with("error: ") && msg.contains(&port), "{msg}");
    let status = reqwest::Client::new()
        .delete(format!("{}/v1/certs/site", node.admin_url()))
        .bearer_auth(node.token())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 409);

    // Replaced: a higher version, the new leaf's fingerprint and SANs.
    let updated = cli_json(
        &node,
        &[
            "cert",
            "update",
            "site",
            "--cert",
            p(&crt2),
            "--key",
            p(&key2),
        ],
    )
    .await;
    assert!(updated["version"].as_u64().unwrap() > v1, "{updated}");
    assert_ne!(updated["fingerprint_sha256"], fp1.as_str());
    assert_eq!(updated["sans"][2], "127.0.0.1");
    printed.push_str(&updated.to_string());

    // update needs the certificate to exist; writes need the token.
    let err = json_failure(
        &node,
        &[
            "cert",
            "update",
            "nope",
            "--cert",
            p(&crt2),
            "--key",
            p(&key2),
        ],
    )
    .await;
    assert_eq!(err["code"], "cert_not_found");
    let out = sluice_with_token_output(&node, &["cert", "remove", "site"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(both(&out).contains("--token"), "{}", both(&out));

    // No answer carries a key: the API's reads and the whole state.
    for path in ["/v1/certs", "/v1/certs/site", "/v1/state"] {
        let body = get(&node, path).await;
        assert!(body.contains("site"), "{path}: {body}");
        printed.push_str(&body);
    }
    assert_no_key(&printed, &first.1);
    assert_no_key(&printed, &second.1);

    // Free again once the listener is plain; then gone.
    cli_ok(&node, &["listener", "update", &port, "--plain"]).await;
    let out = cli_ok(&node, &["cert", "remove", "site"]).await;
    assert_eq!(out.trim(), "removed certificate site");
    let list = cli_json(&node, &["cert", "list"]).await;
    assert_eq!(list, serde_json::json!([]));
    let err = json_failure(&node, &["cert", "show", "site"]).await;
    assert_eq!(err["code"], "cert_not_found");
    assert_no_key(&node.log(), &first.1);
    assert_no_key(&node.log(), &second.1);
}

/// The CLI with a wrong token.
async fn sluice_with_token_output(node: &NodeProcess, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env("SLUICE_NODE", node.admin_url())
        .env("SLUICE_TOKEN", "not-the-token-of-this-node")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_clear_error_and_nothing_is_stored() {
    let node = one_node().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("sluice test ca");
    let good = ca.leaf(&["a.test"]);
    let other = ca.leaf(&["a.test"]);
    let expired = ca.expired_leaf(&["a.test"]);
    let (good_crt, good_key) = write_pair(dir.path(), "good", &good).unwrap();
    let (_, other_key) = write_pair(dir.path(), "other", &other).unwrap();
    let (old_crt, old_key) = write_pair(dir.path(), "old", &expired).unwrap();
    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();

    let cases: [(&str, &Path, &Path, &str, &str, &str); 4] = [
        (
            "mismatched key",
            &good_crt,
            &other_key,
            "key_mismatch",
            "key",
            "does not match the certificate",
        ),
        (
            "expired",
            &old_crt,
            &old_key,
            "certificate_expired",
            "cert",
            "the certificate expired on 20",
        ),
        (
            "chain not PEM",
            &not_pem,
            &good_key,
            "invalid_certificate",
            "cert",
            "certificate chain is not PEM",
        ),
        (
            "key not PEM",
            &good_crt,
            &not_pem,
            "invalid_key",
            "key",
            "private key is not PEM",
        ),
    ];
    for (what, crt, key, code, field, says) in cases {
        let args = ["cert", "add", "site", "--cert", p(crt), "--key", p(key)];
        let err = json_failure(&node, &args).await;
        assert_eq!(err["code"], code, "{what}: {err}");
        assert_eq!(err["field"], field, "{what}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(says),
            "{what}: {err}"
        );
        let out = cli(&node, &args).await;
        assert_eq!(out.status.code(), Some(1), "{what}");
        let msg = text(&out.stderr);
        assert!(
            msg.starts_with("error: ")
                && msg.contains(says)
                && msg.contains(&format!("(field: {field})")),
            "{what}: {msg}"
        );
        assert_no_key(&both(&out), &good.1);
        assert_no_key(&both(&out), &other.1);
        assert_eq!(
            cli_json(&node, &["cert", "list"]).await,
            serde_json::json!([]),
            "{what}: nothing stored"
        );
    }

    // The API says 400 too, before anything is proposed.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/certs", node.admin_url()))
        .bearer_auth(node.token())
        .json(&serde_json::json!({"name": "site", "chain_pem": good.0, "key_pem": other.1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body = resp.text().await.unwrap();
    assert!(body.contains("key_mismatch"), "{body}");
    assert_no_key(&body, &other.1);

    // An unreadable file: a usage error naming the flag and the path.
    let missing = dir.path().join("missing.crt");
    let out = cli(
        &node,
        &[
            "cert",
            "add",
            "site",
            "--cert",
            p(&missing),
            "--key",
            p(&good_key),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let msg = text(&out.stderr);
    assert!(msg.contains("--cert") && msg.contains(p(&missing)), "{msg}");

    // A failed update leaves the stored version as it was.
    cli_ok(
        &node,
        &[
            "cert",
            "add",
            "site",
            "--cert",
            p(&good_crt),
            "--key",
            p(&good_key),
        ],
    )
    .await;
    let before = cli_json(&node, &["cert", "show", "site"]).await;
    let err = json_failure(
        &node,
        &[
            "cert",
            "update",
            "site",
            "--cert",
            p(&old_crt),
            "--key",
            p(&old_key),
        ],
    )
    .await;
    assert_eq!(err["code"], "certificate_expired");
    let after = cli_json(&node, &["cert", "show", "site"]).await;
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_added_on_a_follower_shows_on_every_node_with_one_version() {
    let cluster = Cluster::formed().await;
    let leader = cluster.leader().await;
    let follower = cluster.followers(leader)[0];
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("sluice test ca");
    let pair = ca.leaf(&["cluster.example.test"]);
    let (crt, key) = write_pair(dir.path(), "cluster", &pair).unwrap();

    let added = cli_json(
        cluster.node(follower),
        &["cert", "add", "edge", "--cert", p(&crt), "--key", p(&key)],
    )
    .await;
    let version = added["version"].as_u64().unwrap();
    let fingerprint = added["fingerprint_sha256"].clone();
    for id in cluster.ids() {
        let node = cluster.node(id);
        let shown = poll(
            Duration::from_secs(10),
            "the certificate on every node",
            || async {
                let out = cli(node, &["cert", "show", "edge", "--output", "json"]).await;
                if !out.status.success() {
                    return Err(format!("node {id}: {}", both(&out)));
                }
                Ok(serde_json::from_slice::<Value>(&out.stdout).unwrap())
            },
        )
        .await;
        assert_eq!(
            shown["version"].as_u64(),
            Some(version),
            "node {id}: {shown}"
        );
        assert_eq!(shown["fingerprint_sha256"], fingerprint, "node {id}");
        let state = get(node, "/v1/state").await;
        assert_no_key(&state, &pair.1);
    }
}
