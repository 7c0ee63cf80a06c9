//! A group's backends read in pages against a real node: `GET
//! /v1/groups/{group}/backends?limit=N&after=ADDR` hands out every backend
//! once, in address order, with `next_after` on every page but the last;
//! without parameters the answer is the whole array as before; a bad
//! `limit` is a 400 naming the field, its value and the range. `sluice
//! backend list` reads the same pages (`--page`) and prints them as one
//! table or one JSON array, or the first `--limit` backends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use common::*;
use serde_json::{json, Value};
use sluice_testkit::{NodeOptions, NodeProcess};

/// Backends in the group.
const BACKENDS: usize = 250;

/// A node with group `big` (health checks off) holding [`BACKENDS`]
/// backends of weight 0 at addresses nothing listens on; returns them in
/// address order too.
async fn node_with_big_group() -> (NodeProcess, Vec<String>) {
    let node = tokio::task::spawn_blocking(|| {
        NodeProcess::start(BIN.as_ref(), NodeOptions::local(1)).expect("start node")
    })
    .await
    .unwrap();
    cli_ok(&node, &["group", "create", "big"]).await;
    cli_ok(&node, &["group", "update", "big", "--no-health-checks"]).await;
    // Addresses whose text order differs from their numeric order.
    let mut addrs: Vec<String> = (0..BACKENDS)
        .map(|i| format!("10.1.{}.{}:{}", i % 7, i, 80 + i % 3))
        .collect();
    let http = http_client();
    let mut adds = tokio::task::JoinSet::new();
    for chunk in addrs.chunks(BACKENDS / 10) {
        let (http, url, token) = (http.clone(), node.admin_url(), node.token().to_string());
        let chunk = chunk.to_vec();
        adds.spawn(async move {
            for addr in chunk {
                let resp = http
                    .post(format!("{url}/v1/groups/big/backends"))
                    .bearer_auth(&token)
                    .json(&json!({"addr": addr, "weight": 0}))
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success(), "adding {addr}: {resp:?}");
            }
        });
    }
    while let Some(done) = adds.join_next().await {
        done.unwrap();
    }
    addrs.sort();
    (node, addrs)
}

/// `GET path` on the node: status and JSON body.
async fn get(node: &NodeProcess, path: &str) -> (u16, Value) {
    let resp = http_client()
        .get(format!("{}{path}", node.admin_url()))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let v =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, v)
}

fn addrs_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|b| b["addr"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_hand_out_every_backend_once_in_address_order() {
    let (node, expected) = node_with_big_group().await;

    // No parameters: the whole list, as ever.
    let (status, all) = get(&node, "/v1/groups/big/backends").await;
    assert_eq!(status, 200);
    assert_eq!(addrs_of(&all), expected);

    // Pages of 100: 100, 100, 50, each naming where the next starts.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let path = match &after {
            None => "/v1/groups/big/backends?limit=100".to_string(),
            Some(a) => format!("/v1/groups/big/backends?limit=100&after={a}"),
        };
        let (status, page) = get(&node, &path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let addrs = addrs_of(&page["backends"]);
        sizes.push(addrs.len());
        seen.extend(addrs.iter().cloned());
        match page.get("next_after") {
            Some(next) => {
                assert_eq!(next.as_str(), addrs.last().map(String::as_str), "{page}");
                after = Some(next.as_str().unwrap().to_string());
            }
            None => break,
        }
        assert!(sizes.len() < 10, "pages do not end: {sizes:?}");
    }
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(seen, expected);
    // A page holds the same views as the whole list.
    let (_, first) = get(&node, "/v1/groups/big/backends?limit=100").await;
    assert_eq!(
        first["backends"].as_array().unwrap()[..],
        all.as_array().unwrap()[..100]
    );

    // A page exactly as long as what is left is the last one.
    let (_, page) = get(&node, "/v1/groups/big/backends?limit=250").await;
    assert_eq!(addrs_of(&page["backends"]), expected);
    assert!(page.get("next_after").is_none(), "{page}");
    // After the last address: an empty last page.
    let last = expected.last().unwrap();
    let (_, page) = get(&node, &format!("/v1/groups/big/backends?after={last}")).await;
    assert_eq!(page, json!({"backends": []}));
    // `after` alone: a page of the default size (all that is left here),
    // starting past an address that need not be a backend's.
    let (_, page) = get(&node, "/v1/groups/big/backends?after=10.1.3").await;
    let want: Vec<String> = expected
        .iter()
        .filter(|a| a.as_str() > "10.1.3")
        .cloned()
        .collect();
    assert!(!want.is_empty() && want.len() < BACKENDS);
    assert_eq!(addrs_of(&page["backends"]), want);
    // With a consistent read too.
    let (status, page) = get(&node, "/v1/groups/big/backends?limit=5&consistent=true").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(addrs_of(&page["backends"]), expected[..5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_limit_is_refused_naming_the_field() {
    let node = tokio::task::spawn_blocking(|| {
        NodeProcess::start(BIN.as_ref(), NodeOptions::local(1)).expect("start node")
    })
    .await
    .unwrap();
    cli_ok(&node, &["group", "create", "web"]).await;
    for (limit, code) in [
        ("0", "out_of_range"),
        ("10001", "out_of_range"),
        ("99999999999999999999999", "invalid_value"),
        ("-1", "invalid_value"),
        ("ten", "invalid_value"),
        ("", "invalid_value"),
    ] {
        let (status, v) = get(&node, &format!("/v1/groups/web/backends?limit={limit}")).await;
        assert_eq!(status, 400, "limit={limit}: {v}");
        let e = &v["error"];
        assert_eq!(e["code"], code, "limit={limit}: {v}");
        assert_eq!(e["field"], "limit", "limit={limit}: {v}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("1..=10000") && message.contains(limit),
            "limit={limit}: {message}"
        );
    }
    let (status, v) = get(&node, "/v1/groups/web/backends?limit=10000").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"backends": []}));
    let (status, v) = get(&node, "/v1/groups/nope/backends?limit=10").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "group_not_found");

    // The CLI refuses its own bad values before sending anything.
    for args in [
        ["backend", "list", "web", "--limit", "0"],
        ["backend", "list", "web", "--page", "0"],
        ["backend", "list", "web", "--page", "10001"],
    ] {
        let out = cli(&node, &args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(args[3]) && err.contains("out of range"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_list_prints_every_page_or_the_first_limit() {
    let (node, expected) = node_with_big_group().await;

    // One page (the default 1000): a table, one row per backend.
    let one = cli_ok(&node, &["backend", "list", "big"]).await;
    let rows = |out: &str| -> Vec<String> {
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        assert!(
            header.starts_with("ADDR") && header.contains("DRAIN"),
            "{out}"
        );
        lines
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    assert_eq!(rows(&one), expected);
    // Pages of 100: the same rows, one header; the columns of these
    // same-shaped rows line up as in the one-page table.
    let paged = cli_ok(&node, &["backend", "list", "big", "--page", "100"]).await;
    assert_eq!(rows(&paged), expected);
    assert_eq!(paged, one);
    // JSON: one array, whatever the page size.
    let whole = cli_json(&node, &["backend", "list", "big"]).await;
    let (_, api) = get(&node, "/v1/groups/big/backends").await;
    assert_eq!(whole, api);
    for page in ["1", "100", "249", "250"] {
        let v = cli_json(&node, &["backend", "list", "big", "--page", page]).await;
        assert_eq!(v, whole, "--page {page}");
    }
    // --limit: the first N, across pages too.
    for (limit, page) in [
        ("120", "100"),
        ("120", "1000"),
        ("1", "100"),
        ("999", "100"),
    ] {
        let out = cli_ok(
            &node,
            &["backend", "list", "big", "--limit", limit, "--page", page],
        )
        .await;
        let n: usize = limit.parse::<usize>().unwrap().min(BACKENDS);
        assert_eq!(rows(&out), expected[..n], "--limit {limit} --page {page}");
        let v = cli_json(
            &node,
            &["backend", "list", "big", "--limit", limit, "--page", page],
        )
        .await;
        assert_eq!(addrs_of(&v), expected[..n], "--limit {limit} --page {page}");
    }
    // An empty group: the header alone, `[]`.
    cli_ok(&node, &["group", "create", "empty"]).await;
    let out = cli_ok(&node, &["backend", "list", "empty", "--page", "1"]).await;
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(
        cli_json(&node, &["backend", "list", "empty"]).await,
        json!([])
    );
}
