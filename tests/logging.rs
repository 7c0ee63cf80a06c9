//! Every line a node logs names the node, in the text and the JSON format:
//! lines of the binary's own tasks, of the data plane's actors and probe
//! tasks, of openraft and of the stop sequence alike. A JSON line holds
//! each top-level key once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::fmt;
use std::time::Duration;

use common::*;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use sluice_testkit::NodeOptions;

/// The node's id: not 1, so that a default cannot pass for it.
const NODE: u64 = 2;

/// Runs node [`NODE`] with `format` logs at debug level through a life with
/// traffic, a drain and a stop; returns its log lines (the harness's own
/// lines left out).
async fn log_of_a_life(format: &str) -> Vec<String> {
    let be = backend("ecs01", Duration::ZERO).await;
    let addr = be.addr().to_string();
    let mut opts = NodeOptions::local(NODE);
    opts.extra_toml = format!("[log]\nformat = \"{format}\"\nlevel = \"debug\"\n");
    let (mut node, listen) =
        node_with(opts, &["--drain-timeout", "5s"], &[], &[&addr], "10s").await;
    let answer = http_client()
        .get(format!("http://{listen}/"))
        .send()
        .await
        .expect("a request through the listener");
    assert_eq!(answer.status(), 200);
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
    assert!(exit.is_some_and(|e| e.success()), "exit: {exit:?}");
    let lines: Vec<String> = node
        .log()
        .lines()
        .filter(|l| !l.starts_with("=== sluice-testkit"))
        .map(str::to_owned)
        .collect();
    assert!(lines.len() > 20, "too few lines to judge: {lines:#?}");
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_text_line_names_the_node() {
    let lines = log_of_a_life("text").await;
    let node = format!("node={NODE}");
    for line in &lines {
        // `<time> <LEVEL> node=<id> ...`
        let words: Vec<&str> = line.split_whitespace().take(3).collect();
        assert_eq!(words.get(2), Some(&node.as_str()), "{line}");
    }
    for target in ["sluice::node", "sluice_proxy", "openraft"] {
        assert!(
            lines.iter().any(|l| l.contains(&format!(" {target}"))),
            "no line from {target}: {lines:#?}"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("stopping: draining this node")));
    assert!(lines.iter().any(|l| l.contains("node stopped exit_code=0")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_line_names_the_node_once() {
    let lines = log_of_a_life("json").await;
    for line in &lines {
        let keys = top_level_keys(line);
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "a key repeats: {line}");
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["node"], NODE, "{line}");
    }
    let targets: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["target"].to_string())
        .collect();
    for target in ["sluice::node", "sluice_proxy", "openraft"] {
        assert!(
            targets.iter().any(|t| t.contains(target)),
            "no line from {target}: {targets:?}"
        );
    }
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
