//! Propagation of a removal (C2): how long after `DELETE …/backends/{B}`
//! returns does the last node still route to `B`?
//!
//! Setup ([`Rig`]; the scale phase sets one up in its own group): group
//! `bench` (drain timeout 0 s, so a removal completes as soon as every node
//! reports it idle) with two [`DemoBackend`]s `bench-a` and `bench-c`
//! (delay 0), a listener on a port free on every node's data address, and
//! a third demo backend `bench-b` that is added and removed in every round.
//!
//! One round:
//! 1. `POST /v1/groups/bench/backends {B}` through node `r mod 3`, and wait
//!    for it to return.
//! 2. Start one probe loop per node: sequential `GET /` over one keep-alive
//!    connection to that node's listener, recording each request's send
//!    time and which backend answered (`x-backend`). Wait until every loop
//!    has been answered by `B` at least once (the add really took effect).
//! 3. `DELETE /v1/groups/bench/backends/{B}` through a follower (the two
//!    followers in turn); `t_send` before the call, `t0` when it returns.
//! 4. Each loop runs on until the trailing run of answers not from `B`
//!    holds ten requests sent at or after `t0`. That node's *stop time* is
//!    the send time of the first request of that run. The round's
//!    propagation is the largest `stop − t0` over the nodes, clamped at 0
//!    (0 means no node routed to `B` after the call returned).
//! 5. Wait until no node knows `B` any more (`GET …/backends/{B}` is 404:
//!    the drain completed on every node), so the next round's add starts
//!    from a clean group.
//!
//! Failed probe requests (non-200 or transport errors) are counted and
//! break a run (they are conservatively treated as possibly `B`'s).
//! The resolution of a stop time is about one probe round trip, reported
//! alongside. The probe loops keep running while the `DELETE` is in
//! flight, so the figures are taken under (light) traffic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::json;
use tokio::sync::{oneshot, watch};

use sluice_testkit::{DemoBackend, DemoBackendConfig};

use super::nodes::{data_address, free_port_on, BenchCluster};
use crate::shutdown::AbortOnDrop;
use crate::stats::Summary;

/// C2: the p99 of "removal returned → last node stops routing to it"
/// should stay under this (both benchmarks report against it).
pub const P99_TARGET: Duration = Duration::from_millis(50);
/// Name of the backend that is added and removed.
const B_NAME: &str = "bench-b";
/// Consecutive answers not from `B` (sent after the call returned) that end
/// a node's probe loop.
const CONSECUTIVE: usize = 10;
/// Longest a round's probe loop may run.
const ROUND_LIMIT: Duration = Duration::from_secs(10);
/// Timeout of one probe request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the removal rounds measured.
#[derive(Debug, Default)]
pub struct PropagationResult {
    /// Rounds run.
    pub rounds: usize,
    /// Per round: `DELETE` returned → last node stops routing to `B`
    /// (clamped at 0).
    pub return_to_stop: Vec<Duration>,
    /// Per round: `DELETE` sent → last node stops routing to `B`.
    pub send_to_stop: Vec<Duration>,
    /// Per round: the `DELETE` call's own latency (commit, apply, and the
    /// wait for every node's data plane).
    pub delete_latency: Vec<Duration>,
    /// Per round: `DELETE` returned → no node lists `B` (drain complete).
    pub return_to_gone: Vec<Duration>,
    /// Per round: `POST` (add) latency.
    pub add_latency: Vec<Duration>,
    /// Rounds in which some node routed a request sent after `t0` to `B`.
    pub late_rounds: usize,
    /// Probe requests sent, over all rounds and nodes.
    pub probes: u64,
    /// Probe requests that failed or were not answered 200.
    pub probe_errors: u64,
    /// Probe round trips (send → answer read).
    pub probe_rtt: Vec<Duration>,
    /// The first few probe failures, described, with how long after `t0`
    /// (negative: before) the request was sent.
    pub failure_samples: Vec<String>,
}

impl PropagationResult {
    /// Summary of [`PropagationResult::return_to_stop`].
    pub fn return_to_stop(&self) -> Summary {
        Summary::of(&self.return_to_stop)
    }
}

/// Who answered one probe request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    B,
    Other,
    Failed,
}

/// One probe request.
#[derive(Clone, Copy, Debug)]
struct Sample {
    sent: Instant,
    answer: Answer,
}

/// What one node's probe loop saw in one round.
#[derive(Debug)]
struct NodeRound {
    /// Send time of the first request of the final run not from `B`.
    stop: Instant,
    /// Whether `B` answered a request sent at or after `t0`.
    late: bool,
    requests: u64,
    errors: u64,
    rtt: Vec<Duration>,
    /// Failures: send time and description.
    failures: Vec<(Instant, String)>,
}

/// A keep-alive client of one node's listener.
#[derive(Clone)]
struct Probe {
    node: usize,
    url: String,
    http: reqwest::Client,
}

impl Probe {
    /// One request; a failure comes with its description.
    async fn once(&self) -> (Answer, Option<String>) {
        let resp = match self.http.get(&self.url).send().await {
            Ok(r) => r,
            Err(e) => {
                let e = anyhow::Error::from(e);
                return (Answer::Failed, Some(format!("{e:#}")));
            }
        };
        let from_b = resp
            .headers()
            .get("x-backend")
            .is_some_and(|v| v.as_bytes() == B_NAME.as_bytes());
        let status = resp.status();
        // Read the body so the connection goes back to the pool.
        match resp.bytes().await {
            Err(e) => (Answer::Failed, Some(format!("{status}, body: {e:#}"))),
            Ok(body) if status != reqwest::StatusCode::OK => {
                let body = String::from_utf8_lossy(&body);
                (Answer::Failed, Some(format!("{status}: {}", body.trim())))
            }
            Ok(_) if from_b => (Answer::B, None),
            Ok(_) => (Answer::Other, None),
        }
    }

    /// Step 2 and 4 of a round (module docs): probes until `t0` is known
    /// and the trailing run of answers not from `B` holds [`CONSECUTIVE`]
    /// requests sent at or after it.
    async fn round(
        &self,
        seen_b: oneshot::Sender<()>,
        mut t0: watch::Receiver<Option<Instant>>,
    ) -> anyhow::Result<NodeRound> {
        let give_up = Instant::now() + ROUND_LIMIT;
        let mut seen_b = Some(seen_b);
        let mut samples: Vec<Sample> = Vec::with_capacity(256);
        let mut rtt = Vec::with_capacity(256);
        let mut failures = Vec::new();
        // Index of the first sample of the trailing run not from B.
        let mut run_start = 0;
        loop {
            if Instant::now() >= give_up {
                bail!(
                    "node {}: {} still routes to {B_NAME} (or fails) {ROUND_LIMIT:?} into the round; last answers: {:?}",
                    self.node + 1,
                    self.url,
                    samples.iter().rev().take(12).map(|s| s.answer).collect::<Vec<_>>()
                );
            }
            let sent = Instant::now();
            let (answer, failure) = self.once().await;
            rtt.push(sent.elapsed());
            if let Some(what) = failure {
                failures.push((sent, what));
            }
            samples.push(Sample { sent, answer });
            if answer != Answer::Other {
                run_start = samples.len();
            }
            if answer == Answer::B {
                if let Some(tx) = seen_b.take() {
                    let _ = tx.send(());
                }
            }
            let Some(t0) = *t0.borrow_and_update() else {
                continue;
            };
            let after_t0 = samples[run_start..].iter().filter(|s| s.sent >= t0).count();
            if after_t0 >= CONSECUTIVE {
                return Ok(NodeRound {
                    stop: samples[run_start].sent,
                    late: samples
                        .iter()
                        .any(|s| s.answer == Answer::B && s.sent >= t0),
                    requests: samples.len() as u64,
                    errors: failures.len() as u64,
                    rtt,
                    failures,
                });
            }
        }
    }
}

/// The group phase 1 measures in.
pub const GROUP: &str = "bench";

/// Sets up group [`GROUP`] and runs `rounds` removal rounds (module docs).
pub async fn run(cluster: &BenchCluster, rounds: usize) -> anyhow::Result<PropagationResult> {
    Rig::start(cluster, GROUP, true)
        .await?
        .rounds(cluster, rounds)
        .await
}

/// A group set up for removal rounds: the two demo backends that stay, B,
/// a listener, and a probe client per node. Other backends may be added to
/// the group meanwhile (the scale phase does), as long as none of them
/// takes work (weight 0): the probes must only meet the demo backends.
pub struct Rig {
    group: String,
    b_addr: String,
    probes: Vec<Arc<Probe>>,
    /// Kept running while the rig lives.
    _backends: [DemoBackend; 3],
}

impl Rig {
    /// Creates `group` (drain timeout 0 s; health checks on or off) with
    /// the demo backends `bench-a` and `bench-c` and a listener, and waits
    /// until every node serves it.
    pub async fn start(cluster: &BenchCluster, group: &str, health: bool) -> anyhow::Result<Rig> {
        let a = DemoBackend::start(DemoBackendConfig::local("bench-a"))
            .await
            .context("starting demo backend bench-a")?;
        let c = DemoBackend::start(DemoBackendConfig::local("bench-c"))
            .await
            .context("starting demo backend bench-c")?;
        let b = DemoBackend::start(DemoBackendConfig::local(B_NAME))
            .await
            .context("starting demo backend bench-b")?;
        let b_addr = b.addr().to_string();

        let admin = &cluster.admin;
        let first = cluster.admin_url(0);
        admin
            .post(
                &first,
                "/v1/groups",
                &json!({"name": group, "drain_timeout_ms": 0}),
            )
            .await?;
        if !health {
            admin
                .json(
                    reqwest::Method::PATCH,
                    &first,
                    &format!("/v1/groups/{group}"),
                    Some(&json!({"health": {"enabled": false}})),
                )
                .await?;
        }
        for backend in [&a, &c] {
            admin
                .post(
                    &first,
                    &format!("/v1/groups/{group}/backends"),
                    &json!({"addr": backend.addr().to_string(), "weight": 100}),
                )
                .await?;
        }
        let addrs: Vec<_> = (1..=cluster.nodes.len() as u64).map(data_address).collect();
        let port = free_port_on(&addrs)?;
        admin
            .post(
                &first,
                "/v1/listeners",
                &json!({"port": port, "group": group, "request_timeout_ms": 5000}),
            )
            .await?;

        let mut probes = Vec::new();
        sluice_testkit::member_tls::install_crypto_provider();
        for (i, addr) in addrs.iter().enumerate() {
            let http = reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(1)
                .timeout(PROBE_TIMEOUT)
                .build()
                .context("building a probe client")?;
            let probe = Probe {
                node: i,
                url: format!("http://{addr}:{port}/"),
                http,
            };
            wait_serving(&probe).await?;
            probes.push(Arc::new(probe));
        }
        Ok(Rig {
            group: group.to_string(),
            b_addr,
            probes,
            _backends: [a, b, c],
        })
    }

    /// Runs `rounds` removal rounds (module docs) in the rig's group.
    pub async fn rounds(
        &self,
        cluster: &BenchCluster,
        rounds: usize,
    ) -> anyhow::Result<PropagationResult> {
        let admin = &cluster.admin;
        let probes = &self.probes;
        let b_addr = &self.b_addr;
        let leader = cluster.leader().await?;
        let followers: Vec<usize> = (0..cluster.nodes.len()).filter(|&i| i != leader).collect();
        let backends_path = format!("/v1/groups/{}/backends", self.group);
        let b_path = format!("{backends_path}/{b_addr}");
        let mut result = PropagationResult::default();
        for round in 0..rounds {
            // 1. Add B.
            let via = cluster.admin_url(round % cluster.nodes.len());
            let started = Instant::now();
            admin
                .post(
                    &via,
                    &backends_path,
                    &json!({"addr": b_addr, "weight": 100}),
                )
                .await
                .with_context(|| format!("round {round}: adding {B_NAME}"))?;
            result.add_latency.push(started.elapsed());

            // 2. Probe every node until each has routed to B.
            let (t0_tx, t0_rx) = watch::channel(None);
            let mut loops = Vec::new();
            let mut seen = Vec::new();
            for probe in probes {
                let (seen_tx, seen_rx) = oneshot::channel();
                let probe = probe.clone();
                let t0_rx = t0_rx.clone();
                loops.push(AbortOnDrop(tokio::spawn(async move {
                    probe.round(seen_tx, t0_rx).await
                })));
                seen.push(seen_rx);
            }
            for (i, seen_rx) in seen.into_iter().enumerate() {
                if tokio::time::timeout(Duration::from_secs(5), seen_rx)
                    .await
                    .map_err(|_| ())
                    .and_then(|r| r.map_err(|_| ()))
                    .is_err()
                {
                    bail!(
                        "round {round}: node {} never routed to {B_NAME} after its add returned",
                        i + 1
                    );
                }
            }

            // 3. Remove B through a follower.
            let via = cluster.admin_url(followers[round % followers.len()]);
            let t_send = Instant::now();
            let removed = admin.delete(&via, &b_path).await;
            let t0 = Instant::now();
            t0_tx.send_replace(Some(t0));
            if let Err(e) = removed {
                return Err(e.context(format!("round {round}: removing {B_NAME}")));
            }
            result.delete_latency.push(t0 - t_send);

            // 4. Collect every node's stop time.
            let mut last_stop: Option<Instant> = None;
            let mut late = false;
            for (i, mut handle) in loops.into_iter().enumerate() {
                let node = (&mut handle.0)
                    .await
                    .map_err(|e| anyhow!("a probe loop panicked: {e}"))?
                    .with_context(|| format!("round {round}"))?;
                last_stop = last_stop.max(Some(node.stop));
                late |= node.late;
                result.probes += node.requests;
                result.probe_errors += node.errors;
                result.probe_rtt.extend(node.rtt);
                for (sent, what) in node.failures {
                    if result.failure_samples.len() < 5 {
                        result.failure_samples.push(format!(
                            "round {round}, node {}, sent {} the DELETE returned: {what}",
                            probe_node(probes, i),
                            relative(sent, t0)
                        ));
                    }
                }
            }
            let last_stop = last_stop.ok_or_else(|| anyhow!("no node was probed"))?;
            result.finish_round(last_stop, t0, t_send);
            if late {
                result.late_rounds += 1;
            }

            // 5. Wait until the removal completed everywhere.
            let gone = wait_gone(cluster, &b_path)
                .await
                .with_context(|| format!("round {round}"))?;
            result.return_to_gone.push(gone - t0);
            result.rounds += 1;
            if (round + 1) % 20 == 0 || round + 1 == rounds {
                eprintln!(
                    "  propagation: {}/{rounds} rounds (last: DELETE {:.2} ms, return → stop {:.2} ms)",
                    round + 1,
                    result.delete_latency[round].as_secs_f64() * 1e3,
                    result.return_to_stop[round].as_secs_f64() * 1e3,
                );
            }
        }
        Ok(result)
    }
}

impl PropagationResult {
    /// Records the round's figures from the last node's stop time.
    fn finish_round(&mut self, last_stop: Instant, t0: Instant, t_send: Instant) {
        self.return_to_stop
            .push(last_stop.saturating_duration_since(t0));
        self.send_to_stop
            .push(last_stop.saturating_duration_since(t_send));
    }
}

/// Polls `probe` until its listener answers 200 (the listener was just
/// added; the add call returned once every node routes by it, so this is
/// quick).
async fn wait_serving(probe: &Probe) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if probe.once().await.0 != Answer::Failed {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(5) {
            bail!("{} does not answer 200", probe.url);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls every node until none knows the backend at `path` any more
/// (`GET …/backends/{addr}` answers 404: its drain completed); returns
/// when. One backend is asked for, not the group's list, so the poll costs
/// the same however many backends the group holds.
async fn wait_gone(cluster: &BenchCluster, path: &str) -> anyhow::Result<Instant> {
    let start = Instant::now();
    for i in 0..cluster.nodes.len() {
        let url = cluster.admin_url(i);
        loop {
            let answer = cluster
                .admin
                .call(reqwest::Method::GET, &url, path, None)
                .await?;
            match answer.status {
                reqwest::StatusCode::NOT_FOUND => break,
                s if s.is_success() => {}
                s => bail!("node {}: GET {path} answered {s}: {}", i + 1, answer.text()),
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("node {} still lists {path} 10 s after its removal", i + 1);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(Instant::now())
}

/// Node number (1-based) of the `i`th probe.
fn probe_node(probes: &[Arc<Probe>], i: usize) -> usize {
    probes[i].node + 1
}

/// `1.23 ms after` / `0.45 ms before`.
fn relative(at: Instant, reference: Instant) -> String {
    if at >= reference {
        format!("{:.2} ms after", (at - reference).as_secs_f64() * 1e3)
    } else {
        format!("{:.2} ms before", (reference - at).as_secs_f64() * 1e3)
    }
}
