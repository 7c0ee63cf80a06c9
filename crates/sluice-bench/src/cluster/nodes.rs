//! The three-node cluster under test, formed exactly as the end-to-end tests
//! form theirs (`tests/common/cluster.rs`): real `sluice node run`
//! processes started by the harness ([`NodeProcess`]), one shared token,
//! admin APIs on `127.0.0.1:<free port>`, node `i`'s listeners on its own
//! data address `127.0.0.i`, `bootstrap = false`, heartbeat 100 ms and
//! election timeout 500 ms; then `sluice cluster init` on node 1 and
//! `sluice cluster join <url>` for nodes 2 and 3, as an operator would.
//!
//! Dropping a [`BenchCluster`] kills every node (the harness kills on drop)
//! and removes their temporary directories.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use sluice_testkit::{NodeOptions, NodeProcess};

use super::disk::DiskGuard;
use crate::admin::Admin;

/// How many nodes.
pub const NODES: u64 = 3;
/// How often the waits below poll.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// How often [`BenchCluster::wait_settled`] reads the whole state (it can
/// be large while many drains are pending).
const STATE_POLL_EVERY: Duration = Duration::from_millis(100);

pub use sluice_testkit::harness::member_data_address as data_address;

/// A port that was free a moment ago on every one of `addrs` (a listener
/// binds the same port on each node's data address). Racy, like
/// [`sluice_testkit::free_port`].
pub fn free_port_on(addrs: &[IpAddr]) -> anyhow::Result<u16> {
    for _ in 0..100 {
        let first =
            TcpListener::bind((addrs[0], 0)).with_context(|| format!("binding {}:0", addrs[0]))?;
        let port = first.local_addr()?.port();
        let others: Result<Vec<_>, _> = addrs[1..]
            .iter()
            .map(|a| TcpListener::bind((*a, port)))
            .collect();
        if others.is_ok() {
            return Ok(port);
        }
    }
    bail!("no port is free on all of {addrs:?}")
}

/// Three running, formed nodes and a keep-alive admin client.
pub struct BenchCluster {
    /// `nodes[i]` is node `i + 1`.
    pub nodes: Vec<NodeProcess>,
    /// Admin client carrying the cluster's token.
    pub admin: Admin,
}

impl BenchCluster {
    /// Each node's id and data directory (`data/` in the harness's
    /// directory).
    pub fn data_dirs(&self) -> Vec<(u64, PathBuf)> {
        self.nodes
            .iter()
            .map(|n| (n.node_id(), n.dir().join("data")))
            .collect()
    }

    /// Starts three nodes in parallel, initialises node 1, joins nodes 2
    /// and 3 through node 1 (CLI, blocking: run it off the async runtime)
    /// and returns the nodes. Any node started is killed again when this
    /// fails.
    pub fn start_blocking(sluice: &Path) -> anyhow::Result<Vec<NodeProcess>> {
        let token = NodeOptions::local(1).token;
        let nodes: Vec<NodeProcess> = std::thread::scope(|scope| {
            let starts: Vec<_> = (1..=NODES)
                .map(|id| {
                    let opts = NodeOptions::cluster_member(id, &token);
                    scope.spawn(move || {
                        NodeProcess::start(sluice, opts)
                            .with_context(|| format!("starting node {id}"))
                    })
                })
                .collect();
            starts
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow!("a node start thread panicked"))?
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        cli_ok(&nodes[0], &["cluster", "init"])?;
        for joiner in &nodes[1..] {
            cli_ok(&nodes[0], &["cluster", "join", &joiner.admin_url()])?;
        }
        Ok(nodes)
    }

    /// Wraps started nodes and waits until they form one cluster.
    pub async fn formed(nodes: Vec<NodeProcess>, idle_per_host: usize) -> anyhow::Result<Self> {
        let admin = Admin::new(nodes[0].token(), idle_per_host)?;
        let cluster = BenchCluster { nodes, admin };
        cluster.wait_formed(Duration::from_secs(20)).await?;
        Ok(cluster)
    }

    /// Node `i`'s admin base URL (`i` is 0-based).
    pub fn admin_url(&self, i: usize) -> String {
        self.nodes[i].admin_url()
    }

    /// Every node's admin base URL, in node order.
    pub fn admin_urls(&self) -> Vec<String> {
        self.nodes.iter().map(NodeProcess::admin_url).collect()
    }

    /// `GET /v1/cluster/status` on node `i`.
    pub async fn status(&self, i: usize) -> anyhow::Result<Value> {
        self.admin
            .get(&self.admin_url(i), "/v1/cluster/status")
            .await
    }

    /// The log index node `i`'s data plane routes by.
    pub async fn applied(&self, i: usize) -> anyhow::Result<u64> {
        let v = self
            .admin
            .get(&self.admin_url(i), "/v1/cluster/applied")
            .await?;
        v["applied"]
            .as_u64()
            .ok_or_else(|| anyhow!("node {}: no applied index in {v}", i + 1))
    }

    /// Every node's applied index, in node order.
    pub async fn applied_all(&self) -> anyhow::Result<Vec<u64>> {
        let mut all = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            all.push(self.applied(i).await?);
        }
        Ok(all)
    }

    /// The 0-based index of the leader every node names.
    pub async fn leader(&self) -> anyhow::Result<usize> {
        let mut named = Vec::new();
        for i in 0..self.nodes.len() {
            named.push(self.status(i).await?["leader"].as_u64());
        }
        match named[0] {
            Some(l) if named.iter().all(|n| *n == Some(l)) => {
                let i = usize::try_from(l - 1)?;
                if i >= self.nodes.len() {
                    bail!("leader {l} is not one of the nodes");
                }
                Ok(i)
            }
            _ => bail!("the nodes name different leaders: {named:?}"),
        }
    }

    /// Polls until every node names the same leader, lists all three
    /// members, and all run the same applied index.
    async fn wait_formed(&self, within: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let why = match self.formed_now().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if start.elapsed() >= within {
                return Err(why.context(format!("the cluster did not form within {within:?}")));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn formed_now(&self) -> anyhow::Result<()> {
        self.leader().await?;
        for i in 0..self.nodes.len() {
            let s = self.status(i).await?;
            let members = s["members"].as_array().map_or(0, Vec::len);
            if members != self.nodes.len() {
                bail!("node {} lists {members} members: {s}", i + 1);
            }
        }
        let applied = self.applied_all().await?;
        if applied.windows(2).any(|w| w[0] != w[1]) {
            bail!("applied indexes differ: {applied:?}");
        }
        Ok(())
    }

    /// Backends in `group` and drains pending, in node 1's state.
    pub async fn state_counts(&self, group: &str) -> anyhow::Result<(usize, usize)> {
        let state = self.admin.get(&self.admin_url(0), "/v1/state").await?;
        let count = |v: &Value| {
            v.as_object()
                .map(serde_json::Map::len)
                .or_else(|| v.as_array().map(Vec::len))
                .unwrap_or(0)
        };
        Ok((
            count(&state["groups"][group]["backends"]),
            count(&state["drains"]),
        ))
    }

    /// Waits until the cluster is quiet after a workload: every node runs
    /// the same applied index, it did not move between two polls, and no
    /// drain is pending any more (each removal is followed by one
    /// drain-finished report per node, which the nodes write on their own
    /// and which may trail the removals by a long way). Prints progress
    /// every 10 s. Gives up after `within`, or when `guard` trips.
    pub async fn wait_settled(
        &self,
        within: Duration,
        guard: &DiskGuard,
    ) -> anyhow::Result<Settle> {
        let start = Instant::now();
        let mut first_seen: Option<(u64, Instant)> = None;
        let mut last_state_check = start - STATE_POLL_EVERY;
        let mut last_report = start;
        loop {
            let applied = self.applied_all().await?;
            let same = applied.windows(2).all(|w| w[0] == w[1]);
            if !same {
                first_seen = None;
            } else if first_seen.is_none_or(|(index, _)| index != applied[0]) {
                first_seen = Some((applied[0], Instant::now()));
            } else if last_state_check.elapsed() >= STATE_POLL_EVERY {
                last_state_check = Instant::now();
                let (_, drains) = self.state_counts("").await?;
                let again = self.applied_all().await?;
                if drains == 0 && again == applied {
                    let (index, at) = first_seen.expect("set above");
                    return Ok(Settle::Settled { index, at });
                }
            }
            let give_up = if start.elapsed() >= within {
                Some(format!("not settled {within:?} after the workload"))
            } else {
                guard.tripped().map(|why| format!("stopped waiting: {why}"))
            };
            if give_up.is_some() || last_report.elapsed() >= Duration::from_secs(10) {
                let (_, drains) = self.state_counts("").await?;
                if let Some(why) = give_up {
                    return Ok(Settle::Unsettled {
                        why,
                        applied,
                        pending_drains: drains,
                    });
                }
                eprintln!(
                    "  settling for {:.0} s: applied {applied:?}, {drains} drains pending",
                    start.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// The outcome of [`BenchCluster::wait_settled`].
#[derive(Clone, Debug)]
pub enum Settle {
    /// Every node applied `index` (first seen on all of them `at`) and no
    /// drain is pending.
    Settled { index: u64, at: Instant },
    /// Still busy when the wait ended (`why`).
    Unsettled {
        why: String,
        applied: Vec<u64>,
        pending_drains: usize,
    },
}

/// Runs the CLI against `node` and fails with its output unless it
/// succeeds.
fn cli_ok(node: &NodeProcess, args: &[&str]) -> anyhow::Result<String> {
    let out = node.cli(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "sluice {args:?} on node {} failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            node.node_id(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}
