//! sluice as the benchmark runs it: one `sluice node run` (a one-node
//! cluster, `bootstrap = true`) started by the test harness with
//! `worker_threads = 1`, a fixed admin token, its own data dir, keep-alive
//! idle connections kept as long as the peers keep theirs (300 s), pinned
//! to the server CPU with `taskset -a -p` once it runs (its runtime, its
//! blocking pool and sled threads; threads started later inherit that),
//! and configured through the admin API as the README's CLI commands do:
//! a group (drain on, health checks off like the peers'), its backends, a
//! listener. Its access log is off, as the peers' are, unless a case asks
//! for it ([`SluiceNode::start_with_access_log`]): then its lines go to the
//! node's standard output, which the harness writes to the node's log file,
//! as a deployment whose log collector reads a file would have it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::admin::Admin;
use crate::progress;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use sluice_testkit::{free_port, NodeOptions, NodeProcess};

/// The admin token of every node the benchmark starts (loopback only).
const TOKEN: &str = "sluice-bench-admin-token";

/// A running single sluice node. Dropping it kills the node and copies its
/// log into the results directory.
pub struct SluiceNode {
    node: NodeProcess,
    admin: Admin,
    log_copy: PathBuf,
}

impl SluiceNode {
    /// Starts a node (module docs) and pins it to `cpus`. `name` names its
    /// log copy in `logs`.
    pub fn start(bin: &Path, cpus: &str, name: &str, logs: &Path) -> anyhow::Result<SluiceNode> {
        Self::start_node(bin, cpus, name, logs, false)
    }

    /// [`SluiceNode::start`] with the access log on (text lines on the
    /// node's standard output, the harness's log file).
    pub fn start_with_access_log(
        bin: &Path,
        cpus: &str,
        name: &str,
        logs: &Path,
    ) -> anyhow::Result<SluiceNode> {
        Self::start_node(bin, cpus, name, logs, true)
    }

    fn start_node(
        bin: &Path,
        cpus: &str,
        name: &str,
        logs: &Path,
        access_log: bool,
    ) -> anyhow::Result<SluiceNode> {
        let mut opts = NodeOptions::local(1);
        opts.token = TOKEN.to_string();
        opts.worker_threads = Some(1);
        opts.extra_toml = format!(
            "[proxy]\nheader_read_timeout = \"300s\"\n[cluster]\nbootstrap = true\n\
             [access_log]\nenabled = {access_log}\n"
        );
        let node =
            NodeProcess::start(bin, opts).with_context(|| format!("{name}: starting sluice"))?;
        let pid = node.pid().context("the sluice node has no pid")?;
        let pinned = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .output()
            .context("running taskset")?;
        if !pinned.status.success() {
            bail!(
                "{name}: taskset -a -p -c {cpus} {pid} failed: {}",
                String::from_utf8_lossy(&pinned.stderr)
            );
        }
        let admin = Admin::new(TOKEN, 2)?;
        let log_copy = logs.join(format!("{name}.log"));
        progress::say(&format!(
            "started {name} (pid {pid}, CPUs {cpus}, admin {}, log {}, copied to {} when it stops)",
            node.admin_url(),
            node.dir().join("node.log").display(),
            log_copy.display()
        ));
        Ok(SluiceNode {
            node,
            admin,
            log_copy,
        })
    }

    /// Access-log lines in the node's log so far.
    pub fn access_lines(&self) -> u64 {
        self.node
            .log()
            .lines()
            .filter(|l| l.contains(" ACCESS "))
            .count() as u64
    }

    pub fn pid(&self) -> u32 {
        self.node.pid().unwrap_or(0)
    }

    /// Creates `group` (drain on, `drain_timeout`, health checks off) with
    /// `backends`.
    pub async fn group(
        &self,
        group: &str,
        drain_timeout: Duration,
        backends: &[u16],
    ) -> anyhow::Result<()> {
        let url = self.node.admin_url();
        let what = |step: &str| format!("sluice: {step} (log {})", self.log_copy.display());
        self.admin
            .post(
                &url,
                "/v1/groups",
                &json!({"name": group, "drain_enabled": true,
                        "drain_timeout_ms": drain_timeout.as_millis() as u64}),
            )
            .await
            .with_context(|| what(&format!("creating group {group}")))?;
        self.admin
            .json(
                reqwest::Method::PATCH,
                &url,
                &format!("/v1/groups/{group}"),
                Some(&json!({"health": {"enabled": false}})),
            )
            .await
            .with_context(|| what(&format!("turning health checks off in {group}")))?;
        for port in backends {
            self.admin
                .post(
                    &url,
                    &format!("/v1/groups/{group}/backends"),
                    &json!({"addr": format!("127.0.0.1:{port}"), "weight": 100}),
                )
                .await
                .with_context(|| what(&format!("adding backend :{port} to {group}")))?;
        }
        Ok(())
    }

    /// Adds a listener for `group` on a free port; returns its address once
    /// it accepts connections.
    pub async fn listener(&self, group: &str) -> anyhow::Result<SocketAddr> {
        let port = free_port();
        self.admin
            .post(
                &self.node.admin_url(),
                "/v1/listeners",
                &json!({"port": port, "group": group}),
            )
            .await
            .with_context(|| format!("sluice: adding a listener for {group} on :{port}"))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(addr);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("sluice: listener {addr} does not accept connections")
    }

    /// Stores a certificate named `name` (chain and key as PEM).
    pub async fn cert(&self, name: &str, chain_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        self.admin
            .post(
                &self.node.admin_url(),
                "/v1/certs",
                &json!({"name": name, "chain_pem": chain_pem, "key_pem": key_pem}),
            )
            .await
            .with_context(|| format!("sluice: adding certificate {name}"))?;
        Ok(())
    }

    /// Adds a TLS listener for `group` on `port` with the certificate
    /// `cert`; returns its address once it accepts connections.
    pub async fn tls_listener(
        &self,
        group: &str,
        port: u16,
        cert: &str,
    ) -> anyhow::Result<SocketAddr> {
        self.admin
            .post(
                &self.node.admin_url(),
                "/v1/listeners",
                &json!({"port": port, "group": group, "tls": [cert]}),
            )
            .await
            .with_context(|| format!("sluice: adding a TLS listener for {group} on :{port}"))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(addr);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("sluice: TLS listener {addr} does not accept connections")
    }

    /// `DELETE` of a backend: the answer (a backend view with its drain).
    pub async fn remove_backend(&self, group: &str, port: u16) -> anyhow::Result<Value> {
        self.admin
            .delete(
                &self.node.admin_url(),
                &format!("/v1/groups/{group}/backends/127.0.0.1:{port}"),
            )
            .await
            .with_context(|| format!("sluice: removing 127.0.0.1:{port} from {group}"))
    }
}

impl Drop for SluiceNode {
    fn drop(&mut self) {
        self.node.kill();
        let _ = std::fs::write(&self.log_copy, self.node.log());
    }
}
