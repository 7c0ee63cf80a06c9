//! The nemesis: after a warm-up, until the stop, it picks a fault (seeded),
//! applies it, holds it 4–10 s, heals it and waits 3–5 s. Each fault is
//! recorded with its start, its end and what exactly it did. At the stop it
//! heals the fault in force, then makes sure of everything (every node
//! running, unpaused, unpartitioned, with its own clock, and a voter).

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::json;
use sluice_jepsen::history::{Fault, NodeId};

use super::admin::{self, leader, members};
use super::clients::Api;
use super::docker::Docker;
use super::net::{self, Netns};
use super::{now, Recorder, Rng, Stop, NODES};

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Kill,
    Pause,
    Partition,
    RestartAll,
    Membership,
    Clock,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::RestartAll,
        FaultKind::Membership,
        FaultKind::Clock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::RestartAll => "restart-all",
            FaultKind::Membership => "membership",
            FaultKind::Clock => "clock",
        }
    }

    /// `kill,pause,...` or `all` (duplicates dropped, in the order of
    /// [`FaultKind::ALL`]).
    pub fn parse_list(list: &str) -> Result<Vec<FaultKind>, String> {
        let mut kinds = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "all" {
                kinds.extend(FaultKind::ALL);
            } else {
                kinds.push(item.parse()?);
            }
        }
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown fault {s:?}: expected kill, pause, partition, restart-all, membership, clock or all")
            })
    }
}

/// How long the nodes may take to come back after a start.
const READY_BOUND: Duration = Duration::from_secs(45);

/// The nemesis of a run.
pub struct Nemesis {
    pub docker: Docker,
    pub api: Api,
    pub rec: Arc<Recorder>,
    pub kinds: Vec<FaultKind>,
    pub seed: u64,
    pub warmup: Duration,
    /// Where a removed node's container log is kept before its container goes.
    pub log_dir: std::path::PathBuf,
}

/// A fault in force, with what healing it takes.
enum Active {
    Killed(String),
    Paused(String),
    Partitioned(Vec<Netns>),
    /// Restart-all heals itself; nothing is left to undo.
    Done,
    /// Node removed from the cluster, its container and data gone.
    Removed(NodeId),
    Clock(NodeId),
}

impl Nemesis {
    /// Runs until `stop`, then heals everything.
    pub async fn run(self, mut stop: Stop) {
        let mut rng = Rng::new(self.seed, 0x4000);
        // Kinds are dealt from a shuffled deck: every kind asked for comes
        // once before any comes twice, so a short run sees each of them.
        let mut deck: Vec<FaultKind> = Vec::new();
        if !self.kinds.is_empty() && stop.sleep(self.warmup).await {
            loop {
                if deck.is_empty() {
                    deck = self.kinds.clone();
                    for i in (1..deck.len()).rev() {
                        let j = usize::try_from(rng.next_u64() % (i as u64 + 1)).unwrap_or(0);
                        deck.swap(i, j);
                    }
                }
                let Some(kind) = deck.pop() else { break };
                let start = now();
                let index = self.rec.with(|h| {
                    h.faults.push(Fault {
                        kind: kind.name().into(),
                        detail: String::new(),
                        nodes: Vec::new(),
                        start,
                        end: None,
                        clock_offset_ms: None,
                    });
                    h.faults.len() - 1
                });
                let active = match self.apply(kind, &mut rng, index).await {
                    Ok(a) => a,
                    Err(e) => {
                        // Part of it may be in force: undo everything.
                        let repair = self.heal_all().await;
                        let end = now();
                        self.rec.with(|h| {
                            let f = &mut h.faults[index];
                            f.detail = format!("{} (failed: {e:#})", f.detail);
                            for r in &repair {
                                f.detail += &format!(" (repair: {r})");
                            }
                            f.end = Some(end);
                        });
                        eprintln!("sluice-jepsen: nemesis: {} failed: {e:#}", kind.name());
                        if !stop.sleep(rng.millis(1000, 2000)).await {
                            break;
                        }
                        continue;
                    }
                };
                // A restart of every node is over when they are back: no hold.
                let held =
                    matches!(active, Active::Done) || stop.sleep(rng.millis(4000, 10_000)).await;
                if let Err(e) = self.heal(active).await {
                    eprintln!(
                        "sluice-jepsen: nemesis: healing {} failed: {e:#}",
                        kind.name()
                    );
                    self.rec.with(|h| {
                        h.faults[index].detail += &format!(" (heal failed: {e:#})");
                    });
                }
                let end = now();
                self.rec.with(|h| h.faults[index].end = Some(end));
                if !held || !stop.sleep(rng.millis(3000, 5000)).await {
                    break;
                }
            }
        }
        for e in self.heal_all().await {
            eprintln!("sluice-jepsen: nemesis: final heal: {e}");
        }
    }

    fn describe(&self, index: usize, detail: String, nodes: Vec<NodeId>) {
        self.rec.with(|h| {
            let f = &mut h.faults[index];
            f.detail = detail;
            f.nodes = nodes;
        });
    }

    async fn apply(&self, kind: FaultKind, rng: &mut Rng, index: usize) -> Result<Active> {
        let leader = leader(&self.api).await;
        let role = |n: NodeId| match leader {
            Some(l) if l == n => "leader",
            Some(_) => "follower",
            None => "leader unknown",
        };
        match kind {
            FaultKind::Kill => {
                let n = rng.node();
                self.describe(
                    index,
                    format!("node {n} ({}) killed (SIGKILL), then started", role(n)),
                    vec![n],
                );
                let id = self.docker.must_container(n).await?;
                self.docker.kill(&id).await?;
                Ok(Active::Killed(id))
            }
            FaultKind::Pause => {
                let n = rng.node();
                self.describe(index, format!("node {n} ({}) paused", role(n)), vec![n]);
                let id = self.docker.must_container(n).await?;
                // The cgroup freezer sometimes gives up ("unable to
                // freeze"); the runtime thaws the container then.
                let mut paused = self.docker.pause(&id).await;
                for _ in 0..3 {
                    if paused.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    paused = self.docker.pause(&id).await;
                }
                paused?;
                Ok(Active::Paused(id))
            }
            FaultKind::Partition => self.partition(rng, index, leader).await,
            FaultKind::RestartAll => {
                self.describe(
                    index,
                    format!(
                        "every node restarted at once (docker restart, graceful; leader was {})",
                        leader.map_or("unknown".into(), |l| l.to_string())
                    ),
                    NODES.to_vec(),
                );
                let mut restarts = Vec::new();
                for n in NODES {
                    let id = self.docker.must_container(n).await?;
                    let docker = self.docker.clone();
                    restarts.push(tokio::spawn(async move { docker.restart(&id).await }));
                }
                for r in restarts {
                    r.await.context("restart task")??;
                }
                self.wait_all_ready().await?;
                Ok(Active::Done)
            }
            FaultKind::Membership => self.membership(rng, index, leader).await,
            FaultKind::Clock => {
                let n = rng.node();
                let magnitude = i64::try_from(rng.range(200, 2000)).unwrap_or(200);
                let offset = if rng.chance(50) {
                    magnitude
                } else {
                    -magnitude
                };
                self.describe(
                    index,
                    format!("node {n} ({}) clock shifted by {offset:+} ms", role(n)),
                    vec![n],
                );
                self.rec
                    .with(|h| h.faults[index].clock_offset_ms = Some(offset));
                self.set_clock(n, offset).await?;
                Ok(Active::Clock(n))
            }
        }
    }

    async fn partition(
        &self,
        rng: &mut Rng,
        index: usize,
        leader: Option<NodeId>,
    ) -> Result<Active> {
        let mode = rng.range(0, 3);
        let lead = leader.map_or("unknown".into(), |l| l.to_string());
        let others =
            |x: NodeId| -> Vec<NodeId> { NODES.iter().copied().filter(|&n| n != x).collect() };
        let mut spaces = Vec::new();
        for n in NODES {
            spaces.push(Netns::of(&self.docker, n).await?);
        }
        let ns = |n: NodeId| spaces.iter().find(|s| s.node == n).cloned();
        let get = |n: NodeId| ns(n).with_context(|| format!("node{n} has no namespace"));
        match mode {
            // The leader alone in the minority, or a follower alone.
            0 | 1 => {
                let alone = match (mode, leader) {
                    (0, Some(l)) => l,
                    (1, Some(l)) => rng.pick(&others(l)),
                    _ => rng.node(),
                };
                let rest = others(alone);
                let what = if mode == 0 {
                    format!(
                        "leader {alone} isolated from {}, {} (leader was {lead})",
                        rest[0], rest[1]
                    )
                } else {
                    format!(
                        "follower {alone} isolated from {}, {} (leader {lead} in the majority)",
                        rest[0], rest[1]
                    )
                };
                self.describe(index, what, vec![alone]);
                let a = get(alone)?;
                for o in rest {
                    a.cut(&get(o)?).await?;
                }
            }
            // Bridge: a and b cannot talk; c talks to both.
            2 => {
                let c = rng.node();
                let ab = others(c);
                self.describe(
                    index,
                    format!("bridge: {} and {} cut from each other, {c} reaches both (leader was {lead})", ab[0], ab[1]),
                    ab.clone(),
                );
                get(ab[0])?.cut(&get(ab[1])?).await?;
            }
            // One-way: a drops what b sends; b hears a.
            _ => {
                let a = rng.node();
                let b = rng.pick(&others(a));
                self.describe(
                    index,
                    format!("one-way: {a} drops what {b} sends, {b} hears {a} (leader was {lead})"),
                    vec![a, b],
                );
                get(a)?.drop_from(&get(b)?).await?;
            }
        }
        Ok(Active::Partitioned(spaces))
    }

    async fn membership(
        &self,
        rng: &mut Rng,
        index: usize,
        leader: Option<NodeId>,
    ) -> Result<Active> {
        let Some(l) = leader else {
            bail!("no leader known: no member to remove");
        };
        let followers: Vec<NodeId> = NODES.iter().copied().filter(|&n| n != l).collect();
        let f = rng.pick(&followers);
        self.describe(
            index,
            format!(
                "follower {f} removed (leader {l}), its data wiped, started fresh and joined again"
            ),
            vec![f],
        );
        let path = format!("/v1/cluster/nodes/{f}");
        let removed = self
            .api
            .must(l, Method::DELETE, &path, None, Duration::from_secs(10))
            .await;
        if let Err(e) = removed {
            // The removal may have happened anyway: go on only if it did.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let still = members(&self.api)
                .await
                .is_none_or(|m| m.iter().any(|(id, _)| *id == f));
            if still {
                return Err(e.context(format!("node {f} is still a member")));
            }
        }
        let id = self.docker.must_container(f).await?;
        let log = self.log_dir.join(format!("node{f}.log"));
        if let Err(e) = self.docker.save_logs(&id, &log).await {
            eprintln!("sluice-jepsen: keeping node{f}'s log: {e:#}");
        }
        self.docker.rm_one(f).await?;
        self.docker.remove_volume(f).await?;
        Ok(Active::Removed(f))
    }

    async fn set_clock(&self, n: NodeId, offset_ms: i64) -> Result<()> {
        let body = json!({ "offset_ms": offset_ms });
        self.api
            .must(
                n,
                Method::PUT,
                "/v1/debug/clock",
                Some(&body),
                Duration::from_secs(3),
            )
            .await
            .map(drop)
    }

    async fn heal(&self, active: Active) -> Result<()> {
        match active {
            Active::Killed(id) => {
                self.docker.start(&id).await?;
                self.wait_all_ready().await
            }
            Active::Paused(id) => self.docker.unpause(&id).await,
            Active::Partitioned(spaces) => {
                for s in spaces {
                    s.heal().await?;
                }
                Ok(())
            }
            Active::Done => Ok(()),
            Active::Removed(f) => self.rejoin(f).await,
            Active::Clock(n) => {
                let mut last = Ok(());
                for _ in 0..5 {
                    last = self.set_clock(n, 0).await;
                    if last.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                last
            }
        }
    }

    /// Starts node `f` fresh and joins it to the cluster again.
    async fn rejoin(&self, f: NodeId) -> Result<()> {
        self.docker.up_one(f).await?;
        admin::wait_ready(&self.api, f, READY_BOUND).await?;
        let start = Instant::now();
        loop {
            let via = leader(&self.api).await.unwrap_or(1);
            let via = if via == f {
                NODES.iter().copied().find(|&n| n != f).unwrap_or(1)
            } else {
                via
            };
            match admin::join(&self.api, via, f).await {
                Ok(()) => return Ok(()),
                Err(e) if start.elapsed() > Duration::from_secs(60) => {
                    return Err(e.context(format!("node {f} did not join again within 60 s")))
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    async fn wait_all_ready(&self) -> Result<()> {
        for n in NODES {
            admin::wait_ready(&self.api, n, READY_BOUND).await?;
        }
        Ok(())
    }

    /// Every node running, unpaused, unpartitioned, on its own clock and a
    /// voter; the errors of what could not be made so.
    pub async fn heal_all(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for n in NODES {
            let id = match self.docker.container(n).await {
                Ok(Some(id)) => id,
                Ok(None) => {
                    if let Err(e) = self.rejoin(n).await {
                        errors.push(format!("node{n}: {e:#}"));
                    }
                    continue;
                }
                Err(e) => {
                    errors.push(format!("node{n}: {e:#}"));
                    continue;
                }
            };
            let fixed = match self.docker.state(&id).await {
                Ok(s) if s.paused => self.docker.unpause(&id).await,
                Ok(s) if !s.running => self.docker.start(&id).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = fixed {
                errors.push(format!("node{n}: {e:#}"));
            }
        }
        errors.extend(net::heal_all(&self.docker).await);
        for n in NODES {
            if let Err(e) = admin::wait_ready(&self.api, n, READY_BOUND).await {
                errors.push(format!("{e:#}"));
                continue;
            }
            if let Err(e) = self.set_clock(n, 0).await {
                errors.push(format!("node{n} clock: {e:#}"));
            }
        }
        // A node that is not a voter (a removal that went through while
        // its heal did not) joins again.
        if let Some(m) = members(&self.api).await {
            for n in NODES {
                if !m.iter().any(|(id, _)| *id == n) {
                    let via = leader(&self.api).await.unwrap_or(1);
                    if let Err(e) = admin::join(&self.api, via, n).await {
                        errors.push(format!("node{n} join: {e:#}"));
                    }
                }
            }
        }
        errors
    }
}
