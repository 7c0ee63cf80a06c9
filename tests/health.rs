//! Health checks end to end on a three-node cluster (R6, R7, R8, C6):
//! real node processes, demo backends told to fail `/health`, WebSocket
//! tunnels through every node.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::cluster::{backend_list, data_address, find_backend, poll, sluice_ok, Cluster};
use common::tunnel::{assert_drained, wait_echoing, Pinger};
use common::{backend, now_ms};
use serde_json::Value;
use sluice_testkit::{http_get, DemoBackend};

/// Probe every second; two results flip a node's view.
const FAST_CHECKS: &[&str] = &[
    "--health-interval",
    "1s",
    "--health-timeout",
    "1s",
    "--healthy-threshold",
    "2",
    "--unhealthy-threshold",
    "2",
];

async fn update(cluster: &Cluster, extra: &[&str]) {
    let mut args = vec!["group", "update", "web"];
    args.extend_from_slice(extra);
    sluice_ok(cluster.node(1), &args).await;
}

/// `backend list` row of `b` as node `node` shows it.
async fn row(cluster: &Cluster, node: u64, b: &DemoBackend) -> Value {
    let list = backend_list(cluster.node(node), "web").await;
    find_backend(&list, &b.addr().to_string())
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until `b`'s replicated health (seen from node 1) satisfies `ok`.
async fn wait_health(
    cluster: &Cluster,
    b: &DemoBackend,
    within: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    poll(within, what, || async {
        let r = row(cluster, 1, b).await;
        if ok(&r) {
            Ok(r)
        } else {
            Err(r["health"].to_string())
        }
    })
    .await
}

/// Waits until `b` drains because the cluster agreed it fails.
async fn wait_health_drain(cluster: &Cluster, b: &DemoBackend) -> Value {
    wait_health(
        cluster,
        b,
        Duration::from_secs(10),
        "drains for health",
        |r| r["drain"]["cause"] == "health_check_failed",
    )
    .await
}

/// Which backend answers each of `n` requests through node `node`.
async fn spread(cluster: &Cluster, node: u64, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..n {
        let (status, headers, _) = http_get(&cluster.url(node, "/"), Duration::from_secs(5))
            .await
            .expect("request through the listener");
        assert_eq!(status, 200);
        names.push(
            headers
                .get("x-backend")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_string(),
        );
    }
    names
}

/// Opens tunnels through `node` until one lands on backend `name`.
async fn tunnel_to(cluster: &Cluster, node: u64, name: &str) -> Pinger {
    for _ in 0..10 {
        let p = Pinger::start(node, &cluster.ws_url(node, "/")).await;
        if p.backend.as_deref() == Some(name) {
            return p;
        }
        p.abort();
    }
    panic!("no tunnel through node {node} reached {name}");
}

async fn web_with_fast_checks(drain: &[&str], a: &DemoBackend, b: &DemoBackend) -> Cluster {
    let mut cluster = Cluster::formed().await;
    cluster.setup_web(drain, &[a, b]).await;
    update(&cluster, FAST_CHECKS).await;
    // Every node passed under the current revision: a failure now is the
    // backend's own.
    wait_health(&cluster, a, Duration::from_secs(10), "a passed", |r| {
        r["health"]["proven"] == true
    })
    .await;
    cluster
}

/// R6 with draining on (3 s) and R7: a tunnel through every node keeps
/// echoing until the replicated failure time + 3 s, then gets Close 1001,
/// even though the group changes and the backend recovers meanwhile; no
/// new request reaches it once the failure is agreed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_failure_drains_at_failure_time_plus_timeout() {
    let a = backend("a", Duration::ZERO).await;
    let b = backend("b", Duration::ZERO).await;
    let cluster = web_with_fast_checks(&["--drain-timeout", "3s"], &a, &b).await;
    let mut pingers = Vec::new();
    for id in cluster.ids() {
        pingers.push(tunnel_to(&cluster, id, "a").await);
    }
    wait_echoing(&pingers).await;

    a.fail_health(&[]);
    let r = wait_health_drain(&cluster, &a).await;
    let failed_at = r["drain"]["started_at_ms"].as_u64().unwrap();
    let deadline = r["drain"]["deadline_ms"].as_u64().unwrap();
    assert_eq!(deadline, failed_at + 3_000, "{r}");
    assert_eq!(r["health"]["status"], "unhealthy");
    assert!(now_ms() < deadline, "detected too late to check the drain");

    // No new request reaches the failed backend.
    let before = a.requests_started();
    for id in cluster.ids() {
        assert!(spread(&cluster, id, 6).await.iter().all(|n| n == "b"));
    }
    assert_eq!(a.requests_started(), before);

    // R7: a group update and the backend's recovery leave the deadline.
    update(
        &cluster,
        &["--drain-timeout", "60s", "--health-timeout", "2s"],
    )
    .await;
    a.pass_health();
    let r = row(&cluster, 2, &a).await;
    assert_eq!(r["drain"]["deadline_ms"].as_u64(), Some(deadline), "{r}");

    for p in pingers {
        let node = p.node;
        let log = p.finish(Duration::from_secs(10)).await;
        assert_drained(node, &log, failed_at, deadline);
    }
    // After the drain the backend, healthy again, takes new work.
    let back = poll(
        Duration::from_secs(15),
        "a takes requests again",
        || async {
            let names = spread(&cluster, 1, 4).await;
            if names.iter().any(|n| n == "a") {
                Ok(names)
            } else {
                Err(format!("{names:?}"))
            }
        },
    )
    .await;
    eprintln!("after recovery: {back:?}");
}

/// R6 with draining off: the tunnel survives, new work avoids the backend
/// until it recovers. Then R8: a failing health path marks it unhealthy
/// without closing anything, and fixing the path restores traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_off_and_configuration_failures_close_nothing() {
    let a = backend("a", Duration::ZERO).await;
    let b = backend("b", Duration::ZERO).await;
    let cluster = web_with_fast_checks(&["--no-drain"], &a, &b).await;
    let tunnel = tunnel_to(&cluster, 3, "a").await;
    wait_echoing(std::slice::from_ref(&tunnel)).await;

    a.fail_health(&[]);
    wait_health(&cluster, &a, Duration::from_secs(10), "a unhealthy", |r| {
        r["health"]["status"] == "unhealthy"
    })
    .await;
    for id in cluster.ids() {
        assert!(spread(&cluster, id, 6).await.iter().all(|n| n == "b"));
    }
    a.pass_health();
    wait_health(&cluster, &a, Duration::from_secs(10), "a healthy", |r| {
        r["health"]["status"] == "healthy"
    })
    .await;
    poll(Duration::from_secs(5), "a takes requests again", || async {
        let names = spread(&cluster, 1, 4).await;
        if names.iter().any(|n| n == "a") {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;

    // R8: draining on, then a path that fails for every backend's config.
    update(&cluster, &["--drain", "--drain-timeout", "1s"]).await;
    update(&cluster, &["--health-path", "/status/503"]).await;
    let r = wait_health(&cluster, &a, Duration::from_secs(10), "a unhealthy", |r| {
        r["health"]["status"] == "unhealthy"
    })
    .await;
    assert!(r["drain"].is_null(), "a configuration failure drains: {r}");
    assert_eq!(r["health"]["proven"], false);
    // Both backends fail: fail open, and still nothing is closed.
    wait_health(&cluster, &b, Duration::from_secs(10), "b unhealthy", |r| {
        r["health"]["status"] == "unhealthy"
    })
    .await;
    let names = spread(&cluster, 2, 4).await;
    assert!(names.iter().any(|n| n == "a") && names.iter().any(|n| n == "b"));
    // Nothing drains: the tunnel outlives the 1 s drain timeout twice over
    // (ten more echoes, one every 200 ms), and echoes on.
    let since = tunnel.echoes();
    poll(
        Duration::from_secs(10),
        "the tunnel echoes past a drain timeout",
        || async {
            let n = tunnel.echoes();
            if n >= since + 10 {
                Ok(())
            } else {
                Err(format!("{} echoes since both failed", n - since))
            }
        },
    )
    .await;
    let echoes = tunnel.echoes();
    poll(
        Duration::from_millis(600),
        "the tunnel stopped echoing",
        || async {
            if tunnel.echoes() > echoes {
                Ok(())
            } else {
                Err("no echo".to_string())
            }
        },
    )
    .await;
    assert!(row(&cluster, 1, &a).await["drain"].is_null());

    update(&cluster, &["--health-path", "/health"]).await;
    wait_health(&cluster, &a, Duration::from_secs(10), "a healthy", |r| {
        r["health"]["status"] == "healthy"
    })
    .await;
    let log_echoes = tunnel.echoes();
    tunnel.abort();
    assert!(log_echoes > 20);
}

/// C6: one node whose probes fail stops using the backend alone, and no
/// drain starts; when two of three fail, the cluster drains it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_alone_does_not_drain_a_majority_does() {
    let a = backend("a", Duration::ZERO).await;
    let b = backend("b", Duration::ZERO).await;
    let cluster = web_with_fast_checks(&["--drain-timeout", "3s"], &a, &b).await;
    // A tunnel to `a` keeps any drain of it open until its deadline: a drain
    // of an idle backend completes as soon as every node reports, too fast
    // for the checks below to see (or to rule out).
    let held = tunnel_to(&cluster, 1, "a").await;
    wait_echoing(std::slice::from_ref(&held)).await;
    let two: IpAddr = data_address(2);
    a.fail_health(&[two]);
    // Node 2's own view flips (it logs its view); the cluster's does not.
    let r = wait_health(
        &cluster,
        &a,
        Duration::from_secs(10),
        "node 2 reports a failing",
        |r| {
            r["health"]["nodes"]
                .as_array()
                .is_some_and(|ns| ns.iter().any(|n| n["node"] == 2 && n["healthy"] == false))
        },
    )
    .await;
    assert_eq!(r["health"]["status"], "healthy", "{r}");
    assert!(r["drain"].is_null(), "{r}");
    let local = row(&cluster, 2, &a).await;
    assert_eq!(local["health"]["local"]["healthy"], false, "{local}");
    assert!(spread(&cluster, 2, 6).await.iter().all(|n| n == "b"));
    for id in [1, 3] {
        let names = spread(&cluster, id, 6).await;
        assert!(names.iter().any(|n| n == "a"), "node {id}: {names:?}");
    }

    a.fail_health(&[two, data_address(3)]);
    let r = wait_health_drain(&cluster, &a).await;
    assert_eq!(r["health"]["status"], "unhealthy");
    // Node 1 passes its own probes but follows the cluster.
    assert!(spread(&cluster, 1, 6).await.iter().all(|n| n == "b"));
    held.abort();
}
