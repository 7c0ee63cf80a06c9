//! The CLI through an object's whole life against a real node: `group
//! delete`, `backend set`, `listener update|remove`, each in table and JSON
//! output; updates that name no change refused before any request; errors as
//! JSON on stderr with `--output json`; a write a dead member has not
//! applied (a warning, exit 0); and the node's token precedence.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use sluice_testkit::{NodeOptions, NodeProcess};

/// An admin address nothing listens on.
const DEAD_NODE: &str = "http://127.0.0.1:1";

async fn one_node() -> NodeProcess {
    tokio::task::spawn_blocking(|| {
        NodeProcess::start(BIN.as_ref(), NodeOptions::local(1)).expect("start node")
    })
    .await
    .unwrap()
}

/// Runs the CLI against the node at `url` with `token`.
async fn cli_at(url: &str, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env("SLUICE_NODE", url)
        .env("SLUICE_TOKEN", token)
        .output()
        .await
        .expect("run sluice")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Insists the command failed with `code` and printed one JSON error line on
/// stderr (nothing on stdout); returns its `error` object.
fn json_error(out: &Output, exit: i32, args: &[&str]) -> Value {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(exit),
        "sluice {args:?}: stdout {:?} stderr {err:?}",
        text(&out.stdout)
    );
    assert!(
        out.stdout.is_empty(),
        "sluice {args:?}: stdout {:?}",
        text(&out.stdout)
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
    let v: Value = serde_json::from_str(err.trim())
        .unwrap_or_else(|e| panic!("sluice {args:?}: stderr is not JSON ({e}): {err:?}"));
    let e = v["error"].clone();
    assert!(e["code"].is_string(), "{v}");
    assert!(e["message"].is_string(), "{v}");
    assert!(e.as_object().unwrap().contains_key("field"), "{v}");
    e
}

/// Insists the command failed with `exit` and a readable stderr mentioning
/// every needle.
fn fails_text(out: &Output, exit: i32, args: &[&str], needles: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(exit), "sluice {args:?}: {err:?}");
    assert!(err.starts_with("error: "), "sluice {args:?}: {err:?}");
    for n in needles {
        assert!(
            err.contains(n),
            "sluice {args:?}: {err:?} should mention {n:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_set_and_listener_update_remove_in_table_and_json() {
    let b = backend("ecs01", Duration::ZERO).await;
    let (node, url) = cluster_of_one(&["--drain-timeout", "30s"], &[&b], "60s").await;
    let port = url.rsplit(':').next().unwrap().to_string();
    let addr = b.addr().to_string();

    // backend set: weight, then maintenance on and off.
    let out = cli_ok(&node, &["backend", "set", "web", &addr, "--weight", "50"]).await;
    assert!(out.contains(&addr) && out.contains("weight 50"), "{out}");
    assert!(out.contains("active"), "{out}");
    let v = cli_json(
        &node,
        &["backend", "set", "web", &addr, "--maintenance", "on"],
    )
    .await;
    assert_eq!(v["state"], "maintenance", "{v}");
    assert_eq!(v["weight"], 50, "{v}");
    let out = cli_ok(&node, &["backend", "list", "web"]).await;
    assert!(out.contains("maintenance"), "{out}");
    let out = cli_ok(
        &node,
        &["backend", "set", "web", &addr, "--maintenance", "off"],
    )
    .await;
    assert!(out.contains("weight 50, active"), "{out}");

    // listener list: state and each node's bind.
    let out = cli_ok(&node, &["listener", "list"]).await;
    let header = out.lines().next().unwrap();
    for col in ["PORT", "STATE", "BIND", "NODES"] {
        assert!(header.contains(col), "{out}");
    }
    let row = out
        .lines()
        .find(|l| l.starts_with(&port))
        .expect("the listener's row");
    let ls = cli_json(&node, &["listener", "list"]).await;
    assert_eq!(ls[0]["state"], "active");
    assert_eq!(ls[0]["status"], "listening");
    assert_eq!(ls[0]["nodes"][0]["node"], 1);
    // `listener add` answered once the member's bind report was in the
    // replicated state.
    let bind = ls[0]["nodes"][0]["status"].as_str().unwrap();
    assert_eq!(bind, "listening", "{ls}");
    assert!(
        row.contains("active") && row.contains("127.0.0.1:") && row.contains(&format!("1 {bind}")),
        "{out}"
    );

    // listener update: group (table), then request timeout (JSON).
    cli_ok(&node, &["group", "create", "api", "--drain-timeout", "20s"]).await;
    let out = cli_ok(&node, &["listener", "update", &port, "--group", "api"]).await;
    assert!(
        out.contains(&format!(":{port} -> group api (request timeout 60s)")),
        "{out}"
    );
    let v = cli_json(
        &node,
        &["listener", "update", &port, "--request-timeout", "15s"],
    )
    .await;
    assert_eq!(v["group"], "api");
    assert_eq!(v["request_timeout_ms"], 15_000);

    // listener remove (table): draining until the group's deadline.
    let before = now_ms();
    let out = cli_ok(&node, &["listener", "remove", &port]).await;
    assert!(out.contains(&format!("listener :{port}")), "{out}");
    assert!(
        out.contains("draining until") && out.contains("UTC"),
        "{out}"
    );
    let ls = cli_json(&node, &["listener", "list"]).await;
    let l = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["port"] == port.parse::<u64>().unwrap())
        .expect("a draining listener is still listed");
    assert_eq!(l["state"], "draining", "{ls}");
    let deadline = l["drain_deadline_ms"].as_u64().expect("a deadline");
    assert!(
        deadline >= before + 19_000 && deadline <= now_ms() + 21_000,
        "deadline {deadline} is the group's 20s drain from {before}"
    );
    let out = cli_ok(&node, &["listener", "list"]).await;
    let row = out.lines().find(|l| l.starts_with(&port)).unwrap();
    assert!(row.contains("draining until"), "{out}");

    // listener remove (JSON).
    let port2 = sluice_testkit::free_port().to_string();
    cli_ok(
        &node,
        &["listener", "add", "--port", &port2, "--group", "api"],
    )
    .await;
    let v = cli_json(&node, &["listener", "remove", &port2]).await;
    assert_eq!(v["state"], "draining", "{v}");
    assert!(v["drain_deadline_ms"].as_u64().is_some(), "{v}");
    // Gone from the listening ports: a second removal is a 404.
    let args = ["listener", "remove", &port2, "--output", "json"];
    let e = json_error(&cli(&node, &args).await, 1, &args);
    assert_eq!(e["code"], "listener_not_found", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_delete_refuses_a_used_group_unless_forced() {
    let b = backend("ecs01", Duration::ZERO).await;
    let (node, _url) = cluster_of_one(&["--drain-timeout", "1s"], &[&b], "60s").await;

    // Used: 409, exit 1, nothing changed; table then JSON.
    let args = ["group", "delete", "web"];
    let out = cli(&node, &args).await;
    fails_text(&out, 1, &args, &["web", "in use", "force"]);
    let args = ["group", "delete", "web", "--output", "json"];
    let e = json_error(&cli(&node, &args).await, 1, &args);
    assert_eq!(e["code"], "group_in_use", "{e}");
    let groups = cli_json(&node, &["group", "list"]).await;
    assert_eq!(groups[0]["name"], "web");
    assert_eq!(groups[0]["backends"].as_array().unwrap().len(), 1);

    // --force: its listener and backend drain, then it goes.
    let out = cli_ok(&node, &["group", "delete", "web", "--force"]).await;
    assert!(
        out.starts_with("deleting group web") || out.starts_with("deleted group web"),
        "{out}"
    );
    assert!(out.contains("draining until"), "its listener drains: {out}");
    poll(Duration::from_secs(15), "group web leaves", || async {
        let groups = cli_json(&node, &["group", "list"]).await;
        if groups.as_array().is_some_and(|g| g.is_empty()) {
            Ok(())
        } else {
            Err(groups.to_string())
        }
    })
    .await;

    // An unused group goes at once (JSON); a second delete is a 404.
    cli_ok(&node, &["group", "create", "spare"]).await;
    let v = cli_json(&node, &["group", "delete", "spare"]).await;
    assert_eq!(v["name"], "spare");
    assert_eq!(v["state"], "deleted");
    let args = ["group", "delete", "spare"];
    fails_text(&cli(&node, &args).await, 1, &args, &["spare"]);
}

#[tokio::test]
async fn updates_naming_no_change_are_refused_before_any_request() {
    // Against an address nothing listens on: a refusal from the CLI itself
    // (exit 2), not "cannot reach" (exit 1), proves nothing was sent.
    for (args, needles) in [
        (
            &["backend", "set", "web", "10.0.0.1:8080"][..],
            &["nothing to change", "--weight", "--maintenance"][..],
        ),
        (
            &["group", "update", "web"],
            &["nothing to change", "--drain-timeout"],
        ),
        (
            &["listener", "update", "8080"],
            &["nothing to change", "--group", "--request-timeout"],
        ),
        (
            &[
                "backend",
                "set",
                "web",
                "10.0.0.1:8080",
                "--maintenance",
                "maybe",
            ],
            &["--maintenance", "maybe", "on or off"],
        ),
        (
            &["backend", "set", "web", "10.0.0.1:8080", "--weight", "101"],
            &["--weight", "101", "0..=100"],
        ),
        (
            &["listener", "update", "0", "--group", "web"],
            &["PORT", "0", "1..=65535"],
        ),
        (
            &["listener", "update", "8080", "--request-timeout", "11m"],
            &["--request-timeout", "11m", "1s..=600s"],
        ),
        (
            &["listener", "remove", "70000"],
            &["PORT", "70000", "1..=65535"],
        ),
        (&["group", "delete", "Web"], &["Web"]),
    ] {
        let out = cli_at(DEAD_NODE, "x", args).await;
        fails_text(&out, 2, args, needles);
        assert!(out.stdout.is_empty());
    }
    let args = ["group", "update", "web", "--output", "json"];
    let e = json_error(&cli_at(DEAD_NODE, "x", &args).await, 2, &args);
    assert_eq!(e["code"], "nothing_to_update", "{e}");
    let args = ["backend", "set", "web", "10.0.0.1:8080", "--output", "json"];
    let e = json_error(&cli_at(DEAD_NODE, "x", &args).await, 2, &args);
    assert_eq!(e["code"], "nothing_to_update", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_errors_carry_code_message_and_field_on_stderr() {
    // Refused by the CLI: the flag is the field.
    let args = [
        "backend",
        "add",
        "web",
        "10.0.0.1:8080",
        "--weight",
        "101",
        "--output",
        "json",
    ];
    let e = json_error(&cli_at(DEAD_NODE, "x", &args).await, 2, &args);
    assert_eq!(e["code"], "out_of_range");
    assert_eq!(e["field"], "--weight");
    assert!(e["message"].as_str().unwrap().contains("0..=100"), "{e}");
    let args = [
        "backend",
        "set",
        "web",
        "10.0.0.1:8080",
        "--maintenance",
        "maybe",
        "--output",
        "json",
    ];
    let e = json_error(&cli_at(DEAD_NODE, "x", &args).await, 2, &args);
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_value"), Some("--maintenance"))
    );
    // Refused while parsing the command line.
    let args = [
        "backend",
        "set",
        "web",
        "10.0.0.1:8080",
        "--weight",
        "abc",
        "--output",
        "json",
    ];
    let e = json_error(&cli_at(DEAD_NODE, "x", &args).await, 2, &args);
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_value"), Some("--weight"))
    );
    assert!(e["message"].as_str().unwrap().contains("abc"), "{e}");

    // A node that cannot be reached: JSON with --output json, text without.
    let args = ["group", "list", "--output", "json"];
    let e = json_error(&cli_at(DEAD_NODE, "x", &args).await, 1, &args);
    assert_eq!(e["code"], "node_unreachable");
    assert!(e["field"].is_null());
    assert!(e["message"].as_str().unwrap().contains(DEAD_NODE), "{e}");
    let args = ["group", "list"];
    fails_text(
        &cli_at(DEAD_NODE, "x", &args).await,
        1,
        &args,
        &["cannot reach", DEAD_NODE],
    );

    // The node's own errors pass through as it sent them.
    let node = one_node().await;
    cli_ok(&node, &["group", "create", "web"]).await;
    let args = [
        "backend",
        "add",
        "nope",
        "10.0.0.1:8080",
        "--output",
        "json",
    ];
    let e = json_error(&cli(&node, &args).await, 1, &args);
    assert_eq!(e["code"], "group_not_found", "{e}");
    let args = ["group", "create", "web", "--output", "json"];
    let e = json_error(&cli(&node, &args).await, 1, &args);
    assert_eq!(e["code"], "group_exists", "{e}");
    let args = [
        "backend",
        "set",
        "web",
        "10.9.9.9:80",
        "--weight",
        "5",
        "--output",
        "json",
    ];
    let e = json_error(&cli(&node, &args).await, 1, &args);
    assert_eq!(e["code"], "backend_not_found", "{e}");
    let args = ["group", "create", "api", "--output", "json"];
    let out = cli_at(&node.admin_url(), "not-the-token-at-all", &args).await;
    let e = json_error(&out, 1, &args);
    assert_eq!(e["code"], "unauthorized", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_add_names_the_node_that_cannot_bind() {
    let node = one_node().await;
    cli_ok(&node, &["group", "create", "web"]).await;
    // Something else holds the port on the node's data address.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let args = ["listener", "add", "--port", &port, "--group", "web"];
    let out = cli(&node, &args).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stdout.contains("not listening here: ") && stdout.contains("in use"),
        "{stdout}"
    );
    assert!(stdout.contains("\nnodes: 1 "), "{stdout}");
    for n in [
        format!("listener :{port} was created"),
        "node 1 could not bind it".to_string(),
    ] {
        assert!(stderr.contains(&n), "{stderr:?} should mention {n:?}");
    }
    // It was created: listed, with the failure.
    let ls = cli_json(&node, &["listener", "list"]).await;
    assert_eq!(ls[0]["port"].to_string(), port);
    assert_ne!(ls[0]["status"], "listening", "{ls}");
    assert_ne!(ls[0]["nodes"][0]["status"], "listening", "{ls}");
    // JSON: the listener on stdout, the error on stderr.
    drop(taken);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let args = [
        "listener", "add", "--port", &port, "--group", "web", "--output", "json",
    ];
    let out = cli(&node, &args).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let l: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(l["port"].to_string(), port, "{l}");
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"]["code"], "listener_bind_failed", "{e}");
    assert_eq!(e["error"]["field"], "port", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("node 1"),
        "{e}"
    );
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_that_is_not_a_member_fails() {
    let node = one_node().await;
    let args = ["cluster", "remove-node", "9"];
    let out = cli(&node, &args).await;
    fails_text(&out, 1, &args, &["9"]);
    let args = ["cluster", "remove-node", "9", "--output", "json"];
    let e = json_error(&cli(&node, &args).await, 1, &args);
    assert_eq!(e["code"], "node_not_found", "{e}");
}

/// A node process started by hand (the test kit cannot set its
/// environment); killed on drop.
struct HandStarted(Child);

impl Drop for HandStarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_token_wins_over_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", sluice_testkit::free_port());
    let (env_token, file_token) = ("token-from-the-environment", "token-from-the-config-file");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = 1\ndata_dir = {:?}\ndata_address = \"127.0.0.1\"\n\
             [admin]\nlisten = \"{admin}\"\ntoken = \"{file_token}\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
    let child = Command::new(BIN)
        .args(["node", "run", "--config"])
        .arg(&config)
        .env("SLUICE_TOKEN", env_token)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _node = HandStarted(child);
    let url = format!("http://{admin}");
    poll(Duration::from_secs(20), "the node is ready", || async {
        match reqwest::get(format!("{url}/readyz")).await {
            Ok(r) if r.status() == 200 => Ok(()),
            _ => Err(std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default()),
        }
    })
    .await;
    let args = ["group", "create", "web"];
    let out = cli_at(&url, file_token, &args).await;
    fails_text(&out, 1, &args, &["wrong bearer token"]);
    let out = cli_at(&url, env_token, &args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = std::fs::read_to_string(dir.path().join("node.log")).unwrap();
    assert!(log.contains("admin token taken from SLUICE_TOKEN"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_not_yet_applied_everywhere_warns_and_succeeds() {
    let mut cluster = common::cluster::Cluster::formed().await;
    // A member that cannot be asked: the write commits on the other two.
    cluster.kill(3).await;
    let args = ["group", "create", "web"];
    let out = cli(cluster.node(1), &args).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("created group web"), "{stdout}");
    assert_eq!(
        stderr.trim(),
        "warning: committed; not yet applied on node 3",
        "{stdout}"
    );
    // JSON: the answer names the member, the warning is JSON too.
    let args = ["group", "create", "api", "--output", "json"];
    let out = cli(cluster.node(2), &args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let g: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["name"], "api");
    assert_eq!(g["pending_nodes"], serde_json::json!([3]), "{g}");
    let w: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(w["warning"]["code"], "pending_nodes", "{w}");
    assert_eq!(w["warning"]["nodes"], serde_json::json!([3]), "{w}");
}
