//! HTTP draining on one node, end to end: the real `sluice` binary, real
//! sockets, demo backends (R1–R5, R9, R11).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sluice_testkit::BackendEvent;

/// The longest a load phase of [`nothing_finished_is_lost_under_load`] may
/// take to reach its count: a bound on a hang, not a speed.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// Starts a GET in the background; resolves to (status, headers, body,
/// time it answered).
fn spawn_get(
    url: String,
) -> tokio::task::JoinHandle<(u16, reqwest::header::HeaderMap, String, Instant)> {
    tokio::spawn(async move {
        let resp = http_client().get(&url).send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        (status, headers, body, Instant::now())
    })
}

async fn started(b: &sluice_testkit::DemoBackend) {
    b.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the request reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_answers_500_with_connection_close() {
    let b = backend("ecs01", Duration::from_secs(3)).await;
    let (node, url) = cluster_of_one(&["--drain-timeout", "1s"], &[&b], "60s").await;
    let req = spawn_get(format!("{url}/"));
    started(&b).await;
    let removed_at = Instant::now();
    remove(&node, &b.addr().to_string()).await.expect("drains");
    let (status, headers, body, at) = req.await.unwrap();
    let after = at - removed_at;
    assert_eq!(status, 500, "{body}");
    assert_eq!(headers["connection"], "close");
    assert!(body.contains("draining"), "{body}");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(1500),
        "500 came {after:?} after the removal, expected about 1 s"
    );
    // The backend saw its request cut, and the drain is complete.
    assert!(wait_removed(&node, &b.addr().to_string(), Duration::from_secs(2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_finishes_before_the_deadline_gets_its_answer() {
    let b = backend("ecs01", Duration::from_secs(2)).await;
    let (node, url) = cluster_of_one(&["--drain-timeout", "4s"], &[&b], "60s").await;
    let req = spawn_get(format!("{url}/"));
    started(&b).await;
    remove(&node, &b.addr().to_string()).await.expect("drains");
    let (status, headers, body, _) = req.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "Hello from ecs01\n");
    assert_eq!(headers["x-backend"], "ecs01");
    // Once the request finished the node had no work left: the drain ends
    // long before its 4 s deadline (R2).
    assert!(wait_removed(&node, &b.addr().to_string(), Duration::from_millis(500)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_answers_504_before_the_drain_deadline() {
    let b = backend("ecs01", Duration::from_secs(3)).await;
    let (node, url) = cluster_of_one(&["--drain-timeout", "10s"], &[&b], "1s").await;
    let sent = Instant::now();
    let req = spawn_get(format!("{url}/"));
    started(&b).await;
    remove(&node, &b.addr().to_string()).await.expect("drains");
    let (status, headers, body, at) = req.await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(headers["via"].to_str().unwrap().contains("sluice"));
    let took = at - sent;
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1600),
        "504 after {took:?}, expected about 1 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_backend_is_removed_at_once() {
    let b = backend("ecs01", Duration::ZERO).await;
    let (node, url) = cluster_of_one(&["--drain-timeout", "300s"], &[&b], "60s").await;
    // Leave an idle pooled upstream connection behind.
    assert_eq!(spawn_get(format!("{url}/")).await.unwrap().0, 200);
    let t = Instant::now();
    remove(&node, &b.addr().to_string()).await;
    assert!(
        wait_removed(&node, &b.addr().to_string(), Duration::from_millis(250)).await,
        "idle backend still listed {:?} after removal",
        t.elapsed()
    );
    // Its idle pooled connection was closed.
    b.wait_for(
        |e| matches!(e, BackendEvent::ConnectionClosed { .. }),
        Duration::from_secs(2),
    )
    .await
    .expect("pooled upstream connection closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readding_during_a_drain_waits_for_the_deadline() {
    let old = backend("ecs01", Duration::from_secs(10)).await;
    let other = backend("ecs02", Duration::ZERO).await;
    let (node, url) = cluster_of_one(&["--drain-timeout", "2s"], &[&old, &other], "60s").await;
    let addr = old.addr().to_string();
    // Two slow requests: round robin puts one on each backend, so ecs01
    // holds work and its drain lasts until the deadline.
    let mut held = spawn_get(format!("{url}/?delay=10s"));
    let mut other_held = spawn_get(format!("{url}/?delay=10s"));
    started(&old).await;
    let deadline = remove(&node, &addr).await.expect("drains");
    let v = cli_json(&node, &["backend", "add", "web", &addr]).await;
    assert_eq!(v["state"], "draining");
    assert_eq!(v["drain"]["then"], "reactivate");
    assert_eq!(v["drain"]["deadline_ms"].as_u64(), Some(deadline));
    let before = old.requests_started();
    for _ in 0..10 {
        assert_eq!(spawn_get(format!("{url}/")).await.unwrap().0, 200);
    }
    assert_eq!(
        old.requests_started(),
        before,
        "R5: no new work during the drain"
    );
    // At the deadline the held request is cut and ecs01 becomes active.
    let (status, ..) = tokio::select! {
        r = &mut held => r.unwrap(),
        r = &mut other_held => r.unwrap(),
    };
    assert_eq!(status, 500);
    assert!(now_ms() + 50 >= deadline);
    poll(Duration::from_secs(2), "ecs01 active again", || async {
        let v = cli_json(&node, &["backend", "list", "web"]).await;
        let b = v
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["addr"] == addr.as_str())
            .cloned()
            .unwrap();
        if b["state"] == "active" {
            Ok(())
        } else {
            Err(format!("still {b}"))
        }
    })
    .await;
    for _ in 0..10 {
        assert_eq!(spawn_get(format!("{url}/?delay=0s")).await.unwrap().0, 200);
    }
    assert!(
        old.requests_started() >= before + 4,
        "ecs01 takes new work again"
    );
    held.abort();
    other_held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_draining_removal_cuts_at_once() {
    let b = backend("ecs01", Duration::from_secs(3)).await;
    let (node, url) = cluster_of_one(&["--no-drain"], &[&b], "60s").await;
    let req = spawn_get(format!("{url}/"));
    started(&b).await;
    let removed_at = Instant::now();
    remove(&node, &b.addr().to_string()).await;
    let (status, _, _, at) = req.await.unwrap();
    assert_eq!(status, 500);
    assert!(
        at - removed_at < Duration::from_millis(300),
        "cut after {:?}",
        at - removed_at
    );
    assert!(wait_removed(&node, &b.addr().to_string(), Duration::from_secs(1)).await);
}

/// R11 under load: 64 clients keep sending through the removal of ecs01
/// and not one request fails. The load runs until ecs01 has served a
/// hundred requests, through the removal and its drain, and on for a
/// thousand answers after the drain: counts, not rates (how fast sluice
/// serves is the benchmark's business, not this test's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_finished_is_lost_under_load() {
    let a = backend("ecs01", Duration::ZERO).await;
    let b = backend("ecs02", Duration::ZERO).await;
    let (node, url) = cluster_of_one(&["--drain-timeout", "2s"], &[&a, &b], "60s").await;
    let client = http_client();
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, url, ok, bad, stop) = (
            client.clone(),
            url.clone(),
            ok.clone(),
            bad.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(format!("{url}/?delay=10ms")).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!("non-2xx: {} {:?}", r.status(), r.text().await);
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let load = Instant::now();
    let served_before = poll(LOAD_LIMIT, "ecs01 serves under load", || async {
        let n = a.requests_started();
        if n > 100 {
            Ok(n)
        } else {
            Err(format!("ecs01 started {n}"))
        }
    })
    .await;
    remove(&node, &a.addr().to_string()).await;
    let removed = Instant::now();
    // The load goes on through the drain and after it.
    assert!(
        wait_removed(&node, &a.addr().to_string(), LOAD_LIMIT).await,
        "the drain of ecs01 ends under load"
    );
    let after_drain = ok.load(Ordering::Relaxed);
    poll(LOAD_LIMIT, "answers after the drain", || async {
        let n = ok.load(Ordering::Relaxed);
        if n > 1000 && n >= after_drain + 1000 {
            Ok(())
        } else {
            Err(format!("{n} answered, {after_drain} when the drain ended"))
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "{} answered in {:.1} s ({:.1} s after the removal)",
        ok.load(Ordering::Relaxed),
        load.elapsed().as_secs_f64(),
        removed.elapsed().as_secs_f64()
    );
    assert!(served_before > 100, "ecs01 served {served_before} before");
    assert_eq!(bad.load(Ordering::Relaxed), 0, "R11: no request failed");
    assert!(
        ok.load(Ordering::Relaxed) > 1000,
        "{} ok",
        ok.load(Ordering::Relaxed)
    );
    assert!(wait_removed(&node, &a.addr().to_string(), Duration::from_secs(3)).await);
}
