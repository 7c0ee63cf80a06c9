//! The drain workload: WebSocket tunnels and slow requests through every
//! node's listener to backends this process serves, and removals of those
//! backends while the work is open.
//!
//! Each cycle adds two fresh backends X and Y to group `drain`, opens
//! tunnels and slow requests through every node, and a few seconds later
//! removes X and the previous cycle's Y (which must not have been touched
//! by X's removal) through a random node. The slow requests outlast the
//! drain timeout, so the deadline decides their fate. A trickle of quick
//! requests through random nodes checks that no node routes to a backend
//! after applying its removal (the backends log every hit with the
//! routing node's revision). Pollers ask every node, every 100 ms, for its
//! applied index and for each draining backend's deadline.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use sluice_jepsen::history::{
    AppliedSeen, DeadlineSeen, NodeId, Outcome, Removal, SlowRequest, Tunnel, TunnelEnd,
};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::admin::DRAIN_GROUP;
use super::backends::Backends;
use super::clients::{header_u64, outcome, Api, Reply, WRITE_TIMEOUT};
use super::{now, Recorder, Rng, Stop, NODES};

/// Tunnels opened through each node per cycle.
const TUNNELS_PER_NODE: usize = 3;
/// Slow requests sent through each node per cycle.
const REQUESTS_PER_NODE: usize = 2;
/// When, into a cycle, its removals are made.
const REMOVE_AFTER: Duration = Duration::from_secs(3);
/// How often the pollers ask each node.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How long a removed backend is watched by the pollers, at most.
const WATCH_FOR: Duration = Duration::from_secs(60);

/// What the drain workload needs.
#[derive(Debug, Clone)]
pub struct Drain {
    pub api: Api,
    pub backends: Arc<Backends>,
    pub rec: Arc<Recorder>,
    pub seed: u64,
    /// Host ports of the nodes' listeners, node 1..=3.
    pub listener_ports: [u16; 3],
    pub drain_timeout_ms: u64,
    pub tolerance_ms: i64,
}

/// A removed backend the pollers watch, and the nodes where it is gone.
#[derive(Debug)]
struct Watched {
    backend: String,
    since: Instant,
    gone_on: BTreeSet<NodeId>,
}

type Watch = Arc<Mutex<Vec<Watched>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Drain {
    fn listener(&self, n: NodeId) -> u16 {
        let i = usize::try_from(n.saturating_sub(1)).unwrap_or(0);
        self.listener_ports[i.min(2)]
    }

    /// Runs cycles until `stop`; then, once `healed`, keeps the tunnels
    /// open until every node has applied the last removal and its deadline
    /// has passed (plus the tolerance), lets the slow requests end, and
    /// closes what is left.
    pub async fn run(self, mut stop: Stop, mut healed: Stop) {
        let this = Arc::new(self);
        let watch: Watch = Arc::default();
        let (close_tx, close) = Stop::new();
        let mut background = JoinSet::new();
        for n in NODES {
            background.spawn(this.clone().poll(n, watch.clone(), close.clone()));
        }
        background.spawn(this.clone().trickle(stop.clone()));
        let mut tunnels = JoinSet::new();
        let mut requests = JoinSet::new();
        let mut rng = Rng::new(this.seed, 0x3000);
        let cycle = Duration::from_millis(this.drain_timeout_ms + 4000);
        let mut survivors: Vec<String> = Vec::new();
        let mut last_deadline_ms: i64 = 0;
        let mut last_index: u64 = 0;
        while !stop.is_set() {
            let t0 = Instant::now();
            let mut fresh = Vec::new();
            for _ in 0..2 {
                match this.backends.spawn().await {
                    Ok(addr) => {
                        this.add(&mut rng, &addr).await;
                        fresh.push(addr);
                    }
                    Err(e) => eprintln!("sluice-jepsen: cannot start a backend: {e}"),
                }
            }
            if !stop.sleep(Duration::from_millis(300)).await {
                break;
            }
            for n in NODES {
                for _ in 0..TUNNELS_PER_NODE {
                    tunnels.spawn(this.clone().tunnel(n, close.clone()));
                }
                for _ in 0..REQUESTS_PER_NODE {
                    let ms = rng.range(this.drain_timeout_ms + 1000, this.drain_timeout_ms + 6000);
                    requests.spawn(this.clone().slow(n, ms));
                }
            }
            if !stop.sleep(REMOVE_AFTER.saturating_sub(t0.elapsed())).await {
                survivors.extend(fresh);
                break;
            }
            // X of this cycle, and every survivor of earlier ones (Y of the
            // last cycle, and any removal that was not acknowledged).
            let mut targets = std::mem::take(&mut survivors);
            let mut fresh = fresh.into_iter();
            targets.extend(fresh.next());
            survivors.extend(fresh);
            for b in targets {
                match this.remove(&mut rng, &b, &watch).await {
                    Some((deadline, index)) => {
                        last_deadline_ms = last_deadline_ms.max(deadline);
                        last_index = last_index.max(index);
                    }
                    None => survivors.push(b),
                }
            }
            while tunnels.try_join_next().is_some() {}
            while requests.try_join_next().is_some() {}
            if !stop.sleep(cycle.saturating_sub(t0.elapsed())).await {
                break;
            }
        }
        // Let the last drains end with the tunnels open: after the heal,
        // until every node shows the last removal applied (at most 20 s)
        // and its deadline has passed, plus the tolerance and a margin.
        healed.wait().await;
        let bound = Instant::now() + Duration::from_secs(20);
        while !this.applied_everywhere(last_index) && Instant::now() < bound {
            tokio::time::sleep(POLL_EVERY).await;
        }
        let end_ms = (last_deadline_ms).max(now() / 1000) + this.tolerance_ms + 1500;
        let wait_ms = (end_ms - now() / 1000).clamp(0, 20_000);
        tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))).await;
        while requests.join_next().await.is_some() {}
        let _ = close_tx.send(true);
        while tunnels.join_next().await.is_some() {}
        while background.join_next().await.is_some() {}
    }

    /// Whether every node's last polled applied index is `index` or later.
    fn applied_everywhere(&self, index: u64) -> bool {
        self.rec.with(|h| {
            NODES.iter().all(|&n| {
                h.drains
                    .applied_seen
                    .iter()
                    .rev()
                    .find(|a| a.node == n)
                    .is_some_and(|a| a.index >= index)
            })
        })
    }

    /// Adds `addr` to the group through a random node (three tries).
    async fn add(&self, rng: &mut Rng, addr: &str) {
        let body = json!({ "addr": addr });
        let path = format!("/v1/groups/{DRAIN_GROUP}/backends");
        for _ in 0..3 {
            let n = rng.node();
            let reply = self
                .api
                .call(n, Method::POST, &path, Some(&body), WRITE_TIMEOUT)
                .await;
            if matches!(outcome(&reply), Outcome::Ok { .. }) {
                return;
            }
        }
    }

    /// Removes `b` through a random node and records it; the deadline (or
    /// the removal's time when it completed at once) and the log index if
    /// it was acknowledged, `None` to try again next cycle.
    async fn remove(&self, rng: &mut Rng, b: &str, watch: &Watch) -> Option<(i64, u64)> {
        let n = rng.node();
        let invoke = now();
        let reply = self
            .api
            .call(
                n,
                Method::DELETE,
                &format!("/v1/groups/{DRAIN_GROUP}/backends/{b}"),
                None,
                WRITE_TIMEOUT,
            )
            .await;
        let complete = now();
        let outcome = outcome(&reply);
        let (deadline_ms, log_index, revision) = match &reply {
            Reply::Answer { headers, body, .. } => (
                body.get("drain")
                    .and_then(|d| d.get("deadline_ms"))
                    .and_then(Value::as_i64),
                header_u64(headers, "x-sluice-log-index"),
                header_u64(headers, "x-sluice-revision"),
            ),
            _ => (None, None, None),
        };
        let acknowledged = matches!(outcome, Outcome::Ok { .. });
        self.rec.with(|h| {
            h.drains.removals.push(Removal {
                backend: b.to_string(),
                node: n,
                invoke,
                complete,
                deadline_ms,
                log_index,
                revision,
                outcome,
            })
        });
        lock(watch).push(Watched {
            backend: b.to_string(),
            since: Instant::now(),
            gone_on: BTreeSet::new(),
        });
        acknowledged.then(|| {
            (
                deadline_ms.unwrap_or(complete / 1000),
                log_index.unwrap_or(0),
            )
        })
    }

    /// One tunnel through node `n`, open until the node closes it or `close`.
    async fn tunnel(self: Arc<Self>, n: NodeId, mut close: Stop) {
        let id = self.rec.id();
        let url = format!("ws://127.0.0.1:{}/ws?id={id}", self.listener(n));
        let connect = tokio_tungstenite::connect_async(url);
        let Ok(Ok((mut ws, _))) = tokio::time::timeout(Duration::from_secs(3), connect).await
        else {
            return;
        };
        let opened = now();
        let _ = ws.send(Message::text("who")).await;
        let (end, closed) = loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                        break (TunnelEnd::Close { code }, Some(now()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break (TunnelEnd::Reset, Some(now())),
                },
                _ = close.wait() => {
                    let at = now();
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "end of run".into() };
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
                    break (TunnelEnd::ClientClosed, Some(at));
                }
            }
        };
        let backend = self.backends.reached(id).unwrap_or_default();
        self.rec.with(|h| {
            h.drains.tunnels.push(Tunnel {
                id,
                node: n,
                backend,
                opened,
                closed,
                end,
            })
        });
    }

    /// One slow request through node `n`: the backend answers after `ms`.
    async fn slow(self: Arc<Self>, n: NodeId, ms: u64) {
        let id = self.rec.id();
        let url = format!("http://127.0.0.1:{}/slow?ms={ms}&id={id}", self.listener(n));
        let sent = now();
        let result = slow_client()
            .get(url)
            .timeout(Duration::from_millis(ms + 10_000))
            .send()
            .await;
        let (answered, status, sluice_error) = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let err = resp
                    .headers()
                    .get("x-sluice-error")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                let _ = resp.bytes().await;
                (Some(now()), Some(status), err)
            }
            Err(e) if e.is_timeout() => (None, None, None),
            Err(_) => (Some(now()), None, None),
        };
        let backend = self.backends.reached(id).unwrap_or_default();
        self.rec.with(|h| {
            h.drains.requests.push(SlowRequest {
                id,
                node: n,
                backend,
                sent,
                answered,
                status,
                sluice_error,
            })
        });
    }

    /// Quick requests through random nodes until `stop`: only their hits
    /// on the backends are recorded.
    async fn trickle(self: Arc<Self>, mut stop: Stop) {
        let mut rng = Rng::new(self.seed, 0x3100);
        let client = slow_client();
        while stop.sleep(Duration::from_millis(50)).await {
            let n = rng.node();
            let url = format!("http://127.0.0.1:{}/quick", self.listener(n));
            let _ = client
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|r| r.bytes());
        }
    }

    /// Polls node `n` until `close`: its applied index, and the drain of
    /// each watched backend it still shows.
    async fn poll(self: Arc<Self>, n: NodeId, watch: Watch, mut close: Stop) {
        let timeout = Duration::from_millis(500);
        loop {
            let t = Instant::now();
            if let Reply::Answer { status, body, .. } =
                self.api.get(n, "/v1/cluster/applied", timeout).await
            {
                if let (true, Some(index)) = (
                    status.is_success(),
                    body.get("applied").and_then(Value::as_u64),
                ) {
                    let at = now();
                    self.rec.with(|h| {
                        h.drains
                            .applied_seen
                            .push(AppliedSeen { node: n, index, at })
                    });
                }
            }
            let backends: Vec<String> = {
                let mut w = lock(&watch);
                w.retain(|b| b.since.elapsed() < WATCH_FOR);
                w.iter()
                    .filter(|b| !b.gone_on.contains(&n))
                    .map(|b| b.backend.clone())
                    .collect()
            };
            for b in backends {
                let path = format!("/v1/groups/{DRAIN_GROUP}/backends/{b}");
                let Reply::Answer { status, body, .. } = self.api.get(n, &path, timeout).await
                else {
                    continue;
                };
                let at = now();
                if status.as_u16() == 404 {
                    let mut w = lock(&watch);
                    for x in w.iter_mut().filter(|x| x.backend == b) {
                        x.gone_on.insert(n);
                    }
                    continue;
                }
                let drain = body.get("drain");
                let id = drain.and_then(|d| d.get("id")).and_then(Value::as_u64);
                let deadline = drain
                    .and_then(|d| d.get("deadline_ms"))
                    .and_then(Value::as_i64);
                if let (true, Some(drain), Some(deadline_ms)) = (status.is_success(), id, deadline)
                {
                    self.rec.with(|h| {
                        h.drains.deadlines_seen.push(DeadlineSeen {
                            node: n,
                            backend: b.clone(),
                            drain,
                            deadline_ms,
                            at,
                        })
                    });
                }
            }
            if !close.sleep(POLL_EVERY.saturating_sub(t.elapsed())).await {
                return;
            }
        }
    }
}

/// A client for requests through the listeners: one connection per
/// request (a drain closes the connection with its answer).
fn slow_client() -> reqwest::Client {
    super::clients::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}
