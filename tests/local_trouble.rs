//! Local trouble is local (N3): a node out of file descriptors keeps its
//! healthy backends healthy. A real node process under a low descriptor
//! limit, its listener flooded with idle client connections until every
//! accept, probe and upstream connect fails with `EMFILE`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::time::{Duration, Instant};

use common::{backend, cli_json, node_with, poll};
use serde_json::Value;
use sluice_testkit::{http_get, DemoBackend, NodeOptions, NodeProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The node's open-file limit: a few dozen for itself, the rest for
/// client connections.
const MAX_OPEN_FILES: u64 = 256;
/// Client connections opened by the flood: well past the limit (the rest
/// wait in the listen backlog).
const FLOOD: usize = 400;
/// Probe every second; two failures would flip the node's view.
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
/// How long the node stays out of descriptors: three times what two
/// failed probes take.
const HOLD: Duration = Duration::from_secs(6);
/// The interval of the rate limit on repeated log lines.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A node under [`MAX_OPEN_FILES`] with group `web` (draining on, fast
/// checks) over `backends` and a listener; returns the node and the
/// listener's `host:port`.
async fn limited_node(backends: &[&DemoBackend]) -> (NodeProcess, String) {
    let mut opts = NodeOptions::local(1);
    opts.max_open_files = Some(MAX_OPEN_FILES);
    // Idle client connections stay for the whole flood.
    opts.extra_toml = "[proxy]\nheader_read_timeout = \"120s\"\n".into();
    let addrs: Vec<String> = backends.iter().map(|b| b.addr().to_string()).collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    node_with(opts, &["--drain-timeout", "60s"], FAST_CHECKS, &addrs, "5s").await
}

/// `group show web`'s entry for `b`.
async fn backend_row(node: &NodeProcess, b: &DemoBackend) -> Value {
    let group = cli_json(node, &["group", "show", "web"]).await;
    let addr = b.addr().to_string();
    group["backends"]
        .as_array()
        .and_then(|list| list.iter().find(|r| r["addr"].as_str() == Some(&addr)))
        .cloned()
        .unwrap_or_else(|| panic!("{addr} not in group web: {group}"))
}

/// Waits until every backend is healthy and proven in the replicated state.
async fn wait_proven(node: &NodeProcess, backends: &[&DemoBackend]) {
    poll(
        Duration::from_secs(15),
        "backends proven healthy",
        || async {
            for b in backends {
                let r = backend_row(node, b).await;
                if r["health"]["status"] != "healthy" || r["health"]["proven"] != true {
                    return Err(r.to_string());
                }
            }
            Ok(())
        },
    )
    .await
}

/// The node's `sluice_connections_accepted_total`.
async fn accepted(node: &NodeProcess) -> Result<u64, String> {
    let (_, _, body) = http_get(
        &format!("{}/metrics", node.admin_url()),
        Duration::from_secs(2),
    )
    .await
    .map_err(|e| e.to_string())?;
    body.lines()
        .filter_map(|l| l.strip_prefix("sluice_connections_accepted_total{"))
        .find_map(|rest| rest.split_once("} "))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| "no sluice_connections_accepted_total".into())
}

/// Sends one `GET /` on an open client connection and reads the answer's
/// head and what came with it.
async fn get_on(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET / HTTP/1.1\r\nhost: flood.test\r\n\r\n")
        .await
        .expect("write the request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = conn.read(&mut buf).await.expect("read the answer");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            let done = text.find("\r\n\r\n").is_some_and(|end| {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                got.len() >= end + 4 + len
            });
            if n == 0 || done {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s");
    String::from_utf8_lossy(&got).into_owned()
}

/// A node out of descriptors: the accept failures are logged a few times,
/// not on every retry; probes that cannot open a socket are "unknown" and
/// drain nothing; a request that needs a new upstream connection gets the
/// node's own 503, not a backend failure; once the flood ends, requests go
/// through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_out_of_descriptors_drains_no_healthy_backend() {
    let a = backend("a", Duration::ZERO).await;
    let b = backend("b", Duration::ZERO).await;
    let (node, listen) = limited_node(&[&a, &b]).await;
    wait_proven(&node, &[&a, &b]).await;
    let mut since = Vec::new();
    for be in [&a, &b] {
        since.push(backend_row(&node, be).await["health"]["since_ms"].clone());
    }

    // One client connection accepted before the flood; no request went to
    // a backend yet, so its first request needs a new upstream connection.
    let before = accepted(&node).await.expect("metrics");
    let mut early = TcpStream::connect(&listen).await.expect("connect early");
    poll(
        Duration::from_secs(5),
        "the node accepted the early connection",
        || async {
            match accepted(&node).await? {
                n if n > before => Ok(()),
                n => Err(format!("accepted {n}")),
            }
        },
    )
    .await;

    let flood_start = Instant::now();
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(
            TcpStream::connect(&listen)
                .await
                .expect("connect (backlog)"),
        );
    }
    // Out of descriptors: the accept loop says so.
    poll(
        Duration::from_secs(20),
        "the node runs out of descriptors",
        || async {
            let log = node.log();
            if log.contains("accept failed") {
                Ok(())
            } else {
                Err(log)
            }
        },
    )
    .await;

    // The data path: no descriptor for an upstream connection is this
    // node's trouble, answered 503 by sluice.
    let answer = get_on(&mut early).await;
    let head = answer.to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 503"),
        "request while out of descriptors: {answer}"
    );
    assert!(
        head.contains("x-sluice-error: node_out_of_resources") && head.contains("out of resources"),
        "the 503 names the node's own trouble: {answer}"
    );

    tokio::time::sleep(HOLD).await;
    drop(flood);
    drop(early);
    // The admin API accepts again once the node has closed the flood.
    poll(
        Duration::from_secs(10),
        "the admin API is back after the flood",
        || async {
            match http_get(
                &format!("{}/livez", node.admin_url()),
                Duration::from_secs(2),
            )
            .await
            {
                Ok((200, _, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let out_of_fds = flood_start.elapsed();

    // Nothing drained, nothing turned unhealthy, in the replicated state.
    for (be, since) in [&a, &b].into_iter().zip(&since) {
        let r = backend_row(&node, be).await;
        assert_eq!(r["state"], "active", "{} after the flood: {r}", be.addr());
        assert!(r.get("drain").is_none(), "{} drained: {r}", be.addr());
        assert_eq!(r["health"]["status"], "healthy", "{}: {r}", be.addr());
        assert_eq!(
            &r["health"]["since_ms"],
            since,
            "{}'s replicated health changed during the flood: {r}",
            be.addr()
        );
        assert!(
            r["health"]["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().all(|v| v["healthy"] == true)),
            "{}: a node reported it unhealthy: {r}",
            be.addr()
        );
    }

    // The log names the node's own trouble, and the accept failures were
    // logged at most once per interval.
    let log = node.log();
    assert!(
        log.contains("health probe not made: this node is out of resources"),
        "no probe marked as the node's trouble; log:\n{log}"
    );
    assert!(
        log.contains("too many open files"),
        "the log does not name the cause; log:\n{log}"
    );
    let accept_lines = log.lines().filter(|l| l.contains("accept failed")).count();
    eprintln!("out of descriptors for {out_of_fds:?}: {accept_lines} accept-failure lines");
    for l in log.lines().filter(|l| l.contains("out of resources")) {
        eprintln!("  {l}");
    }
    let allowed = (out_of_fds.as_secs() / LOG_EVERY.as_secs()) as usize + 2;
    assert!(
        (1..=allowed).contains(&accept_lines),
        "{accept_lines} accept-failure lines in {out_of_fds:?} (at most {allowed} allowed)"
    );

    // Requests go through again, to both backends.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let (status, headers, _) = http_get(&format!("http://{listen}/"), Duration::from_secs(5))
            .await
            .expect("request after the flood");
        assert_eq!(status, 200);
        if let Some(name) = headers.get("x-backend").and_then(|v| v.to_str().ok()) {
            seen.insert(name.to_string());
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "both backends answer after the flood: {seen:?}"
    );
}
