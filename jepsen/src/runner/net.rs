//! Cuts in the Raft network: iptables rules in a node's network namespace
//! (`nsenter -t PID -n iptables ...`), dropping packets by peer container
//! address. Only node↔node traffic is cut: the clients and the drain
//! backends talk to the nodes from the network's gateway, which no rule
//! names. Healing flushes the filter table's INPUT and OUTPUT chains in
//! the namespace (docker puts no rules of its own there).

use std::net::IpAddr;

use anyhow::{Context, Result};
use sluice_jepsen::history::NodeId;

use super::docker::{run, Docker};

/// One node's network namespace as the nemesis addresses it.
#[derive(Debug, Clone)]
pub struct Netns {
    pub node: NodeId,
    pub pid: u32,
    pub ip: IpAddr,
}

impl Netns {
    /// Node `n`'s namespace (its container must run).
    pub async fn of(docker: &Docker, n: NodeId) -> Result<Netns> {
        let id = docker.must_container(n).await?;
        let state = docker.state(&id).await?;
        if !state.running || state.pid == 0 {
            anyhow::bail!("node{n} is not running");
        }
        let (ip, _) = docker.addresses(&id).await?;
        Ok(Netns {
            node: n,
            pid: state.pid,
            ip,
        })
    }

    async fn iptables(&self, args: &[&str]) -> Result<()> {
        let pid = self.pid.to_string();
        let mut all = vec!["-t", &pid, "-n", "iptables", "-w"];
        all.extend_from_slice(args);
        run("nsenter", &all)
            .await
            .map(drop)
            .with_context(|| format!("iptables in node{}'s namespace", self.node))
    }

    /// This node drops what `from` sends it.
    pub async fn drop_from(&self, from: &Netns) -> Result<()> {
        let ip = from.ip.to_string();
        self.iptables(&["-A", "INPUT", "-s", &ip, "-j", "DROP"])
            .await
    }

    /// This node drops what it would send to `to`.
    pub async fn drop_to(&self, to: &Netns) -> Result<()> {
        let ip = to.ip.to_string();
        self.iptables(&["-A", "OUTPUT", "-d", &ip, "-j", "DROP"])
            .await
    }

    /// This node and `other` cannot talk (both directions).
    pub async fn cut(&self, other: &Netns) -> Result<()> {
        self.drop_from(other).await?;
        self.drop_to(other).await
    }

    /// Removes every rule this module adds.
    pub async fn heal(&self) -> Result<()> {
        self.iptables(&["-F", "INPUT"]).await?;
        self.iptables(&["-F", "OUTPUT"]).await
    }
}

/// Flushes the rules of every running node (a node that does not run has
/// a fresh namespace when it starts).
pub async fn heal_all(docker: &Docker) -> Vec<String> {
    let mut errors = Vec::new();
    for n in super::NODES {
        match Netns::of(docker, n).await {
            Ok(ns) => {
                if let Err(e) = ns.heal().await {
                    errors.push(format!("{e:#}"));
                }
            }
            Err(e) => errors.push(format!("node{n}: {e:#}")),
        }
    }
    errors
}

/// Whether the host can enter namespaces and run iptables (root).
pub async fn check_tools() -> Result<()> {
    run("nsenter", &["--version"])
        .await
        .context("needs nsenter (util-linux)")?;
    run("iptables", &["--version"])
        .await
        .context("needs iptables")?;
    Ok(())
}
