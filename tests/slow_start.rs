//! Slow start (R10) end to end on one node: the real `sluice` binary, real
//! sockets, demo backends. Off, a new backend takes its share at once; on,
//! its share of a steady request stream rises along the linear ramp.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::sync::Mutex;

const WINDOW_MS: u64 = 30_000;

/// Sends `n` requests one after another; returns how many each backend
/// answered (by its `x-backend` header).
async fn shares(url: &str, n: usize) -> (usize, usize) {
    let client = http_client();
    let (mut ecs01, mut other) = (0, 0);
    for _ in 0..n {
        let resp = client.get(format!("{url}/")).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        if resp.headers()["x-backend"] == "ecs01" {
            ecs01 += 1;
        } else {
            other += 1;
        }
    }
    (ecs01, other)
}

/// The new backend's expected share of requests spread evenly over
/// `[a, b]` (fractions of the window), next to one backend of the same
/// weight: its effective weight is `x` of the other's at time `x`, so its
/// share is `x / (1 + x)`, and the mean over the slice is
/// `(b - a - ln((1 + b) / (1 + a))) / (b - a)`.
fn expected_share(a: f64, b: f64) -> f64 {
    (b - a - ((1.0 + b) / (1.0 + a)).ln()) / (b - a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_backend_takes_a_linearly_rising_share() {
    let a = backend("ecs01", Duration::ZERO).await;
    let b = backend("ecs02", Duration::ZERO).await;
    let c = backend("ecs03", Duration::ZERO).await;
    let (node, url) = cluster_of_one(&[], &[&a], "60s").await;

    // Off (the default): the second backend gets half at once.
    let out = cli_ok(&node, &["group", "show", "web"]).await;
    assert!(out.contains("slow start: off"), "{out}");
    cli_ok(&node, &["backend", "add", "web", &b.addr().to_string()]).await;
    let (to_a, to_b) = shares(&url, 200).await;
    assert!((90..=110).contains(&to_b), "ecs01 {to_a}, ecs02 {to_b}");

    // On: ecs02 leaves; ecs03 joins next to ecs01, which is fully ramped.
    cli_ok(&node, &["backend", "remove", "web", &b.addr().to_string()]).await;
    let out = cli(&node, &["group", "update", "web", "--slow-start", "10s"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--slow-start = 10s is out of range 30s..=900s"),
        "{err}"
    );
    let out = cli_ok(&node, &["group", "update", "web", "--slow-start", "30s"]).await;
    assert!(out.contains("slow start 30s"), "{out}");
    let added = cli_json(&node, &["backend", "add", "web", &c.addr().to_string()]).await;
    let from = added["ramp"]["from_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("ecs03 ramps: {added}"));
    assert!(added["ramp"]["percent"].as_u64().unwrap() < 5, "{added}");
    let out = cli_ok(&node, &["group", "show", "web"]).await;
    assert!(out.contains("slow start: 30s"), "{out}");
    assert!(out.contains("ramping "), "{out}");

    // A steady stream for the whole window, from four clients, each answer
    // filed by the time it arrived.
    let answers: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
    let end = from + WINDOW_MS;
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (url, answers) = (url.clone(), answers.clone());
        workers.push(tokio::spawn(async move {
            let client = http_client();
            while now_ms() < end {
                let resp = client.get(format!("{url}/")).send().await.expect("request");
                assert_eq!(resp.status(), 200);
                let new = resp.headers()["x-backend"] == "ecs03";
                answers.lock().await.push((now_ms(), new));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }

    let answers = answers.lock().await;
    let mut observed = Vec::new();
    for slice in 0..3u64 {
        let (lo, hi) = (from + slice * 10_000, from + (slice + 1) * 10_000);
        let in_slice: Vec<bool> = answers
            .iter()
            .filter(|(t, _)| (lo..hi).contains(t))
            .map(|(_, new)| *new)
            .collect();
        assert!(
            in_slice.len() >= 200,
            "slice {slice}: {} answers",
            in_slice.len()
        );
        let share = in_slice.iter().filter(|n| **n).count() as f64 / in_slice.len() as f64;
        let expected = expected_share(slice as f64 / 3.0, (slice + 1) as f64 / 3.0);
        observed.push((share, expected, in_slice.len()));
    }
    eprintln!("ecs03 per slice (share, expected, answers): {observed:?}");
    // Expected about 0.137, 0.331 and 0.453; the routes follow the ramp in
    // steps of 500 ms, hence the margin.
    for (share, expected, _) in &observed {
        assert!((share - expected).abs() < 0.05, "{observed:?}");
    }
    assert!(
        observed[0].0 < observed[1].0 && observed[1].0 < observed[2].0,
        "{observed:?}"
    );

    // Ramped: once the node says the ramp is over (its routes follow within
    // a ramp step), half and half, and `backend list` no longer shows a ramp.
    let c_addr = c.addr().to_string();
    poll(Duration::from_secs(2), "ecs03's ramp ends", || async {
        let list = cli_json(&node, &["backend", "list", "web"]).await;
        let row = list
            .as_array()
            .and_then(|l| l.iter().find(|b| b["addr"] == c_addr.as_str()))
            .cloned()
            .unwrap_or_default();
        if row.is_object() && row["ramp"].is_null() {
            Ok(())
        } else {
            Err(format!("{row}"))
        }
    })
    .await;
    let (to_a, to_c) = shares(&url, 200).await;
    assert!((90..=110).contains(&to_c), "ecs01 {to_a}, ecs03 {to_c}");
    let out = cli_ok(&node, &["backend", "list", "web"]).await;
    assert!(!out.contains("ramping"), "{out}");
}
