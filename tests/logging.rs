//! Every line a node logs names the node, in the text and the JSON format:
//! lines of the binary's own tasks, of the data plane's actors and probe
//! tasks, of openraft and of the stop sequence alike. A JSON line is one
//! flat object holding each key once, with the ids of the spans it was
//! logged in. openraft's own INFO lines are left out unless the filter
//! names openraft; sluice says what an operator needs of them in one line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::fmt;
use std::time::Duration;

use common::cluster::Cluster;
use common::*;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};
use sluice_testkit::NodeOptions;

/// The node's id: not 1, so that a default cannot pass for it.
const NODE: u64 = 2;

/// A node's log through a life with traffic, a drain and a stop.
struct Life {
    /// The lines, the harness's own left out.
    lines: Vec<String>,
    /// The listener's port.
    port: u16,
    /// The drained backend's address.
    backend: String,
}

/// Runs node [`NODE`] with `format` logs, `[log] level = level` (`None`:
/// left out) and `RUST_LOG` as given (`None`: unset) through a life with
/// traffic, a drain and a stop.
async fn log_of_a_life(format: &str, level: Option<&str>, rust_log: Option<&str>) -> Life {
    let be = backend("ecs01", Duration::ZERO).await;
    let addr = be.addr().to_string();
    let mut opts = NodeOptions::local(NODE);
    opts.extra_toml = format!("[log]\nformat = \"{format}\"\n");
    if let Some(level) = level {
        opts.extra_toml += &format!("level = \"{level}\"\n");
    }
    opts.env
        .push(("RUST_LOG".into(), rust_log.map(str::to_owned)));
    let (mut node, listen) =
        node_with(opts, &["--drain-timeout", "5s"], &[], &[&addr], "10s").await;
    let port = listen.rsplit(':').next().unwrap().parse().unwrap();
    // Kept, with its idle keep-alive connection, until the node stopped.
    let client = http_client();
    let answer = client
        .get(format!("http://{listen}/"))
        .send()
        .await
        .expect("a request through the listener");
    assert_eq!(answer.status(), 200);
    answer.bytes().await.expect("the answer's body");
    remove(&node, &addr).await;
    assert!(
        wait_removed(&node, &addr, Duration::from_secs(10)).await,
        "the drain did not finish"
    );
    node.signal("TERM").unwrap();
    let exit = tokio::task::spawn_blocking(move || {
        let exit = node.wait_exit(Duration::from_secs(15)).unwrap();
        (node, exit)
    })
    .await
    .unwrap();
    let (node, exit) = exit;
    drop(client);
    assert!(exit.is_some_and(|e| e.success()), "exit: {exit:?}");
    let lines: Vec<String> = node
        .log()
        .lines()
        .filter(|l| !l.starts_with("=== sluice-testkit"))
        .map(str::to_owned)
        .collect();
    assert!(lines.len() > 10, "too few lines to judge: {lines:#?}");
    Life {
        lines,
        port,
        backend: addr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_text_line_names_the_node() {
    // openraft named in `[log] level`: its INFO lines are back.
    let life = log_of_a_life("text", Some("debug,openraft=info"), None).await;
    let lines = &life.lines;
    let node = format!("node={NODE}");
    for line in lines {
        // `<time> <LEVEL> node=<id> ...`
        let words: Vec<&str> = line.split_whitespace().take(3).collect();
        assert_eq!(words.get(2), Some(&node.as_str()), "{line}");
    }
    for target in ["sluice::node", "sluice_proxy", "sluice_raft", "openraft"] {
        assert!(
            lines.iter().any(|l| l.contains(&format!(" {target}"))),
            "no line from {target}: {lines:#?}"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("stopping: draining this node")));
    assert!(lines.iter().any(|l| l.contains("node stopped exit_code=0")));
    // Span fields show in the span's braces, as ever.
    let drain = format!("backend{{group=web backend={}}}", life.backend);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&drain) && l.contains("drain started drain=d")),
        "no drain line in {drain}: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_are_flat_with_each_key_once_and_openraft_quiet() {
    // The default level, no RUST_LOG: openraft's INFO lines are left out.
    let life = log_of_a_life("json", None, None).await;
    let lines: Vec<Map<String, Value>> = life.lines.iter().map(|l| flat_object(l)).collect();

    let openraft: Vec<&String> = life
        .lines
        .iter()
        .zip(&lines)
        .filter(|(_, v)| v["target"].as_str().unwrap().starts_with("openraft"))
        .filter(|(_, v)| !matches!(v["level"].as_str(), Some("WARN" | "ERROR")))
        .map(|(l, _)| l)
        .collect();
    assert!(openraft.is_empty(), "openraft below WARN: {openraft:#?}");

    // sluice's own line for the election: one, short, with its term and
    // leader; and one for the start of Raft.
    let elected: Vec<(&String, &Map<String, Value>)> = life
        .lines
        .iter()
        .zip(&lines)
        .filter(|(_, v)| v.get("message") == Some(&Value::from("leader elected")))
        .collect();
    assert_eq!(elected.len(), 1, "{:#?}", life.lines);
    let (line, v) = elected[0];
    assert_eq!(v["target"], "sluice_raft::raft_events", "{line}");
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["leader"], NODE, "{line}");
    assert_eq!(v["term"], 1, "{line}");
    assert!(line.len() < 200, "a long line: {line}");
    let message_is = |m: &str| {
        let m = Value::from(m);
        move |v: &&Map<String, Value>| v.get("message") == Some(&m)
    };
    assert!(
        lines
            .iter()
            .any(|v| message_is("raft started: not a member of a cluster yet")(&v)),
        "{:#?}",
        life.lines
    );
    let membership = lines
        .iter()
        .find(message_is("membership changed"))
        .unwrap_or_else(|| panic!("no membership line: {:#?}", life.lines));
    assert_eq!(membership["voters"], NODE.to_string(), "{membership:?}");
    assert_eq!(membership["joined"], NODE.to_string(), "{membership:?}");

    // A listener's line keeps its port (the listener's id) and generation,
    // and the actor's `name` beside the span's name.
    let accepting = lines
        .iter()
        .find(message_is("listener accepting"))
        .unwrap_or_else(|| panic!("no listener line: {:#?}", life.lines));
    assert_eq!(accepting["span"], "listener", "{accepting:?}");
    assert_eq!(accepting["port"], life.port, "{accepting:?}");
    assert!(accepting["generation"].is_u64(), "{accepting:?}");
    assert_eq!(
        accepting["name"],
        format!("node{NODE}-listener-{}", life.port),
        "{accepting:?}"
    );
    assert_eq!(
        accepting["addr"],
        format!("127.0.0.1:{}", life.port),
        "{accepting:?}"
    );

    // The drain's lines name the drain, the group and the backend at the top.
    for message in ["drain started", "drain finished on this node"] {
        let v = lines
            .iter()
            .find(message_is(message))
            .unwrap_or_else(|| panic!("no {message:?} line: {:#?}", life.lines));
        assert_eq!(v["span"], "backend", "{v:?}");
        assert!(
            v["drain"].as_str().is_some_and(|d| d.starts_with('d')),
            "{v:?}"
        );
        assert_eq!(v["group"], "web", "{v:?}");
        assert_eq!(v["backend"], life.backend.as_str(), "{v:?}");
        assert_eq!(v["node"], NODE, "{v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_naming_openraft_brings_its_lines_back() {
    // At debug: the idle connection closed at the end of the accept grace
    // logs in the connection's span, under the listener's.
    let life = log_of_a_life("json", None, Some("debug,openraft=info")).await;
    let lines: Vec<Map<String, Value>> = life.lines.iter().map(|l| flat_object(l)).collect();
    let openraft_info = lines
        .iter()
        .filter(|v| v["target"].as_str().unwrap().starts_with("openraft") && v["level"] == "INFO")
        .count();
    assert!(openraft_info > 0, "{:#?}", life.lines);
    let in_connection = lines
        .iter()
        .find(|v| {
            v.get("spans")
                .and_then(Value::as_str)
                .is_some_and(|s| s.ends_with("listener:connection"))
        })
        .unwrap_or_else(|| panic!("no line in a connection's span: {:#?}", life.lines));
    assert_eq!(in_connection["port"], life.port, "{in_connection:?}");
    assert!(
        in_connection["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{in_connection:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_logs_raft_events_in_one_line_each() {
    let mut cluster = Cluster::formed_with(|opts| {
        opts.extra_toml.push_str("[log]\nformat = \"json\"\n");
        opts.env.push(("RUST_LOG".into(), None));
    })
    .await;
    assert_eq!(cluster.leader().await, 1, "node 1 initialised the cluster");
    let message = |v: &Line| v["message"].as_str().unwrap().to_owned();
    let elected = |v: &Line, leader: u64| v["message"] == "leader elected" && v["leader"] == leader;

    // The leader saw each node join (as a learner), then the three voters.
    // (Two changes close together may be seen, and logged, as one.)
    let on_1 = raft_lines_once(cluster.node(1), |raft: &[Line]| {
        raft.iter()
            .any(|v| v["message"] == "membership changed" && v["voters"] == "1,2,3")
    });
    let membership: Vec<&Line> = on_1
        .iter()
        .filter(|v| v["message"] == "membership changed")
        .collect();
    let joined: Vec<&str> = membership
        .iter()
        .filter_map(|v| v.get("joined").and_then(Value::as_str))
        .collect();
    assert_eq!(joined, ["1", "2", "3"], "{on_1:#?}");
    let last = membership.last().unwrap();
    assert_eq!(
        (&last["voters"], &last["learners"]),
        (&Value::from("1,2,3"), &Value::from("")),
        "{on_1:#?}"
    );
    assert!(!last.contains_key("left"), "{on_1:#?}");
    let term = on_1
        .iter()
        .find(|v| elected(v, 1))
        .unwrap_or_else(|| panic!("{on_1:#?}"))["term"]
        .as_u64()
        .unwrap();
    // A follower names the same leader and term, in one line.
    for id in [2, 3] {
        let raft = raft_lines_once(cluster.node(id), |raft: &[Line]| {
            raft.iter().any(|v| elected(v, 1))
        });
        let lines: Vec<&Line> = raft.iter().filter(|v| elected(v, 1)).collect();
        assert_eq!(lines.len(), 1, "node {id}: {raft:#?}");
        assert_eq!(lines[0]["term"], term, "node {id}: {raft:#?}");
        assert_eq!(
            message(&raft[0]),
            "raft started: not a member of a cluster yet"
        );
    }

    // The leader dies: each follower says who leads now, in a later term.
    cluster.kill(1).await;
    let start = std::time::Instant::now();
    let leader = loop {
        let leader = cluster.leader().await;
        if leader != 1 {
            break leader;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no new leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for id in [2, 3] {
        let raft = raft_lines_once(cluster.node(id), |raft: &[Line]| {
            raft.iter().any(|v| elected(v, leader))
        });
        let now = raft.iter().position(|v| elected(v, leader)).unwrap();
        // "leader lost" comes in between unless the election was over
        // before the node's metrics watch looked (the watch sees the
        // latest metrics): when it is there, it names node 1.
        let lost = raft
            .iter()
            .position(|v| v["message"] == "leader lost: an election is under way");
        if let Some(lost) = lost {
            assert_eq!(raft[lost]["was"], 1, "node {id}: {raft:#?}");
            assert!(lost < now, "node {id}: {raft:#?}");
        }
        assert!(
            raft[now]["term"].as_u64().unwrap() > term,
            "node {id}: {raft:#?}"
        );
    }
}

/// A parsed JSON log line.
type Line = Map<String, Value>;

/// The `raft_events` lines of `node`'s JSON log once `want` holds of them
/// (within 10 s); every line of the log is flat, with each key once, and
/// none is openraft's below WARN.
fn raft_lines_once(
    node: &sluice_testkit::NodeProcess,
    want: impl Fn(&[Line]) -> bool,
) -> Vec<Line> {
    let id = node.node_id();
    let start = std::time::Instant::now();
    tokio::task::block_in_place(|| loop {
        let log = node.log();
        let lines: Vec<Line> = log
            .lines()
            .filter(|l| !l.starts_with("=== sluice-testkit"))
            .map(|l| flat_object_of(id, l))
            .collect();
        for v in &lines {
            let target = v["target"].as_str().unwrap();
            assert!(
                !target.starts_with("openraft")
                    || matches!(v["level"].as_str(), Some("WARN" | "ERROR")),
                "openraft below WARN on node {id}: {v:?}"
            );
        }
        let raft: Vec<Line> = lines
            .into_iter()
            .filter(|v| v["target"] == "sluice_raft::raft_events")
            .collect();
        if want(&raft) {
            return raft;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "node {id}: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    })
}

/// `line` parsed as a JSON object whose keys are each there once and whose
/// values are none of them an object or an array; it names node [`NODE`]
/// and has the line's own keys.
fn flat_object(line: &str) -> Map<String, Value> {
    flat_object_of(NODE, line)
}

/// [`flat_object`] of a line of node `node`.
fn flat_object_of(node: u64, line: &str) -> Map<String, Value> {
    let keys = top_level_keys(line);
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "a key repeats: {line}");
    let Value::Object(v) = serde_json::from_str(line).unwrap() else {
        panic!("not an object: {line}");
    };
    for (key, value) in &v {
        assert!(
            !value.is_object() && !value.is_array(),
            "{key} is nested: {line}"
        );
    }
    assert_eq!(v["node"], node, "{line}");
    for key in ["time", "level", "target"] {
        assert!(v[key].is_string(), "no {key}: {line}");
    }
    assert!(
        !v.contains_key("fields") && !v.contains_key("timestamp"),
        "{line}"
    );
    v
}

/// The top-level keys of the JSON object `line`, in order, repeats kept
/// (a map parsed as a `Value` would keep only the last of them).
fn top_level_keys(line: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    struct KeysVisitor;
    impl<'de> Visitor<'de> for KeysVisitor {
        type Value = Keys;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(Keys(keys))
        }
    }
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            d.deserialize_map(KeysVisitor)
        }
    }
    serde_json::from_str::<Keys>(line)
        .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"))
        .0
}
