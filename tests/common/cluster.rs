//! Three-node clusters for the end-to-end cluster tests (`tests/cluster.rs`).
//!
//! Every node is a real `sluice node run` process: admin API on
//! `127.0.0.1:<free port>`, listeners on its own data address (node `i` on
//! `127.0.0.i`), all nodes sharing one token (it authenticates admin writes
//! and Raft RPCs alike). Nodes start with `bootstrap = false`; node 1 is
//! initialised with `sluice cluster init` and the others join with
//! `sluice cluster join`, as an operator would.
//!
//! Waiting is always polling with a deadline ([`poll`]), never a bare sleep,
//! and every CLI call is bounded ([`CLI_LIMIT`]) so a hung cluster fails the
//! test instead of hanging it.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_testkit::{http_get, DemoBackend, NodeOptions, NodeProcess};

pub use super::poll;
use super::{cli, cli_json, cli_ok, BIN};

/// Upper bound of any one CLI call against the cluster (a write waits for
/// the commit and for every reachable node to apply it).
pub const CLI_LIMIT: Duration = Duration::from_secs(20);

/// Node `id`'s data address: `127.0.0.<id>`.
pub use sluice_testkit::harness::member_data_address as data_address;

/// A port free a moment ago on every one of `addrs` (the listener port must
/// be bindable on each node's data address). Racy like
/// [`sluice_testkit::free_port`]; good enough for tests.
pub fn free_port_on(addrs: &[IpAddr]) -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind((addrs[0], 0)).expect("bind a free port");
        let port = first.local_addr().unwrap().port();
        let others: Result<Vec<_>, _> = addrs[1..]
            .iter()
            .map(|a| TcpListener::bind((*a, port)))
            .collect();
        if others.is_ok() {
            return port;
        }
    }
    panic!("no port free on all of {addrs:?}");
}

/// [`cli`] bounded by [`CLI_LIMIT`].
pub async fn sluice(node: &NodeProcess, args: &[&str]) -> Output {
    tokio::time::timeout(CLI_LIMIT, cli(node, args))
        .await
        .unwrap_or_else(|_| panic!("sluice {args:?} on node {} hung", node.node_id()))
}

/// [`cli_ok`] bounded by [`CLI_LIMIT`]; returns stdout.
pub async fn sluice_ok(node: &NodeProcess, args: &[&str]) -> String {
    tokio::time::timeout(CLI_LIMIT, cli_ok(node, args))
        .await
        .unwrap_or_else(|_| panic!("sluice {args:?} on node {} hung", node.node_id()))
}

/// [`cli_json`] bounded by [`CLI_LIMIT`].
pub async fn sluice_json(node: &NodeProcess, args: &[&str]) -> Value {
    tokio::time::timeout(CLI_LIMIT, cli_json(node, args))
        .await
        .unwrap_or_else(|_| panic!("sluice {args:?} on node {} hung", node.node_id()))
}

/// Runs the CLI against `node` with another token (`SLUICE_TOKEN`).
pub async fn sluice_with_token(node: &NodeProcess, token: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env("SLUICE_NODE", node.admin_url())
        .env("SLUICE_TOKEN", token);
    if let Some(ca) = node.ca_file() {
        command.env("SLUICE_CA", ca);
    }
    let run = command.output();
    tokio::time::timeout(CLI_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("sluice {args:?} on node {} hung", node.node_id()))
        .expect("run sluice")
}

/// `sluice cluster status --output json` on `node`, or why not (the call
/// failed or printed something that is not JSON).
pub async fn try_status(node: &NodeProcess) -> Result<Value, String> {
    let out = sluice(node, &["cluster", "status", "--output", "json"]).await;
    if !out.status.success() {
        return Err(format!(
            "cluster status on node {} failed: {}",
            node.node_id(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "cluster status on node {} is not JSON ({e}): {}",
            node.node_id(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `GET /v1/state` on `node`: the replicated state as it has applied it.
pub async fn try_state(node: &NodeProcess) -> Result<Value, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("{}/v1/state", node.admin_url());
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: {}", resp.status()));
    }
    resp.json().await.map_err(|e| format!("GET {url}: {e}"))
}

/// `sluice backend list <group> --output json` on `node`.
pub async fn backend_list(node: &NodeProcess, group: &str) -> Vec<Value> {
    let v = sluice_json(node, &["backend", "list", group]).await;
    v.as_array()
        .unwrap_or_else(|| panic!("backend list is not an array: {v}"))
        .clone()
}

/// The entry for `addr` in a `backend list` answer.
pub fn find_backend<'a>(list: &'a [Value], addr: &str) -> Option<&'a Value> {
    list.iter().find(|b| b["addr"].as_str() == Some(addr))
}

/// Checks one `cluster status` answer, asked on node `asked`, against a
/// formed cluster of `urls` (node id -> advertised admin URL): it names
/// itself, names a leader, lists exactly these members at these addresses,
/// the leader as `leader` and every other member as `follower`, all
/// reachable; where it knows members' progress (`last_applied`, `lag` not
/// null), they are caught up: the same `last_applied`, lag 0. Returns
/// (leader, term).
fn check_status(asked: u64, s: &Value, urls: &BTreeMap<u64, String>) -> Result<(u64, u64), String> {
    if s["node"].as_u64() != Some(asked) {
        return Err(format!("node {asked} answered as {}", s["node"]));
    }
    let leader = s["leader"]
        .as_u64()
        .ok_or_else(|| format!("node {asked} knows no leader: {s}"))?;
    let term = s["term"]
        .as_u64()
        .ok_or_else(|| format!("node {asked}: no term: {s}"))?;
    let members = s["members"]
        .as_array()
        .ok_or_else(|| format!("node {asked}: no members: {s}"))?;
    let mut ids: Vec<u64> = members.iter().filter_map(|m| m["node"].as_u64()).collect();
    ids.sort_unstable();
    let want: Vec<u64> = urls.keys().copied().collect();
    if ids.len() != members.len() || ids != want {
        return Err(format!(
            "node {asked} lists members {s}, want nodes {want:?}"
        ));
    }
    let mut applied = Vec::new();
    for m in members {
        let id = m["node"].as_u64().unwrap();
        let role = if id == leader { "leader" } else { "follower" };
        if m["role"] != role {
            return Err(format!(
                "node {asked}: member {id} is {}, want {role}",
                m["role"]
            ));
        }
        if m["addr"].as_str() != Some(urls[&id].as_str()) {
            return Err(format!(
                "node {asked}: member {id} at {}, want {}",
                m["addr"], urls[&id]
            ));
        }
        if m["reachable"] != true {
            return Err(format!("node {asked}: member {id} not reachable: {m}"));
        }
        if !(m["lag"].is_null() || m["lag"] == 0) {
            return Err(format!("node {asked}: member {id} lags: {m}"));
        }
        if let Some(a) = m["last_applied"].as_u64() {
            applied.push(a);
        }
    }
    if applied.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("node {asked}: members applied {applied:?}"));
    }
    if asked == leader && applied.len() != members.len() {
        return Err(format!(
            "the leader (node {asked}) does not know every member's progress: {s}"
        ));
    }
    Ok((leader, term))
}

/// Running `sluice` nodes, `nodes[i]` being node `i + 1`; `port` is the
/// listener port once [`Cluster::setup_web`] added one.
pub struct Cluster {
    pub nodes: Vec<NodeProcess>,
    pub port: u16,
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n, one shared token, `bootstrap = false`)
    /// in parallel and waits until each answers `/readyz`. Nothing is
    /// initialised yet.
    pub async fn start(n: u64) -> Cluster {
        Cluster::start_with(n, |_| {}).await
    }

    /// [`Cluster::start`], each node's options changed by `configure` first.
    pub async fn start_with(n: u64, configure: impl Fn(&mut NodeOptions)) -> Cluster {
        let token = NodeOptions::local(1).token;
        let starts: Vec<_> = (1..=n)
            .map(|id| {
                let mut opts = NodeOptions::cluster_member(id, &token);
                configure(&mut opts);
                tokio::task::spawn_blocking(move || {
                    NodeProcess::start(BIN.as_ref(), opts)
                        .unwrap_or_else(|e| panic!("start node {id}: {e:#}"))
                })
            })
            .collect();
        let mut nodes = Vec::new();
        for s in starts {
            nodes.push(s.await.expect("node start task"));
        }
        Cluster { nodes, port: 0 }
    }

    /// Three nodes started with [`Cluster::start_with`], formed like
    /// [`Cluster::formed`].
    pub async fn formed_with(configure: impl Fn(&mut NodeOptions)) -> Cluster {
        let cluster = Cluster::start_with(3, configure).await;
        cluster.init_and_join(&[(2, 1), (3, 1)]).await;
        cluster.wait_formed(Duration::from_secs(10)).await;
        cluster
    }

    /// Like [`Cluster::formed`], with the test-only fault hook on every node
    /// (`[debug] fault_injection = true`, `PUT /v1/debug/faults`).
    pub async fn formed_with_fault_hook() -> Cluster {
        Cluster::formed_with(|opts| {
            opts.extra_toml
                .push_str("[debug]\nfault_injection = true\n")
        })
        .await
    }

    /// Three nodes formed into one cluster: node 1 initialised, nodes 2 and
    /// 3 joined through node 1; returns once every node agrees on it
    /// ([`Cluster::wait_formed`]).
    pub async fn formed() -> Cluster {
        Cluster::formed_with(|_| {}).await
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> &NodeProcess {
        &self.nodes[usize::try_from(id - 1).unwrap()]
    }

    /// Ids of all nodes.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(NodeProcess::node_id).collect()
    }

    /// The nodes whose process runs (not killed).
    pub fn running(&self) -> impl Iterator<Item = &NodeProcess> {
        self.nodes.iter().filter(|n| n.pid().is_some())
    }

    /// Node id -> the admin URL it advertises.
    pub fn advertised(&self) -> BTreeMap<u64, String> {
        self.nodes
            .iter()
            .map(|n| (n.node_id(), n.admin_url()))
            .collect()
    }

    /// `sluice cluster init` on node 1, then for each `(joiner, via)`
    /// `sluice cluster join <joiner's admin URL>` run against node `via`.
    pub async fn init_and_join(&self, joins: &[(u64, u64)]) {
        sluice_ok(self.node(1), &["cluster", "init"]).await;
        for &(joiner, via) in joins {
            let url = self.node(joiner).admin_url();
            sluice_ok(self.node(via), &["cluster", "join", &url]).await;
        }
    }

    /// Polls `cluster status` on every node until all of them describe the
    /// same formed cluster (see `check_status`): one leader, named alike
    /// everywhere in the same term, the others followers, all reachable and
    /// caught up. Returns the leader and the answers, by node.
    pub async fn wait_formed(&self, within: Duration) -> (u64, Vec<Value>) {
        let urls = self.advertised();
        let urls = &urls;
        poll(within, "the cluster is formed", move || async move {
            let mut answers = Vec::new();
            let mut seen = Vec::new();
            for n in &self.nodes {
                let s = try_status(n).await?;
                seen.push(check_status(n.node_id(), &s, urls)?);
                answers.push(s);
            }
            if seen.windows(2).any(|w| w[0] != w[1]) {
                return Err(format!("nodes disagree on (leader, term): {seen:?}"));
            }
            Ok((seen[0].0, answers))
        })
        .await
    }

    /// The current leader, once every running node names the same one.
    pub async fn leader(&self) -> u64 {
        poll(
            Duration::from_secs(5),
            "the running nodes agree on a leader",
            move || async move {
                let mut leaders = Vec::new();
                for n in self.running() {
                    leaders.push(try_status(n).await?["leader"].as_u64());
                }
                match leaders[0] {
                    Some(l) if leaders.iter().all(|x| *x == Some(l)) => Ok(l),
                    _ => Err(format!("leaders named: {leaders:?}")),
                }
            },
        )
        .await
    }

    /// The running nodes other than `leader`, in id order.
    pub fn followers(&self, leader: u64) -> Vec<u64> {
        self.running()
            .map(NodeProcess::node_id)
            .filter(|&id| id != leader)
            .collect()
    }

    /// Creates group `web` with `drain_flags`, adds the backends and a
    /// listener (request timeout 60 s) on a port free on every node's data
    /// address, all through node 1, then waits until every node's listener
    /// answers 200 (which also leaves an idle pooled upstream connection on
    /// each node).
    pub async fn setup_web(&mut self, drain_flags: &[&str], backends: &[&DemoBackend]) {
        let first = self.node(1);
        let mut create = vec!["group", "create", "web"];
        create.extend_from_slice(drain_flags);
        sluice_ok(first, &create).await;
        for b in backends {
            sluice_ok(first, &["backend", "add", "web", &b.addr().to_string()]).await;
        }
        let addrs: Vec<IpAddr> = self.ids().into_iter().map(data_address).collect();
        let port = free_port_on(&addrs);
        sluice_ok(
            first,
            &[
                "listener",
                "add",
                "--port",
                &port.to_string(),
                "--group",
                "web",
                "--request-timeout",
                "60s",
            ],
        )
        .await;
        self.port = port;
        for id in self.ids() {
            let url = self.url(id, "/");
            poll(
                Duration::from_secs(3),
                &format!("{url} answers 200"),
                || {
                    let url = url.clone();
                    async move {
                        match http_get(&url, Duration::from_secs(2)).await {
                            Ok((200, ..)) => Ok(()),
                            Ok((status, _, body)) => Err(format!("{status}: {body}")),
                            Err(e) => Err(format!("{e:#}")),
                        }
                    }
                },
            )
            .await;
        }
    }

    /// A formed three-node cluster ([`Cluster::formed`]) with group `web`
    /// ([`Cluster::setup_web`]).
    pub async fn web(drain_flags: &[&str], backends: &[&DemoBackend]) -> Cluster {
        let mut cluster = Cluster::formed().await;
        cluster.setup_web(drain_flags, backends).await;
        cluster
    }

    /// `http://127.0.0.<id>:<listener port><path>`: the listener on node `id`.
    pub fn url(&self, id: u64, path: &str) -> String {
        format!("http://{}:{}{path}", data_address(id), self.port)
    }

    /// `ws://127.0.0.<id>:<listener port><path>`.
    pub fn ws_url(&self, id: u64, path: &str) -> String {
        format!("ws://{}:{}{path}", data_address(id), self.port)
    }

    /// SIGKILLs node `id` (off the async runtime).
    pub async fn kill(&mut self, id: u64) {
        self.blocking(id, |n| n.kill()).await;
    }

    /// Starts the killed node `id` again with its config and data directory
    /// and waits until it is ready (off the async runtime).
    pub async fn restart(&mut self, id: u64) {
        self.blocking(id, move |n| {
            n.restart()
                .unwrap_or_else(|e| panic!("restart node {id}: {e:#}"))
        })
        .await;
    }

    /// Runs a blocking harness call on node `id` in `spawn_blocking`.
    async fn blocking(&mut self, id: u64, f: impl FnOnce(&mut NodeProcess) + Send + 'static) {
        let i = usize::try_from(id - 1).unwrap();
        let mut node = self.nodes.remove(i);
        let node = tokio::task::spawn_blocking(move || {
            f(&mut node);
            node
        })
        .await
        .expect("blocking harness call");
        self.nodes.insert(i, node);
    }

    /// Polls until `GET /v1/state` answers the same state on every running
    /// node; returns it.
    pub async fn wait_same_state(&self, within: Duration) -> Value {
        poll(
            within,
            "every running node has the same state",
            move || async move {
                let mut states = Vec::new();
                for n in self.running() {
                    states.push((n.node_id(), try_state(n).await?));
                }
                if states.windows(2).all(|w| w[0].1 == w[1].1) {
                    Ok(states.remove(0).1)
                } else {
                    Err(format!("states differ: {states:?}"))
                }
            },
        )
        .await
    }

    /// Polls `backend list web` on every running node until none lists
    /// `addr`; returns, per node, how long after the call that took.
    pub async fn wait_gone_everywhere(&self, addr: &str, within: Duration) -> Vec<(u64, Duration)> {
        let start = Instant::now();
        let mut gone = Vec::new();
        for n in self.running() {
            poll(
                within.saturating_sub(start.elapsed()),
                &format!("node {} no longer lists {addr}", n.node_id()),
                move || async move {
                    let list = backend_list(n, "web").await;
                    match find_backend(&list, addr) {
                        None => Ok(()),
                        Some(b) => Err(format!("still listed: {b}")),
                    }
                },
            )
            .await;
            gone.push((n.node_id(), start.elapsed()));
        }
        gone
    }
}
