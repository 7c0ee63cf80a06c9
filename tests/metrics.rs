//! `/metrics` end to end: the real `sluice` binary scraped after a scripted
//! drain (group, backend, listener, requests, a timed-out request, a
//! tunnel, the backend removed), the families and labels checked with their
//! values, the text checked by `promtool check metrics`; a three-node
//! cluster's leader, term and follower lag; and the example alert rules
//! (`docs/alerts.yml`) checked and unit-tested by promtool.
//!
//! promtool comes with Debian's `prometheus` package; a test that needs it
//! fails saying so when it is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::Cluster;
use common::tunnel::Pinger;
use common::*;
use sluice_testkit::NodeProcess;

/// One series of an exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed `/metrics` answer, with its text.
#[derive(Debug)]
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The series of `name` whose labels include every pair of `with`.
    fn find(&self, name: &str, with: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && with
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one series of `name` with `with`; panics when there
    /// is none or more than one.
    fn value(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        match self.find(name, with).as_slice() {
            [one] => one.value,
            found => panic!(
                "{} series of {name} with {with:?} (want one): {found:?}\n{}",
                found.len(),
                self.text
            ),
        }
    }

    /// Whether `name` has a HELP and a TYPE line of `kind`.
    fn has_family(&self, name: &str, kind: &str) -> bool {
        self.text.contains(&format!("# HELP {name} "))
            && self.text.contains(&format!("# TYPE {name} {kind}\n"))
    }
}

/// Parses the text exposition format as `/metrics` writes it.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels end with }");
                    (name.to_owned(), parse_labels(body))
                }
            };
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

/// Parses `a="x",b="y\"z"`.
fn parse_labels(body: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "a quoted value in {body}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape in {body}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

async fn scrape(node: &NodeProcess) -> Scrape {
    let resp = http_client()
        .get(format!("{}/metrics", node.admin_url()))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4",
        "the text exposition format's content type"
    );
    let text = resp.text().await.unwrap();
    Scrape {
        samples: parse(&text),
        text,
    }
}

/// Runs `promtool` with `args` (and `stdin`); panics with its output when
/// it fails, and with how to install it when it is missing.
fn promtool(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is missing ({e}): these checks need it \
                 (Debian: `apt-get install prometheus`)"
            )
        });
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{said}");
    said
}

/// `promtool check metrics` on a scrape: no error, no lint complaint.
fn promtool_check_metrics(s: &Scrape) {
    let said = promtool(&["check", "metrics"], Some(&s.text));
    assert!(
        said.trim().is_empty(),
        "promtool check metrics complained:\n{said}\n{}",
        s.text
    );
}

/// A client that opens a connection per request: the listener's counts are
/// then the requests'.
fn one_connection_per_request() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_scripted_drain_have_their_families_labels_and_values() {
    let test_started_ms = now_ms();
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    // Health checks on (the group's default), a 1 s request timeout, a 3 s
    // drain.
    let (node, url) = cluster_of_one(&["--drain-timeout", "3s"], &[&b], "1s").await;
    let port = url.rsplit(':').next().unwrap().to_owned();
    let id = node.node_id().to_string();
    let backend_labels = [("node", id.as_str()), ("group", "web"), ("backend", &addr)];
    let listener_labels = [("node", id.as_str()), ("listener", port.as_str())];

    // The node and its Raft on a one-node cluster.
    let s = scrape(&node).await;
    assert!(
        s.samples.iter().all(|x| x.labels["node"] == id),
        "every series carries node"
    );
    assert!(s.value("sluice_raft_term", &[]) >= 1.0);
    assert_eq!(
        s.value("sluice_raft_leader_id", &[]),
        1.0,
        "it leads itself"
    );
    assert_eq!(s.value("sluice_raft_is_leader", &[]), 1.0);
    assert_eq!(s.value("sluice_raft_members", &[]), 1.0);
    let applied = s.value("sluice_raft_applied_index", &[]);
    assert!(
        applied >= 3.0,
        "group, backend and listener were applied: {applied}"
    );
    assert!(s.value("sluice_raft_commit_index", &[]) >= applied);
    assert!(
        s.find("sluice_raft_follower_lag_entries", &[]).is_empty(),
        "no follower"
    );
    assert!(
        s.value("sluice_write_duration_seconds_count", &[]) >= 3.0,
        "the three writes of the set-up went through this node"
    );
    assert!(s.value("sluice_write_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(s.value("sluice_node_ready", &[]), 1.0);
    assert_eq!(s.value("sluice_node_draining", &[]), 0.0);
    assert_eq!(s.value("sluice_drains_active", &[]), 0.0);
    assert_eq!(
        s.value(
            "sluice_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let started = s.value("sluice_process_start_time_seconds", &[]) * 1000.0;
    assert!(
        started >= test_started_ms as f64 - 1000.0 && started <= now_ms() as f64,
        "started at {started} ms, the test at {test_started_ms} ms"
    );
    assert_eq!(s.value("sluice_listener_up", &listener_labels), 1.0);
    assert_eq!(
        s.value(
            "sluice_backend_state",
            &[("backend", &addr), ("state", "active")]
        ),
        1.0
    );
    assert_eq!(
        s.value("sluice_backend_weight", &backend_labels),
        100.0,
        "the default weight"
    );
    assert!(
        s.find("sluice_listener_tls_handshake_failures_total", &[])
            .is_empty(),
        "a plain listener has no TLS handshakes"
    );
    // This node's own probes: healthy once it probed.
    poll(
        Duration::from_secs(10),
        "the backend's local health",
        || async {
            let s = scrape(&node).await;
            match s.find("sluice_backend_healthy", &backend_labels).as_slice() {
                [h] if h.value == 1.0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // Before its first request a backend has its state series but no
    // traffic series (they come with its first request through the node).
    let s = scrape(&node).await;
    assert_eq!(s.value("sluice_backend_weight", &backend_labels), 100.0);
    assert!(
        s.find("sluice_backend_responses_total", &backend_labels)
            .is_empty(),
        "no traffic series before the first request"
    );
    assert!(s
        .find("sluice_backend_response_seconds_count", &backend_labels)
        .is_empty());

    // Ten requests, one of them 300 ms long, each on its own connection.
    let client = one_connection_per_request();
    for i in 0..10 {
        let path = if i == 4 { "/?delay=300ms" } else { "/" };
        let resp = client.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "Hello from ecs01\n");
    }
    // One the backend does not answer within the request timeout: sluice
    // answers 504 itself.
    let resp = client.get(format!("{url}/?delay=3s")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    let code = resp.headers()["x-sluice-error"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(code, "backend_timeout");

    let s = poll(Duration::from_secs(5), "connections closed", || async {
        let s = scrape(&node).await;
        match s.value("sluice_listener_connections_active", &listener_labels) {
            0.0 => Ok(s),
            n => Err(format!("{n} open")),
        }
    })
    .await;
    assert_eq!(
        s.value(
            "sluice_listener_connections_accepted_total",
            &listener_labels
        ),
        11.0,
        "one connection per request"
    );
    let class = |s: &Scrape, class: &str| {
        s.value(
            "sluice_backend_responses_total",
            &[("backend", &addr), ("class", class)],
        )
    };
    assert_eq!(
        class(&s, "2xx"),
        10.0,
        "the requests answered by the backend"
    );
    assert_eq!(class(&s, "5xx"), 1.0, "sluice's 504");
    for c in ["1xx", "3xx", "4xx"] {
        assert_eq!(class(&s, c), 0.0, "{c}");
    }
    assert_eq!(
        s.value(
            "sluice_backend_errors_total",
            &[("backend", &addr), ("code", &code)]
        ),
        1.0
    );
    assert_eq!(
        s.find("sluice_backend_errors_total", &backend_labels).len(),
        1
    );
    assert!(s.value("sluice_backend_bytes_out_total", &backend_labels) >= 170.0);
    assert_eq!(
        s.value("sluice_backend_bytes_in_total", &backend_labels),
        0.0
    );
    let bucket = |s: &Scrape, family: &str, le: &str| {
        s.value(
            &format!("{family}_bucket"),
            &[("backend", &addr), ("le", le)],
        )
    };
    let total = "sluice_backend_response_seconds";
    assert_eq!(s.value(&format!("{total}_count"), &backend_labels), 11.0);
    assert_eq!(bucket(&s, total, "0.25"), 9.0, "nine fast answers");
    assert_eq!(bucket(&s, total, "0.5"), 10.0, "and the 300 ms one");
    assert_eq!(bucket(&s, total, "1"), 10.0, "the 504 came after 1 s");
    assert_eq!(bucket(&s, total, "2.5"), 11.0);
    assert_eq!(bucket(&s, total, "+Inf"), 11.0);
    let sum = s.value(&format!("{total}_sum"), &backend_labels);
    assert!((1.3..2.0).contains(&sum), "0.3 s + 1 s + fast ones: {sum}");
    let ttfb = "sluice_backend_time_to_first_byte_seconds";
    assert_eq!(s.value(&format!("{ttfb}_count"), &backend_labels), 11.0);
    assert_eq!(bucket(&s, ttfb, "0.25"), 9.0);

    // A tunnel holds the drain until its deadline.
    let tunnel = Pinger::start(1, &format!("ws://{}/", url.trim_start_matches("http://"))).await;
    poll(Duration::from_secs(5), "the tunnel counted", || async {
        match scrape(&node)
            .await
            .value("sluice_backend_tunnels", &backend_labels)
        {
            1.0 => Ok(()),
            n => Err(format!("{n} tunnels")),
        }
    })
    .await;
    let deadline_ms = remove(&node, &addr).await.expect("the backend drains");

    // While it drains: the removed backend's series stay.
    let s = scrape(&node).await;
    for (state, want) in [
        ("draining", 1.0),
        ("active", 0.0),
        ("maintenance", 0.0),
        ("unhealthy", 0.0),
        ("slow_start", 0.0),
    ] {
        assert_eq!(
            s.value(
                "sluice_backend_state",
                &[("backend", &addr), ("state", state)]
            ),
            want,
            "state {state}"
        );
    }
    assert_eq!(s.value("sluice_backend_draining", &backend_labels), 1.0);
    let deadline = s.value("sluice_backend_drain_deadline_seconds", &backend_labels);
    assert!(
        (deadline - deadline_ms as f64 / 1000.0).abs() < 1e-6,
        "drain deadline {deadline} s, the removal said {deadline_ms} ms"
    );
    assert_eq!(s.value("sluice_drains_active", &[]), 1.0);
    assert_eq!(s.value("sluice_backend_tunnels", &backend_labels), 1.0);
    assert_eq!(class(&s, "2xx"), 10.0, "the traffic series stay");
    assert_eq!(
        s.value("sluice_listener_connections_active", &listener_labels),
        1.0,
        "the tunnel's connection"
    );
    for kind in [
        ("sluice_backend_responses_total", "counter"),
        ("sluice_backend_errors_total", "counter"),
        ("sluice_backend_bytes_in_total", "counter"),
        ("sluice_backend_bytes_out_total", "counter"),
        ("sluice_backend_connections_open", "gauge"),
        ("sluice_backend_in_flight", "gauge"),
        ("sluice_backend_tunnels", "gauge"),
        ("sluice_backend_time_to_first_byte_seconds", "histogram"),
        ("sluice_backend_response_seconds", "histogram"),
        ("sluice_backend_healthy", "gauge"),
        ("sluice_backend_state", "gauge"),
        ("sluice_backend_drain_deadline_seconds", "gauge"),
        ("sluice_backend_weight", "gauge"),
        ("sluice_listener_connections_accepted_total", "counter"),
        ("sluice_listener_connections_active", "gauge"),
        ("sluice_listener_tls_handshake_failures_total", "counter"),
        ("sluice_listener_up", "gauge"),
        ("sluice_raft_term", "gauge"),
        ("sluice_raft_leader_id", "gauge"),
        ("sluice_raft_is_leader", "gauge"),
        ("sluice_raft_commit_index", "gauge"),
        ("sluice_raft_applied_index", "gauge"),
        ("sluice_raft_follower_lag_entries", "gauge"),
        ("sluice_raft_members", "gauge"),
        ("sluice_write_duration_seconds", "histogram"),
        ("sluice_node_ready", "gauge"),
        ("sluice_node_draining", "gauge"),
        ("sluice_drains_active", "gauge"),
        ("sluice_state_revision", "gauge"),
        ("sluice_build_info", "gauge"),
        ("sluice_process_start_time_seconds", "gauge"),
    ] {
        assert!(s.has_family(kind.0, kind.1), "family {kind:?}\n{}", s.text);
    }
    promtool_check_metrics(&s);

    // Still there half a second before the deadline.
    let before = deadline_ms.saturating_sub(500);
    tokio::time::sleep(Duration::from_millis(before.saturating_sub(now_ms()))).await;
    let s = scrape(&node).await;
    assert_eq!(s.value("sluice_backend_draining", &backend_labels), 1.0);
    assert_eq!(s.value("sluice_backend_tunnels", &backend_labels), 1.0);

    // The deadline closes the tunnel, the drain ends, the series go.
    let gone = poll(
        Duration::from_secs(5),
        "the drained backend's series gone",
        || async {
            let s = scrape(&node).await;
            let left = s
                .samples
                .iter()
                .filter(|x| x.labels.get("backend") == Some(&addr))
                .count();
            if left == 0 && s.value("sluice_drains_active", &[]) == 0.0 {
                Ok((s, now_ms()))
            } else {
                Err(format!("{left} series of {addr} left"))
            }
        },
    )
    .await;
    let (s, gone_at) = gone;
    assert!(gone_at >= deadline_ms, "gone before the deadline");
    let log = tunnel.finish(Duration::from_secs(5)).await;
    assert_eq!(log.close.map(|c| c.0), Some(Some(1001)), "{log:?}");
    assert_eq!(
        s.value("sluice_listener_connections_active", &listener_labels),
        0.0
    );
    assert_eq!(s.value("sluice_drain_cuts_total", &[]), 1.0, "the tunnel");
    promtool_check_metrics(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_reports_one_leader_one_term_and_follower_lag() {
    let c = Cluster::formed().await;
    let leader = c.leader().await;
    // Every node names the same leader and term; only the leader reports
    // its followers' lag, which is 0 once they caught up.
    poll(Duration::from_secs(10), "the members agree", || async {
        let mut terms = Vec::new();
        for id in c.ids() {
            let s = scrape(c.node(id)).await;
            terms.push(s.value("sluice_raft_term", &[]));
            let leader_id = s.value("sluice_raft_leader_id", &[]);
            if leader_id != leader as f64 {
                return Err(format!("node {id} names leader {leader_id}"));
            }
            let is_leader = s.value("sluice_raft_is_leader", &[]);
            if is_leader != f64::from(u8::from(id == leader)) {
                return Err(format!("node {id}: is_leader {is_leader}"));
            }
            if s.value("sluice_raft_members", &[]) != 3.0 {
                return Err(format!("node {id} does not count 3 members"));
            }
            let lags = s.find("sluice_raft_follower_lag_entries", &[]);
            if id != leader {
                assert!(lags.is_empty(), "node {id} follows: {lags:?}");
                continue;
            }
            let mut followers: Vec<String> =
                lags.iter().map(|l| l.labels["follower"].clone()).collect();
            followers.sort();
            let mut want: Vec<String> = c.followers(leader).iter().map(u64::to_string).collect();
            want.sort();
            assert_eq!(followers, want, "a lag series per follower");
            if let Some(l) = lags.iter().find(|l| l.value != 0.0) {
                return Err(format!("{l:?}"));
            }
            promtool_check_metrics(&s);
        }
        if terms.iter().all(|t| *t == terms[0] && *t >= 1.0) {
            Ok(())
        } else {
            Err(format!("terms {terms:?}"))
        }
    })
    .await;
}

#[test]
fn alert_rules_pass_promtool_check_rules_and_their_unit_tests() {
    let said = promtool(&["check", "rules", "docs/alerts.yml"], None);
    assert!(said.contains("SUCCESS"), "{said}");
    let said = promtool(&["test", "rules", "docs/alerts_test.yml"], None);
    assert!(said.contains("SUCCESS"), "{said}");
}
