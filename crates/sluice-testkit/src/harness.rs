//! Runs real `sluice` node processes for end-to-end tests.
//!
//! Why: the tests in the root package drive the real binary (as an operator
//! would), so they need to write a node config, start `sluice node run`,
//! know when it is ready, call the CLI against it, kill and restart it, and
//! see its log when something goes wrong.
//!
//! How: every [`NodeProcess`] owns a temporary directory holding its config
//! (`node<id>.toml`), its data directory and its log (`node.log`, stdout and
//! stderr together). Readiness is `GET /readyz` answering 200, probed with a
//! plain HTTP/1.1 request over a `std` TCP stream every 25 ms (over TLS,
//! trusting the members' CA, when the node has [`NodeOptions::tls`]). The
//! CLI runs with `SLUICE_NODE` / `SLUICE_TOKEN` (and `SLUICE_CA`, the
//! `--ca` flag's variable, with TLS) in its environment, so no flag
//! placement matters. Everything here is blocking (`std::process`), so it
//! works from sync and async tests alike.

use std::collections::hash_map::RandomState;
use std::fs::OpenOptions;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};

use crate::member_tls::NodeTls;

/// How long [`NodeProcess::start`] waits for `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often readiness is probed.
const READY_POLL: Duration = Duration::from_millis(25);
/// How long a CLI call may take before it is killed.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// How many log lines error messages and panics show.
const LOG_TAIL_LINES: usize = 60;

/// A TCP port that was free a moment ago on 127.0.0.1 (bind to port 0, read
/// the port, close). Another process may take it before it is used; that
/// race is accepted for tests.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// What goes into a node's config file.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub node_id: u64,
    /// The admin API's listen address.
    pub admin: SocketAddr,
    /// The address the node's listeners bind and its peers reach it on.
    pub data_address: IpAddr,
    /// The admin bearer token.
    pub token: String,
    /// `[node] worker_threads` (`None`: left out, the node's default).
    pub worker_threads: Option<usize>,
    /// Appended verbatim to the generated TOML (e.g. `[cluster]` tables).
    pub extra_toml: String,
    /// `[node] stop_timeout` (`None`: left out, the node's default).
    pub stop_timeout: Option<String>,
    /// `[node] accept_grace` (`None`: left out, the node's default).
    pub accept_grace: Option<String>,
    /// Size in MiB of a tmpfs mounted on the data dir, in a mount namespace
    /// of the node's own (`unshare`; Linux, root): the mount ends with the
    /// process, so a restart starts from an empty data dir. `None`: the
    /// data dir is a plain directory.
    pub tmpfs_data_dir_mib: Option<u64>,
    /// The process's open-file limit (soft and hard), set by starting it
    /// through `prlimit --nofile=N:N --` (`None`: inherited).
    pub max_open_files: Option<u64>,
    /// `[admin.tls]`: the admin API and Raft over TLS (`None`: plain HTTP).
    /// A cluster member's advertise URL must be `https://` with it: see
    /// [`NodeOptions::cluster_member_tls`].
    pub tls: Option<NodeTls>,
    /// Environment variables of the node's process, on top of the test's:
    /// `Some` sets one, `None` removes it (e.g. `RUST_LOG`).
    pub env: Vec<(String, Option<String>)>,
}

impl NodeOptions {
    /// A node on 127.0.0.1 with a free admin port and a fresh token.
    pub fn local(node_id: u64) -> NodeOptions {
        NodeOptions {
            node_id,
            admin: SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())),
            data_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            token: random_token(),
            worker_threads: None,
            extra_toml: String::new(),
            stop_timeout: None,
            accept_grace: None,
            tmpfs_data_dir_mib: None,
            max_open_files: None,
            tls: None,
            env: Vec::new(),
        }
    }

    /// Node `id` of a cluster on one host: data address
    /// [`member_data_address`], the shared `token`, no bootstrap, and
    /// [`CLUSTER_HEARTBEAT`] / [`CLUSTER_ELECTION_TIMEOUT`].
    pub fn cluster_member(id: u64, token: &str) -> NodeOptions {
        Self::member(id, token, None)
    }

    /// [`NodeOptions::cluster_member`] whose admin and Raft traffic is TLS
    /// with `tls` (its certificate must name 127.0.0.1): it advertises
    /// `https://`.
    pub fn cluster_member_tls(id: u64, token: &str, tls: NodeTls) -> NodeOptions {
        Self::member(id, token, Some(tls))
    }

    fn member(id: u64, token: &str, tls: Option<NodeTls>) -> NodeOptions {
        let mut opts = NodeOptions::local(id);
        opts.data_address = member_data_address(id);
        opts.token = token.to_owned();
        let scheme = if tls.is_some() { "https" } else { "http" };
        opts.tls = tls;
        opts.extra_toml = format!(
            "[cluster]\nbootstrap = false\nadvertise = \"{scheme}://{}\"\n\
             heartbeat_interval = \"{CLUSTER_HEARTBEAT}\"\nelection_timeout = \"{CLUSTER_ELECTION_TIMEOUT}\"\n",
            opts.admin
        );
        opts
    }
}

/// Raft heartbeat of a [`NodeOptions::cluster_member`].
pub const CLUSTER_HEARTBEAT: &str = "100ms";
/// Minimum election timeout of a [`NodeOptions::cluster_member`] (the
/// maximum is twice it): a dead leader is replaced in about a second, with
/// room for a loaded 2-core machine not to call spurious elections.
pub const CLUSTER_ELECTION_TIMEOUT: &str = "500ms";

/// Cluster member `id`'s data address: `127.0.0.<id>`.
pub fn member_data_address(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        u8::try_from(id).expect("a member id below 256"),
    ))
}

/// 32 hex characters, different on every call: the time, the pid and a
/// counter hashed with two randomly seeded std hashers. Good enough for a
/// test token; not a secret.
fn random_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = sluice_clock::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.write_u64(count);
        hasher.write_usize(i);
        *half = hasher.finish();
    }
    format!("{:016x}{:016x}", halves[0], halves[1])
}

/// A running `sluice node run` process. Dropping it kills the process (and
/// prints the log's tail if the thread is panicking, i.e. a test failed).
pub struct NodeProcess {
    bin: PathBuf,
    opts: NodeOptions,
    dir: tempfile::TempDir,
    config: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl NodeProcess {
    /// Writes the config into a fresh temporary directory, starts
    /// `bin node run --config <file>` and waits until `/readyz` answers 200.
    /// On failure the process is killed and the error carries the log tail.
    pub fn start(bin: &Path, opts: NodeOptions) -> anyhow::Result<NodeProcess> {
        // The tests' reqwest clients take the process's default provider.
        crate::member_tls::install_crypto_provider();
        let dir = tempfile::Builder::new()
            .prefix(&format!("sluice-node{}-", opts.node_id))
            .tempdir()
            .context("creating the node's temporary directory")?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let config = dir.path().join(format!("node{}.toml", opts.node_id));
        std::fs::write(&config, render_config(&opts, &data_dir))
            .with_context(|| format!("writing {}", config.display()))?;
        let log_path = dir.path().join("node.log");
        let mut node = NodeProcess {
            bin: bin.to_path_buf(),
            opts,
            dir,
            config,
            log_path,
            child: None,
        };
        node.spawn_and_wait()?;
        Ok(node)
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.spawn_and_wait_for(&[200])
    }

    /// Starts the process and waits until `/readyz` answers one of
    /// `statuses`.
    fn spawn_and_wait_for(&mut self, statuses: &[u16]) -> anyhow::Result<()> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        writeln!(
            log,
            "=== sluice-testkit: starting {} node run --config {} ===",
            self.bin.display(),
            self.config.display()
        )?;
        let stderr = log.try_clone().context("cloning the log file handle")?;
        let mut command = match (self.opts.tmpfs_data_dir_mib, self.opts.max_open_files) {
            (None, None) => {
                let mut c = Command::new(&self.bin);
                c.arg("node").arg("run").arg("--config").arg(&self.config);
                c
            }
            (None, Some(n)) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(&self.bin)
                    .arg("node")
                    .arg("run")
                    .arg("--config")
                    .arg(&self.config);
                c
            }
            (Some(mib), _) => {
                // `unshare` without `--fork` and `exec` keep one pid: the
                // node's.
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(r#"mount -t tmpfs -o "size=$1m" tmpfs "$2" && exec "$3" node run --config "$4""#)
                    .arg("sh")
                    .arg(mib.to_string())
                    .arg(self.dir.path().join("data"))
                    .arg(&self.bin)
                    .arg(&self.config);
                c
            }
        };
        // The node takes SLUICE_TOKEN over its config's token: a token
        // exported in the test's environment must not replace the node's.
        command.env_remove("SLUICE_TOKEN");
        for (name, value) in &self.opts.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready(statuses) {
            self.kill();
            return Err(e.context(format!(
                "node {} did not become ready; log tail ({}):\n{}",
                self.opts.node_id,
                self.log_path.display(),
                self.log_tail()
            )));
        }
        Ok(())
    }

    fn wait_ready(&mut self, statuses: &[u16]) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("checking the node process")? {
                    bail!("node process exited early with {status}");
                }
            }
            let probe = match &self.opts.tls {
                None => probe_status(self.opts.admin, "/readyz").map_err(anyhow::Error::from),
                Some(tls) => probe_status_tls(self.opts.admin, &tls.ca, "/readyz"),
            };
            let last = match probe {
                Ok(status) if statuses.contains(&status) => return Ok(()),
                Ok(status) => format!("/readyz answered {status}"),
                Err(e) => format!("/readyz: {e}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "not ready after {} (last probe: {last})",
                    humantime::format_duration(READY_TIMEOUT)
                );
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// `http://<admin address>` (`https://` with TLS).
    pub fn admin_url(&self) -> String {
        let scheme = if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.opts.admin)
    }

    /// The members' CA file when the node runs with TLS: what the CLI
    /// takes as `--ca` (`SLUICE_CA`).
    pub fn ca_file(&self) -> Option<&Path> {
        self.opts.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// The admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.opts.admin
    }

    /// The node id.
    pub fn node_id(&self) -> u64 {
        self.opts.node_id
    }

    /// The admin bearer token.
    pub fn token(&self) -> &str {
        &self.opts.token
    }

    /// The data-plane address from the config.
    pub fn data_address(&self) -> IpAddr {
        self.opts.data_address
    }

    /// The generated config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The node's temporary directory (config, `data/`, `node.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The whole log so far (both runs, after a restart).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Runs `bin <args>` against this node (`SLUICE_NODE` and `SLUICE_TOKEN`
    /// set in its environment). Killed after 60 s; the output then says so
    /// on stderr.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env("SLUICE_NODE", self.admin_url())
            .env("SLUICE_TOKEN", &self.opts.token);
        if let Some(ca) = self.ca_file() {
            command.env("SLUICE_CA", ca);
        }
        run_with_timeout(&mut command, CLI_TIMEOUT)
            .unwrap_or_else(|e| panic!("running {} {args:?}: {e:#}", self.bin.display()))
    }

    /// Like [`NodeProcess::cli`], but panics (with stdout and stderr) unless
    /// the command succeeds; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            panic!(
                "sluice {args:?} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        stdout
    }

    /// Runs `bin <args> --output json`, asserts success and parses stdout.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let stdout = self.cli_ok(&all);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("sluice {all:?} printed invalid JSON ({e}):\n{stdout}"))
    }

    /// SIGKILLs the process and waits for it. Does nothing if it is not
    /// running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (a name such as `TERM`) to the process with
    /// `kill(1)`. Does nothing if it is not running.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed with {status}");
        }
        Ok(())
    }

    /// Waits up to `within` for the process to exit; its exit status, or
    /// `None` if it still runs (or was never started).
    pub fn wait_exit(&mut self, within: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + within;
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        loop {
            if let Some(status) = child.try_wait().context("checking the node process")? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process if it runs, then starts it again with the same
    /// config and data directory and waits until it is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn_and_wait()
    }

    /// [`NodeProcess::restart`] for a node that drains (N1): waits until
    /// `/readyz` answers, 200 or 503.
    pub fn restart_drained(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn_and_wait_for(&[200, 503])
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- node {} log tail ({}) ---\n{}\n--- end of node {} log ---",
                self.opts.node_id,
                self.log_path.display(),
                self.log_tail(),
                self.opts.node_id
            );
        }
    }
}

impl std::fmt::Debug for NodeProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeProcess")
            .field("node_id", &self.opts.node_id)
            .field("admin", &self.opts.admin)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// The node config file, as described in the module docs.
fn render_config(opts: &NodeOptions, data_dir: &Path) -> String {
    let workers = opts
        .worker_threads
        .map(|n| format!("worker_threads = {n}\n"))
        .unwrap_or_default();
    let stop = opts
        .stop_timeout
        .as_ref()
        .map(|t| format!("stop_timeout = {}\n", toml_string(t)))
        .unwrap_or_default()
        + &opts
            .accept_grace
            .as_ref()
            .map(|t| format!("accept_grace = {}\n", toml_string(t)))
            .unwrap_or_default();
    let mut toml = format!(
        "[node]\nid = {}\ndata_dir = {}\ndata_address = {}\n{workers}{stop}[admin]\nlisten = {}\ntoken = {}\n",
        opts.node_id,
        toml_string(&data_dir.to_string_lossy()),
        toml_string(&opts.data_address.to_string()),
        toml_string(&opts.admin.to_string()),
        toml_string(&opts.token),
    );
    if let Some(tls) = &opts.tls {
        toml.push_str(&format!(
            "[admin.tls]\ncert = {}\nkey = {}\nca = {}\n",
            toml_string(&tls.cert.to_string_lossy()),
            toml_string(&tls.key.to_string_lossy()),
            toml_string(&tls.ca.to_string_lossy()),
        ));
    }
    if !opts.extra_toml.is_empty() {
        toml.push_str(&opts.extra_toml);
        if !opts.extra_toml.ends_with('\n') {
            toml.push('\n');
        }
    }
    toml
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `GET path` over a fresh connection; returns the status code.
fn probe_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write, so the request goes out as one segment.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    // The status line is all we need; read until it is complete.
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&head[..head.len().min(80)])
            ),
        )
    })
}

/// [`probe_status`] over TLS, trusting only the CA in `ca` and presenting
/// no certificate; the server is verified as `addr`'s IP address.
fn probe_status_tls(addr: SocketAddr, ca: &Path, path: &str) -> anyhow::Result<u16> {
    let config = crate::member_tls::client_config(ca)?;
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(config, name)?;
    let timeout = Duration::from_millis(500);
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| anyhow!("not an HTTP response over TLS"))
}

/// `HTTP/1.1 200 OK\r\n...` -> 200.
fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// `Command::output` with a deadline: the child is killed when it runs
/// longer than `timeout`, and the returned output notes that on stderr.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> anyhow::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = stdout
        .join()
        .map_err(|_| anyhow!("stdout reader panicked"))?;
    let mut stderr = stderr
        .join()
        .map_err(|_| anyhow!("stderr reader panicked"))?;
    if timed_out {
        stderr.extend_from_slice(
            format!(
                "\n[sluice-testkit: killed after {}]\n",
                humantime::format_duration(timeout)
            )
            .as_bytes(),
        );
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_hex_and_differ() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn config_renders_as_documented() {
        let opts = NodeOptions {
            node_id: 3,
            admin: "127.0.0.1:7070".parse().unwrap(),
            data_address: "127.0.0.1".parse().unwrap(),
            token: "t0k\"en".into(),
            worker_threads: None,
            extra_toml: "[cluster]\npeers = []".into(),
            stop_timeout: None,
            accept_grace: None,
            tmpfs_data_dir_mib: None,
            max_open_files: None,
            tls: None,
            env: Vec::new(),
        };
        let text = render_config(&opts, Path::new("/tmp/x\\y/data"));
        assert_eq!(
            text,
            "[node]\nid = 3\ndata_dir = \"/tmp/x\\\\y/data\"\ndata_address = \"127.0.0.1\"\n\
             [admin]\nlisten = \"127.0.0.1:7070\"\ntoken = \"t0k\\\"en\"\n[cluster]\npeers = []\n"
        );
        let one = NodeOptions {
            worker_threads: Some(1),
            stop_timeout: Some("3s".into()),
            ..opts
        };
        assert!(render_config(&one, Path::new("d"))
            .starts_with("[node]\nid = 3\ndata_dir = \"d\"\ndata_address = \"127.0.0.1\"\nworker_threads = 1\nstop_timeout = \"3s\"\n[admin]\n"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503\r\n"), Some(503));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn probe_reads_status_from_a_tiny_server() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "request cut short: {request:?}");
                request.extend_from_slice(&buf[..n]);
            }
            assert!(request.starts_with(b"GET /readyz HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(probe_status(addr, "/readyz").unwrap(), 503);
        server.join().unwrap();
    }

    #[test]
    fn start_fails_with_log_tail_when_the_binary_exits() {
        // `sh` rejects `node run --config` (no such script), exits at once.
        let err = NodeProcess::start(Path::new("/bin/sh"), NodeOptions::local(1)).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("exited early"), "{message}");
        assert!(message.contains("sluice-testkit: starting"), "{message}");
    }

    #[test]
    fn start_fails_when_the_binary_is_missing() {
        let err = NodeProcess::start(Path::new("/nonexistent/sluice"), NodeOptions::local(1))
            .unwrap_err();
        assert!(format!("{err:#}").contains("spawning"));
    }

    #[test]
    fn cli_runs_with_env_and_times_out() {
        let out = run_with_timeout(
            Command::new("/bin/sh")
                .args(["-c", "echo $SLUICE_NODE; echo err >&2"])
                .env("SLUICE_NODE", "http://x"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "http://x\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

        let out = run_with_timeout(
            Command::new("/bin/sh").args(["-c", "exec sleep 5"]),
            Duration::from_millis(100),
        )
        .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("killed after"));
    }
}
