//! The dashboard (`GET /` on the admin port) rendered by headless
//! Chromium on a three-node cluster during a drain. **Needs Chromium**
//! (Debian's `chromium` package; `SLUICE_CHROMIUM` names another binary):
//! without it the test fails and says so.
//!
//! The story: a three-node cluster, backend `ecs01` in group `web` holding
//! a WebSocket tunnel through node 1 and a slow request through node 3,
//! nothing through node 2; then `ecs02` is added and `ecs01` removed with a
//! 20 s drain. The page, as Chromium renders it from node 1, must show the
//! drain's row with its id, a countdown in seconds below 20 and above 0
//! that goes down between two loads a second apart, one row per node with
//! what that node still holds (`1 tunnel`, `1 request`, node 2 finished),
//! every member and the leader, and each backend's state on each node. `/v1/overview`
//! answers the same figures from any node, and neither it nor the page
//! needs the token. After the deadline the drain is gone from the page;
//! with node 3 stopped (SIGSTOP: it takes connections but answers nothing)
//! the overview answers within about 500 ms and the page shows node 3
//! unreachable.
//!
//! With `SLUICE_DASHBOARD_SCREENSHOT=docs/dashboard.png` the test also
//! writes the README's screenshot of the live drain (1280×900).
//!
//! Run alone: `cargo test --test dashboard`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::chromium::{Chromium, Dom};
use common::cluster::*;
use common::tunnel::*;
use common::*;
use serde_json::Value;
use sluice_testkit::BackendEvent;

/// The removed backend's drain timeout.
const DRAIN_S: f64 = 20.0;
/// Virtual time a page gets to fetch and render before its DOM is dumped.
const RENDER_BUDGET: Duration = Duration::from_millis(2500);

/// `GET url` without a token; the status, the headers and the body.
async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = http_client().get(url).send().await.expect(url);
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect(url))
}

async fn overview(node: &sluice_testkit::NodeProcess) -> Value {
    let (status, _, body) = get(&format!("{}/v1/overview", node.admin_url())).await;
    assert_eq!(status, 200, "/v1/overview without a token: {body}");
    serde_json::from_str(&body).expect("/v1/overview is JSON")
}

/// What the page's row for node `node` of the one drain says: (requests,
/// tunnels, finished, text).
fn drain_row(dom: &Dom, node: u64) -> (String, String, String, String) {
    let row = dom.one(&format!("data-drain-node=\"{node}\""));
    (
        row.attr("data-requests").unwrap_or_default(),
        row.attr("data-tunnels").unwrap_or_default(),
        row.attr("data-finished").unwrap_or_default(),
        row.text(),
    )
}

/// The countdown the page shows, in seconds, checked against the deadline:
/// the page was loaded at `loaded` (Unix ms) and dumped at `dumped`, and
/// counts on the server's clock, so it shows at most what was left at the
/// load and at least what was left at the dump, less the render budget it
/// may have run ahead in virtual time (0.1 s rounding either way).
fn countdown(dom: &Dom, deadline: u64, loaded: u64, dumped: u64) -> f64 {
    let c = dom.one("data-countdown");
    let shown: f64 = c
        .attr("data-remaining-s")
        .expect("the countdown has data-remaining-s")
        .parse()
        .expect("data-remaining-s is a number");
    assert!(
        shown > 0.0 && shown < DRAIN_S,
        "countdown {shown} s is not within (0, {DRAIN_S}) s"
    );
    let most = (deadline - loaded) as f64 / 1000.0 + 0.1;
    let least = (deadline - dumped) as f64 / 1000.0 - RENDER_BUDGET.as_secs_f64() - 0.1;
    assert!(
        (least..=most).contains(&shown),
        "countdown {shown} s, want within [{least:.1}, {most:.1}] s (deadline {deadline})"
    );
    assert!(
        c.text().ends_with(" s"),
        "the countdown reads {:?}, want seconds",
        c.text()
    );
    shown
}

/// Loads the dashboard of `admin_url` in Chromium; returns the DOM and
/// when the load started and ended (Unix ms).
async fn load(chromium: &Chromium, admin_url: &str) -> (Dom, u64, u64) {
    let loaded = now_ms();
    let dom = chromium
        .dump_dom(&format!("{admin_url}/"), RENDER_BUDGET)
        .await;
    (dom, loaded, now_ms())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_a_live_drain_on_three_nodes() {
    let chromium = Chromium::find();
    let ecs01 = backend("ecs01", Duration::ZERO).await;
    let ecs02 = backend("ecs02", Duration::ZERO).await;
    let mut cluster = Cluster::formed().await;
    cluster
        .setup_web(&["--drain-timeout", "20s"], &[&ecs01])
        .await;
    let admin1 = cluster.node(1).admin_url();

    // The page and its policy, without a token.
    let (status, headers, body) = get(&format!("{admin1}/")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    assert!(body.contains("<script>") && !body.contains("<script src"));

    // Work held on ecs01: a tunnel through node 1, a slow request through
    // node 3, nothing through node 2.
    let tunnels = vec![Pinger::start(1, &cluster.ws_url(1, "/chat")).await];
    wait_echoing(&tunnels).await;
    let slow_url = cluster.url(3, "/?delay=60s");
    let slow = tokio::spawn(async move {
        let resp = http_client()
            .get(&slow_url)
            .send()
            .await
            .expect("slow request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    });
    // That request itself, not the tunnel's upgrade or a probe.
    let started = ecs01
        .wait_for(
            |e| matches!(e, BackendEvent::RequestStarted { path } if path.contains("delay=60s")),
            Duration::from_secs(5),
        )
        .await;
    assert!(started.is_some(), "ecs01 got the slow request");
    sluice_ok(
        cluster.node(1),
        &["backend", "add", "web", &ecs02.addr().to_string()],
    )
    .await;
    let ecs01_addr = ecs01.addr().to_string();
    let removed = sluice_json(cluster.node(2), &["backend", "remove", "web", &ecs01_addr]).await;
    let drain = removed["drain"]["id"].as_u64().expect("a drain id");
    let deadline = removed["drain"]["deadline_ms"]
        .as_u64()
        .expect("a deadline");
    let drain_id = format!("d{drain}");

    // The JSON from a follower: every node's part of the drain, once node
    // 2's report that it holds nothing is in.
    let o = poll(
        Duration::from_secs(5),
        "node 2 finished the drain",
        || async {
            let o = overview(cluster.node(3)).await;
            match o["drains"][0]["nodes"][1]["finished"] == true {
                true => Ok(o),
                false => Err(o.to_string()),
            }
        },
    )
    .await;
    let d = &o["drains"][0];
    assert_eq!(d["id"], drain, "{o}");
    assert_eq!(d["kind"], "backend");
    assert_eq!(d["deadline_ms"], deadline);
    let held: Vec<(u64, u64, u64, bool)> = d["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["reachable"], true, "{n}");
            (
                n["node"].as_u64().unwrap(),
                n["requests"].as_u64().unwrap(),
                n["tunnels"].as_u64().unwrap(),
                n["finished"] == true,
            )
        })
        .collect();
    assert_eq!(
        held,
        vec![(1, 0, 1, false), (2, 0, 0, true), (3, 1, 0, false)],
        "{o}"
    );
    let members: Vec<(u64, bool)> = o["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["node"].as_u64().unwrap(), m["reachable"] == true))
        .collect();
    assert_eq!(members, vec![(1, true), (2, true), (3, true)]);

    if let Some(to) = std::env::var_os("SLUICE_DASHBOARD_SCREENSHOT") {
        let to = Path::new(&to);
        chromium
            .screenshot(
                &format!("{admin1}/"),
                to,
                1280,
                900,
                Duration::from_millis(1500),
            )
            .await;
        eprintln!("wrote {}", to.display());
    }

    // The page, twice, at least a second apart.
    let (first, loaded, dumped) = load(&chromium, &admin1).await;
    let drain_card = first.one(&format!("data-drain=\"{drain_id}\""));
    assert_eq!(drain_card.attr("data-kind").as_deref(), Some("backend"));
    assert!(first.0.contains(&format!("web {ecs01_addr}")));
    let before = countdown(&first, deadline, loaded, dumped);
    let rows: Vec<_> = [1, 2, 3].iter().map(|&n| drain_row(&first, n)).collect();
    assert_eq!(rows[0].1, "1", "node 1's tunnel: {:?}", rows[0]);
    assert!(rows[0].3.contains("1 tunnel"), "{:?}", rows[0]);
    assert_eq!(rows[2].0, "1", "node 3's request: {:?}", rows[2]);
    assert!(rows[2].3.contains("1 request,"), "{:?}", rows[2]);
    let finished: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(finished, ["false", "true", "false"], "{rows:?}");
    assert!(rows[1].3.contains("finished"), "{:?}", rows[1]);
    assert_eq!(
        first
            .one("data-finished-nodes")
            .attr("data-finished-nodes")
            .as_deref(),
        Some("1")
    );
    assert_eq!(first.all("data-member").len(), 3);
    assert_eq!(first.all("data-role=\"leader\"").len(), 1);
    assert_eq!(first.all("data-reachable=\"false\"").len(), 0);
    // Each backend's state on each node.
    for (addr, state) in [
        (&ecs01_addr, "draining"),
        (&ecs02.addr().to_string(), "active"),
    ] {
        let row = first.one(&format!("data-backend=\"web {addr}\""));
        assert_eq!(row.attr("data-state").as_deref(), Some(state));
        for node in 1..=3 {
            let cell = format!("data-backend-node=\"{node}\" data-state=\"{state}\"");
            assert!(
                row.inner.contains(&cell),
                "{addr} on node {node}: want {state} in {}",
                row.inner
            );
        }
    }

    let wait_until = Instant::now() + Duration::from_secs(1);
    tokio::time::sleep_until(wait_until.into()).await;
    let (second, loaded, dumped) = load(&chromium, &admin1).await;
    let after = countdown(&second, deadline, loaded, dumped);
    assert!(
        after <= before - 0.9,
        "the countdown went from {before} s to {after} s over more than a second"
    );
    assert_eq!(drain_row(&second, 1).1, "1");

    // At the deadline every node closes what it holds; the drain ends and
    // leaves the page.
    for p in tunnels {
        let log = p.finish(Duration::from_secs(25)).await;
        assert_eq!(log.close.map(|c| c.0), Some(Some(1001)), "{log:?}");
    }
    let (status, _) = slow.await.unwrap();
    assert_eq!(status, 500, "the slow request is cut at the deadline");
    cluster
        .wait_gone_everywhere(&ecs01_addr, Duration::from_secs(5))
        .await;
    let (done, ..) = load(&chromium, &admin1).await;
    done.one("data-no-drains");
    assert_eq!(
        done.all(&format!("data-backend=\"web {ecs01_addr}\""))
            .len(),
        0
    );

    // A member that does not answer (stopped: its port takes connections,
    // it answers nothing) costs the overview half a second at most and is
    // shown unreachable; the page still renders.
    let asked = Instant::now();
    overview(cluster.node(1)).await;
    let answering = asked.elapsed();
    cluster.node(3).signal("STOP").unwrap();
    let asked = Instant::now();
    let o = overview(cluster.node(1)).await;
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "/v1/overview with a silent member took {took:?}, want about 500 ms"
    );
    eprintln!("/v1/overview on node 1: {answering:?} with every member answering, {took:?} with node 3 silent");
    assert_eq!(o["members"][2]["reachable"], false, "{o}");
    assert_eq!(o["members"][1]["reachable"], true, "{o}");
    let (down, ..) = load(&chromium, &admin1).await;
    cluster.node(3).signal("CONT").unwrap();
    let m3 = down.one("data-member=\"3\"");
    assert_eq!(m3.attr("data-reachable").as_deref(), Some("false"));
    assert_eq!(
        down.one("data-member=\"1\"")
            .attr("data-reachable")
            .as_deref(),
        Some("true")
    );
    let ecs02_row = down.one(&format!("data-backend=\"web {}\"", ecs02.addr()));
    assert!(
        ecs02_row
            .inner
            .contains("data-backend-node=\"3\" data-state=\"unreachable\""),
        "{}",
        ecs02_row.inner
    );
}
