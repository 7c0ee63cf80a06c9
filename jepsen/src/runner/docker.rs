//! The docker side: the compose project (up, down, one service), the
//! containers (kill, start, pause, restart, logs) and what docker knows of
//! them (id, state, address on the project's network, pid).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use sluice_jepsen::history::NodeId;
use tokio::process::Command;

use super::Config;

/// The compose project of a run and the docker CLI.
#[derive(Debug, Clone)]
pub struct Docker {
    /// `docker compose` (v2) or `docker-compose` (v1).
    compose: Vec<String>,
    project: String,
    file: PathBuf,
    /// Variables compose.yaml reads.
    env: Vec<(String, String)>,
}

/// What `docker inspect` says of a container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerState {
    pub running: bool,
    pub paused: bool,
    pub pid: u32,
}

impl Docker {
    /// Finds docker and compose; fails if either is missing.
    pub async fn new(config: &Config) -> Result<Docker> {
        run("docker", &["info", "--format", "{{.ServerVersion}}"])
            .await
            .context("cannot talk to the Docker daemon (docker info fails)")?;
        let compose = if run("docker", &["compose", "version"]).await.is_ok() {
            vec!["docker".to_string(), "compose".to_string()]
        } else if run("docker-compose", &["version"]).await.is_ok() {
            vec!["docker-compose".to_string()]
        } else {
            bail!("needs docker compose or docker-compose");
        };
        let mut env = vec![
            ("SLUICE_DOCKER_IMAGE".to_string(), config.image.clone()),
            ("SLUICE_TOKEN".to_string(), config.token.clone()),
            ("SLUICE_LOG_FORMAT".to_string(), "text".to_string()),
        ];
        for (i, (a, l)) in config
            .admin_ports
            .iter()
            .zip(config.listener_ports.iter())
            .enumerate()
        {
            let n = i + 1;
            env.push((format!("SLUICE_NODE{n}_ADMIN_PORT"), a.to_string()));
            env.push((format!("SLUICE_NODE{n}_LISTENER_PORT"), l.to_string()));
        }
        Ok(Docker {
            compose,
            project: config.project.clone(),
            file: config.compose_file.clone(),
            env,
        })
    }

    /// The project's network (`<project>_sluice`).
    pub fn network(&self) -> String {
        format!("{}_sluice", self.project)
    }

    /// The named volume of node `n`'s data.
    pub fn volume(&self, n: NodeId) -> String {
        format!("{}_node{n}-data", self.project)
    }

    /// Runs `compose ARGS` on the project.
    pub async fn compose(&self, args: &[&str]) -> Result<String> {
        let (program, first) = self.compose.split_first().context("no compose command")?;
        let mut cmd = Command::new(program);
        cmd.args(first)
            .arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(&self.file)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        output(
            cmd,
            &format!("{} {}", self.compose.join(" "), args.join(" ")),
        )
        .await
    }

    /// `compose up -d` of the three nodes.
    pub async fn up(&self) -> Result<()> {
        self.compose(&["up", "--detach", "node1", "node2", "node3"])
            .await
            .map(drop)
    }

    /// `compose up -d` of node `n` alone (a new container after `rm`).
    pub async fn up_one(&self, n: NodeId) -> Result<()> {
        let service = format!("node{n}");
        self.compose(&["up", "--detach", "--no-deps", &service])
            .await
            .map(drop)
    }

    /// Stops and removes node `n`'s container.
    pub async fn rm_one(&self, n: NodeId) -> Result<()> {
        let service = format!("node{n}");
        self.compose(&["stop", &service]).await?;
        self.compose(&["rm", "--force", &service]).await.map(drop)
    }

    /// Removes everything the project made, volumes included.
    pub async fn down(&self) -> Result<()> {
        self.compose(&["down", "--volumes", "--remove-orphans"])
            .await
            .map(drop)
    }

    /// Node `n`'s container id, if it has one.
    pub async fn container(&self, n: NodeId) -> Result<Option<String>> {
        let id = self
            .compose(&["ps", "--quiet", &format!("node{n}")])
            .await?;
        let id = id.trim();
        Ok((!id.is_empty()).then(|| id.to_string()))
    }

    /// Node `n`'s container id; an error if it has none.
    pub async fn must_container(&self, n: NodeId) -> Result<String> {
        self.container(n)
            .await?
            .with_context(|| format!("node{n} has no container"))
    }

    /// The container's state.
    pub async fn state(&self, id: &str) -> Result<ContainerState> {
        let out = run(
            "docker",
            &[
                "inspect",
                "--format",
                "{{.State.Running}} {{.State.Paused}} {{.State.Pid}}",
                id,
            ],
        )
        .await?;
        let mut parts = out.split_whitespace();
        let running = parts.next() == Some("true");
        let paused = parts.next() == Some("true");
        let pid = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok(ContainerState {
            running,
            paused,
            pid,
        })
    }

    /// The container's address on the project's network and that network's
    /// gateway (the host's address there).
    pub async fn addresses(&self, id: &str) -> Result<(IpAddr, IpAddr)> {
        let net = self.network();
        let field = |name: &str| {
            String::from("{{(index .NetworkSettings.Networks \"") + &net + "\")." + name + "}}"
        };
        let format = field("IPAddress") + " " + &field("Gateway");
        let out = run("docker", &["inspect", "--format", &format, id]).await?;
        let mut parts = out.split_whitespace();
        let ip = parts
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("container {id} has no address on {net}: {out:?}"))?;
        let gw = parts
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("network {net} names no gateway: {out:?}"))?;
        Ok((ip, gw))
    }

    pub async fn kill(&self, id: &str) -> Result<()> {
        run("docker", &["kill", "--signal", "KILL", id])
            .await
            .map(drop)
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        run("docker", &["start", id]).await.map(drop)
    }

    pub async fn pause(&self, id: &str) -> Result<()> {
        run("docker", &["pause", id]).await.map(drop)
    }

    pub async fn unpause(&self, id: &str) -> Result<()> {
        run("docker", &["unpause", id]).await.map(drop)
    }

    /// A graceful restart (SIGTERM, the node's stop grace, then start).
    pub async fn restart(&self, id: &str) -> Result<()> {
        run("docker", &["restart", id]).await.map(drop)
    }

    pub async fn remove_volume(&self, n: NodeId) -> Result<()> {
        run("docker", &["volume", "rm", &self.volume(n)])
            .await
            .map(drop)
    }

    /// Writes the container's log (stdout and stderr, interleaved as
    /// docker gives them) to `path`, appending.
    pub async fn save_logs(&self, id: &str, path: &Path) -> Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let status = Command::new("docker")
            .args(["logs", "--timestamps", id])
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .status()
            .await
            .context("docker logs")?;
        if !status.success() {
            bail!("docker logs {id} failed ({status})");
        }
        Ok(())
    }
}

/// Runs `program ARGS` and answers its stdout; an error with its stderr if
/// it fails.
pub async fn run(program: &str, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    output(cmd, &format!("{program} {}", args.join(" "))).await
}

async fn output(mut cmd: Command, what: &str) -> Result<String> {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
