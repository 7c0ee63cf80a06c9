//! A node drains itself (N1), on real processes.
//!
//! - SIGTERM on a node holding a short and a long slow request, a WebSocket
//!   tunnel and an idle keep-alive client: `/readyz` is 503 at once; the
//!   idle client sees a clean end (EOF, no reset) when the accept grace
//!   ends; a request sent on a kept-alive connection during the grace is
//!   answered with `Connection: close`, a new connection during the grace
//!   is served, one after it is refused; the short request completes with
//!   200; at the stop timeout the long one gets 500 with `Connection:
//!   close` naming the node's drain and the tunnel Close 1001 on both
//!   sides; the node exits 0.
//! - `node drain 2` sent to node 1 of a three-node cluster: node 2's
//!   `/readyz` is 503 when the call returns (within 100 ms), every node
//!   shows the same drain id and deadline, node 2's listener stops
//!   accepting after the grace while the others serve, and `node undrain`
//!   brings it back.
//! - A second SIGTERM ends the drain at once; SIGTERM on a node cut off
//!   from its cluster still drains (on its own word) and exits 0; the
//!   restarted node clears its stop and serves. An operator's drain
//!   outlives a stop and a restart, until `node undrain`.
//! - SIGHUP reloads the log level (debug lines appear), refuses an invalid
//!   file, and the node keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::{Duration, Instant};

use common::cluster::{poll, sluice_json, sluice_ok, Cluster};
use common::tunnel::Pinger;
use common::{backend, node_with, now_ms};
use serde_json::Value;
use sluice_testkit::{http_get, BackendEvent, NodeOptions, NodeProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Stop timeout of the stopping node.
const STOP: Duration = Duration::from_secs(4);
/// Its accept grace.
const GRACE: Duration = Duration::from_millis(2000);

/// Polls `node`'s log for up to 5 s until `check` accepts it.
async fn wait_log(node: &NodeProcess, what: &str, check: impl Fn(&str) -> Result<(), String>) {
    poll(Duration::from_secs(5), what, || {
        let verdict = check(&node.log());
        async move { verdict }
    })
    .await;
}

/// Waits (off the runtime) up to `within` for `node` to exit; its status,
/// `None` if it still runs.
async fn exited(
    mut node: NodeProcess,
    within: Duration,
) -> (NodeProcess, Option<std::process::ExitStatus>) {
    tokio::task::spawn_blocking(move || {
        let exit = node.wait_exit(within).unwrap();
        (node, exit)
    })
    .await
    .unwrap()
}

/// Polls `node`'s `/readyz` for up to 500 ms until it answers 503 (the
/// node drains).
async fn wait_not_ready(node: &NodeProcess) {
    poll(Duration::from_millis(500), "readyz 503", || async move {
        match readyz(node).await {
            503 => Ok(()),
            s => Err(format!("{s}")),
        }
    })
    .await;
}

/// Polls `url` for up to 3 s until it answers 200.
async fn wait_serving(url: &str, what: &str) {
    poll(Duration::from_secs(3), what, || async move {
        match http_get(url, Duration::from_secs(1)).await {
            Ok((200, ..)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Starts the stopped `node` again (off the runtime) and waits until it is
/// ready, or, when it is `drained`, until `/readyz` answers at all.
async fn restarted(mut node: NodeProcess, drained: bool) -> NodeProcess {
    tokio::task::spawn_blocking(move || {
        let started = if drained {
            node.restart_drained()
        } else {
            node.restart()
        };
        started.expect("restart");
        node
    })
    .await
    .unwrap()
}

/// A GET of `url` in a task of its own.
fn spawn_get(
    url: String,
) -> tokio::task::JoinHandle<anyhow::Result<(u16, reqwest::header::HeaderMap, String)>> {
    tokio::spawn(async move { http_get(&url, Duration::from_secs(20)).await })
}

/// `GET /readyz`: the status code, or 0 when the node does not answer.
async fn readyz(node: &NodeProcess) -> u16 {
    let url = format!("{}/readyz", node.admin_url());
    match http_get(&url, Duration::from_secs(2)).await {
        Ok((status, ..)) => status,
        Err(_) => 0,
    }
}

/// Sends one request on `stream` and reads its whole answer (the demo
/// backend sends a Content-Length); returns the head, lower-cased.
async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: sluice\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read the answer");
        assert!(n > 0, "closed before a whole answer: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text[..end].to_string();
            }
        }
    }
}

/// Waits for the peer's end of `stream`: `Ok(())` on a clean EOF, `Err`
/// with the error (a reset) otherwise.
async fn wait_eof(stream: &mut TcpStream, within: Duration) -> Result<(), String> {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Err(_) => Err(format!("still open after {within:?}")),
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(n)) => Err(format!("{n} unexpected bytes")),
        Ok(Err(e)) => Err(format!("{e} ({:?})", e.kind())),
    }
}

/// A node over one demo backend (2 s drain, health checks off) with the
/// stop timeout and grace above.
async fn stopping_node() -> (NodeProcess, String, sluice_testkit::DemoBackend) {
    let be = backend("b1", Duration::ZERO).await;
    let mut opts = NodeOptions::local(1);
    opts.stop_timeout = Some(format!("{}ms", STOP.as_millis()));
    opts.accept_grace = Some(format!("{}ms", GRACE.as_millis()));
    let addr = be.addr().to_string();
    let (node, listen) = node_with(
        opts,
        &["--drain-timeout", "2s"],
        &["--no-health-checks"],
        &[&addr],
        "60s",
    )
    .await;
    (node, listen, be)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_node_then_it_exits_cleanly() {
    let (node, listen, be) = stopping_node().await;
    let base = format!("http://{listen}");

    // An idle keep-alive client, a kept-alive client that will send again
    // during the grace, two slow requests and a tunnel.
    let mut idle = TcpStream::connect(&listen).await.unwrap();
    assert!(exchange(&mut idle, "/").await.starts_with("http/1.1 200"));
    let mut again = TcpStream::connect(&listen).await.unwrap();
    assert!(exchange(&mut again, "/").await.starts_with("http/1.1 200"));
    let short = spawn_get(format!("{base}/?delay=1500ms"));
    let long = spawn_get(format!("{base}/?delay=30s"));
    let tunnel = Pinger::start(1, &format!("ws://{listen}/")).await;
    common::tunnel::wait_echoing(std::slice::from_ref(&tunnel)).await;
    for path in ["/?delay=1500ms", "/?delay=30s"] {
        be.wait_for(
            |e| matches!(e, BackendEvent::RequestStarted { path: p } if p == path),
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|| panic!("{path} reached the backend"));
    }

    let signalled = Instant::now();
    let signalled_ms = now_ms();
    node.signal("TERM").unwrap();
    wait_not_ready(&node).await;

    // During the grace: a request on a kept-alive connection is answered
    // and told to close; a new connection is still served, once.
    let head = exchange(&mut again, "/").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    wait_eof(&mut again, Duration::from_secs(1))
        .await
        .expect("closed after the answer");
    let mut late = TcpStream::connect(&listen)
        .await
        .expect("accepted during the grace");
    let head = exchange(&mut late, "/").await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        signalled.elapsed() < GRACE,
        "the grace checks ran late: {:?}",
        signalled.elapsed()
    );

    // The grace ends: the idle client sees a clean end, no reset; new
    // connections are refused.
    wait_eof(&mut idle, GRACE + Duration::from_secs(1))
        .await
        .expect("the idle keep-alive connection ends cleanly");
    let closed_after = signalled.elapsed();
    assert!(
        closed_after >= GRACE - Duration::from_millis(100),
        "idle connection closed before the grace ended: {closed_after:?}"
    );
    assert!(
        TcpStream::connect(&listen).await.is_err(),
        "accepting after the grace"
    );

    // The short request completes; the long one is cut at the stop timeout.
    let (status, _, body) = short.await.unwrap().expect("the short request");
    assert_eq!(status, 200, "{body}");
    let (status, headers, body) = long.await.unwrap().expect("the long request");
    let cut_after = signalled.elapsed();
    assert_eq!(status, 500, "{body}");
    assert_eq!(headers["connection"], "close");
    assert!(body.contains("draining itself"), "{body}");
    assert!(
        cut_after >= STOP - Duration::from_millis(100) && cut_after < STOP + Duration::from_secs(1),
        "cut {cut_after:?} after SIGTERM, stop timeout {STOP:?}"
    );

    // The tunnel: Close 1001 to the client and to the backend at the stop
    // timeout.
    let log = tunnel.finish(Duration::from_secs(5)).await;
    let (code, at) = log.close.unwrap_or_else(|| panic!("no Close: {log:?}"));
    assert_eq!(code, Some(1001), "{log:?}");
    let after = at.saturating_sub(signalled_ms);
    assert!(
        after + 100 >= STOP.as_millis() as u64 && after < STOP.as_millis() as u64 + 1000,
        "Close {after} ms after SIGTERM"
    );
    be.wait_for(
        |e| matches!(e, BackendEvent::WebSocketCloseReceived { code: Some(1001) }),
        Duration::from_secs(2),
    )
    .await
    .expect("the backend got Close 1001");

    let (node, exit) = exited(node, Duration::from_secs(10)).await;
    assert!(exit.is_some_and(|e| e.success()), "exit: {exit:?}");
    let log = node.log();
    assert!(
        log.contains("the cluster recorded this node's stop"),
        "{log}"
    );
    assert!(log.contains("node stopped exit_code=0"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_cuts_the_drain_short_and_a_restart_clears_the_stop() {
    let (node, listen, be) = stopping_node().await;
    let long = spawn_get(format!("http://{listen}/?delay=30s"));
    be.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the request reached the backend");
    node.signal("TERM").unwrap();
    wait_not_ready(&node).await;
    let second = Instant::now();
    node.signal("TERM").unwrap();
    let (status, headers, _) = long.await.unwrap().expect("the long request");
    assert_eq!(status, 500);
    assert_eq!(headers["connection"], "close");
    assert!(
        second.elapsed() < Duration::from_secs(1),
        "cut {:?} after the second signal",
        second.elapsed()
    );
    let (node, exit) = exited(node, Duration::from_secs(8)).await;
    assert!(exit.is_some_and(|e| e.success()), "exit: {exit:?}");

    // Restarted, the node serves at once and clears its stop.
    let node = restarted(node, false).await;
    let (status, ..) = http_get(&format!("http://{listen}/"), Duration::from_secs(5))
        .await
        .expect("served after the restart");
    assert_eq!(status, 200);
    poll(Duration::from_secs(5), "the stop cleared", || {
        let node = &node;
        async move {
            let list = common::cli_json(node, &["node", "list"]).await;
            match &list["nodes"][0]["drain"] {
                Value::Null => Ok(()),
                d => Err(d.to_string()),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_drain_outlives_a_stop_and_a_restart() {
    let (node, listen, _be) = stopping_node().await;
    let drained = common::cli_json(&node, &["node", "drain", "1", "--timeout", "60s"]).await;
    assert_eq!(drained["drain"]["reason"], "operator", "{drained}");
    node.signal("TERM").unwrap();
    let (node, exit) = exited(node, Duration::from_secs(10)).await;
    assert!(exit.is_some_and(|e| e.success()), "exit: {exit:?}");
    let node = restarted(node, true).await;
    // Still drained: not ready, its port closed at once (the drain's grace
    // was over long ago), the same drain listed.
    assert_eq!(readyz(&node).await, 503);
    let list = common::cli_json(&node, &["node", "list"]).await;
    assert_eq!(list["nodes"][0]["drain"]["reason"], "operator", "{list}");
    assert_eq!(
        list["nodes"][0]["drain"]["drain"],
        drained["drain"]["drain"]
    );
    poll(Duration::from_secs(2), "the port closed", || {
        let listen = listen.clone();
        async move {
            match TcpStream::connect(&listen).await {
                Err(_) => Ok(()),
                Ok(_) => Err("accepting".into()),
            }
        }
    })
    .await;
    common::cli_ok(&node, &["node", "undrain", "1"]).await;
    assert_eq!(readyz(&node).await, 200);
    wait_serving(&format!("http://{listen}/"), "serving again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_drain_through_another_node_is_the_same_everywhere_and_undrain_restores_it() {
    let be = backend("b1", Duration::ZERO).await;
    let mut cluster = Cluster::formed_with(|o| o.accept_grace = Some("500ms".into())).await;
    cluster.setup_web(&["--drain-timeout", "5s"], &[&be]).await;
    let slow = spawn_get(cluster.url(2, "/?delay=1s"));
    be.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the request reached the backend");

    let answer = sluice_json(cluster.node(1), &["node", "drain", "2", "--timeout", "20s"]).await;
    let returned = Instant::now();
    let status = readyz(cluster.node(2)).await;
    let probed = returned.elapsed();
    assert_eq!(
        status, 503,
        "node 2 ready {probed:?} after the drain returned"
    );
    assert!(probed < Duration::from_millis(100), "{probed:?}");
    let drain = answer["drain"].clone();
    assert_eq!(drain["reason"], "operator");
    let id = drain["drain"].as_u64().expect("a drain id");
    let deadline = drain["deadline_ms"].as_u64().expect("a deadline");
    for n in [1, 2, 3] {
        let list = sluice_json(cluster.node(n), &["node", "list"]).await;
        let two = &list["nodes"][1];
        assert_eq!(two["node"], 2, "{list}");
        assert_eq!(two["drain"]["drain"].as_u64(), Some(id), "node {n}: {list}");
        assert_eq!(
            two["drain"]["deadline_ms"].as_u64(),
            Some(deadline),
            "node {n}: {list}"
        );
        assert!(list["nodes"][0]["drain"].is_null(), "node {n}: {list}");
        assert_eq!(
            readyz(cluster.node(n)).await,
            if n == 2 { 503 } else { 200 }
        );
    }
    let status = sluice_ok(cluster.node(3), &["cluster", "status"]).await;
    assert!(status.contains("draining (d"), "{status}");

    // The request in flight through node 2 completes; after the grace node
    // 2 accepts nothing while the others serve; it reports drained.
    let (code, _, body) = slow.await.unwrap().expect("the slow request");
    assert_eq!(code, 200, "{body}");
    poll(Duration::from_secs(3), "node 2 refuses connections", || {
        let url = cluster.url(2, "/");
        async move {
            match http_get(&url, Duration::from_secs(1)).await {
                Err(_) => Ok(()),
                Ok((s, ..)) => Err(format!("answered {s}")),
            }
        }
    })
    .await;
    for n in [1, 3] {
        let (code, ..) = http_get(&cluster.url(n, "/"), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(code, 200);
    }
    poll(Duration::from_secs(3), "node 2 reported drained", || {
        let node = cluster.node(1);
        async move {
            let list = sluice_json(node, &["node", "list"]).await;
            match list["nodes"][1]["drain"]["finished"].as_bool() {
                Some(true) => Ok(()),
                _ => Err(list.to_string()),
            }
        }
    })
    .await;

    let back = sluice_json(cluster.node(3), &["node", "undrain", "2"]).await;
    assert!(back["drain"].is_null(), "{back}");
    assert_eq!(readyz(cluster.node(2)).await, 200);
    wait_serving(&cluster.url(2, "/"), "node 2 serves again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_its_cluster_still_drains_on_sigterm() {
    let be = backend("b1", Duration::ZERO).await;
    let mut cluster = Cluster::formed_with(|o| {
        o.stop_timeout = Some("3s".into());
        o.accept_grace = Some("200ms".into());
    })
    .await;
    cluster.setup_web(&["--drain-timeout", "5s"], &[&be]).await;
    let slow = spawn_get(cluster.url(3, "/?delay=1s"));
    be.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the request reached the backend");
    cluster.kill(1).await;
    cluster.kill(2).await;
    let node = cluster.nodes.remove(2);
    node.signal("TERM").unwrap();
    wait_not_ready(&node).await;
    let (code, headers, _) = slow.await.unwrap().expect("the slow request");
    assert_eq!(code, 200);
    assert_eq!(headers["connection"], "close");
    let (node, exit) = exited(node, Duration::from_secs(12)).await;
    assert!(exit.is_some_and(|e| e.success()), "exit: {exit:?}");
    let log = node.log();
    assert!(
        log.contains("did not record this node's stop")
            || log.contains("had not recorded this node's stop"),
        "the node did not say it drained alone:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_log_level_and_the_node_keeps_serving() {
    let be = backend("b1", Duration::ZERO).await;
    let mut opts = NodeOptions::local(1);
    opts.extra_toml = "[log]\nlevel = \"info\"\n".into();
    let addr = be.addr().to_string();
    let (node, listen) = node_with(
        opts,
        &["--drain-timeout", "2s"],
        &["--no-health-checks"],
        &[&addr],
        "60s",
    )
    .await;
    let url = format!("http://{listen}/");
    let config = std::fs::read_to_string(node.config_path()).unwrap();
    assert!(!node.log().contains(" DEBUG "), "debug lines at info level");

    // An invalid file changes nothing.
    std::fs::write(node.config_path(), config.replace("\"info\"", "\"[[\"")).unwrap();
    node.signal("HUP").unwrap();
    wait_log(&node, "the refusal logged", |log| {
        log.contains("SIGHUP: config not reloaded")
            .then_some(())
            .ok_or("not yet".into())
    })
    .await;
    let (code, ..) = http_get(&url, Duration::from_secs(2)).await.unwrap();
    assert_eq!(code, 200);

    // openraft named: an idle node's DEBUG lines are mostly its.
    std::fs::write(
        node.config_path(),
        config.replace("level = \"info\"", "level = \"debug,openraft=debug\""),
    )
    .unwrap();
    node.signal("HUP").unwrap();
    wait_log(&node, "the reload logged", |log| {
        match log.lines().find(|l| l.contains("SIGHUP: config reloaded")) {
            Some(l) if l.contains("applied=log.level") => Ok(()),
            Some(l) => Err(l.to_owned()),
            None => Err("not yet".into()),
        }
    })
    .await;
    let (code, ..) = http_get(&url, Duration::from_secs(2)).await.unwrap();
    assert_eq!(code, 200);
    wait_log(&node, "debug lines", |log| {
        log.contains(" DEBUG ")
            .then_some(())
            .ok_or("none yet".into())
    })
    .await;
    assert!(node.pid().is_some());
}
