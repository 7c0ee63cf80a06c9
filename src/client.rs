//! The admin API client behind every command but `node run`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_admin::api::{
    AddBackend, AddCert, AddListener, BackendPage, BackendState, BackendView, CertView,
    CreateGroup, DeletedGroup, DrainNode, ErrorBody, ErrorDetail, GroupView, ListenerView,
    NodeList, NodeView, RemovedCert, SetBackend, UpdateCert, UpdateGroup, UpdateListener,
};
use sluice_clock::now_ms;
use sluice_model::{NodeId, SecretPem};

use crate::cli::{
    self, BackendCommand, CertCommand, ClientFlags, ClusterCommand, GroupCommand, ListenerCommand,
    NodeCommand, Output, UsageError,
};
use crate::output;

/// Why a command failed; `main` prints it as one line, or with `--output
/// json` as `{"error": {"code", "message", "field"}}` ([`ClientError::detail`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A flag or argument was refused before anything was sent.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The node could not be reached.
    #[error("cannot reach sluice node at {node}: {reason}")]
    Unreachable { node: String, reason: String },
    /// The node answered with an error.
    #[error("{}", api_line(.status, .detail))]
    Api {
        status: StatusCode,
        detail: ErrorDetail,
    },
    /// `node check`: the node answered, but not that it is ready.
    #[error("sluice node at {node} is not ready: {reason}")]
    NotReady { node: String, reason: String },
    /// The node answered something that is not the API's JSON.
    #[error("unexpected answer from {node}: {reason}")]
    Decode { node: String, reason: String },
    /// `listener add`: the listener was created, but some node could not
    /// bind it.
    #[error("{}", bind_failed_line(*.port, .failed))]
    BindFailed {
        port: u16,
        /// Each node that failed (`node 2`), and why.
        failed: Vec<(String, String)>,
    },
}

fn bind_failed_line(port: u16, failed: &[(String, String)]) -> String {
    let nodes: Vec<String> = failed
        .iter()
        .map(|(who, why)| format!("{who} could not bind it ({why})"))
        .collect();
    format!(
        "listener :{port} was created, but {}; `sluice listener list` shows each node's bind",
        nodes.join(", ")
    )
}

fn api_line(status: &StatusCode, d: &ErrorDetail) -> String {
    let mut line = d.message.clone();
    if let Some(f) = &d.field {
        line.push_str(&format!(" (field: {f})"));
    }
    if *status == StatusCode::UNAUTHORIZED {
        line.push_str(" — pass --token or set SLUICE_TOKEN");
    }
    line
}

impl ClientError {
    /// Exit code: 2 when the CLI refused before sending anything, 3 when a
    /// listener was created but some node could not bind it, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_) => 2,
            ClientError::BindFailed { .. } => 3,
            _ => 1,
        }
    }

    /// The error in the API's shape: the node's own answer for API errors,
    /// a code of the CLI's for the rest.
    pub fn detail(&self) -> ErrorDetail {
        let (code, field) = match self {
            ClientError::Api { detail, .. } => return detail.clone(),
            ClientError::Usage(u) => (u.code, u.field.clone()),
            ClientError::Unreachable { .. } => ("node_unreachable", None),
            ClientError::NotReady { .. } => ("not_ready", None),
            ClientError::Decode { .. } => ("bad_answer", None),
            ClientError::BindFailed { .. } => ("listener_bind_failed", Some("port".into())),
        };
        ErrorDetail {
            code: code.into(),
            message: self.to_string(),
            field,
        }
    }

    fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// An answer of `GET /v1/groups/{group}/backends?limit=N`.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Listed {
    Page(BackendPage),
    All(Vec<BackendView>),
}

/// Talks to one node's admin API.
pub struct Client {
    http: reqwest::Client,
    node: String,
    token: Option<String>,
    output: Output,
    consistent: bool,
}

/// The token of a node started with the default data dir, if present.
fn default_token() -> Option<String> {
    std::fs::read_to_string("data/token")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Percent-encodes a path segment (`[::1]:80` → `%5B::1%5D:80`).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The HTTP(S) client: with `ca`, that CA is the only trust root; without
/// it, https:// uses the system's (rustls-platform-verifier). TLS is
/// rustls with ring.
fn http_client(node: &str, ca: Option<&std::path::Path>) -> Result<reqwest::Client, ClientError> {
    sluice_raft::tls::install_default_provider();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    let bad_ca = |ca: &std::path::Path, why: String| {
        ClientError::from(UsageError::invalid(
            "--ca",
            format!("--ca {}: {why}", ca.display()),
        ))
    };
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).map_err(|e| bad_ca(ca, format!("cannot read it: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            bad_ca(
                ca,
                format!(
                    "not a PEM certificate file: {}",
                    sluice_raft::error_chain(&e)
                ),
            )
        })?;
        if certs.is_empty() {
            return Err(bad_ca(ca, "holds no PEM certificate".into()));
        }
        builder = builder.tls_certs_only(certs);
    } else if !node.starts_with("https://") {
        // No TLS will be spoken: skip loading the system's roots, which a
        // container FROM scratch does not have.
        builder = builder.tls_certs_only(Vec::new());
    }
    builder.build().map_err(|e| match ca {
        Some(ca) => bad_ca(
            ca,
            format!(
                "not a usable CA certificate: {}",
                sluice_raft::error_chain(&e)
            ),
        ),
        None => ClientError::Unreachable {
            node: node.to_owned(),
            reason: format!("cannot set up TLS: {}", sluice_raft::error_chain(&e)),
        },
    })
}

impl Client {
    pub fn new(flags: ClientFlags) -> Result<Client, ClientError> {
        let node = flags.node.trim_end_matches('/').to_string();
        Ok(Client {
            http: http_client(&node, flags.ca.as_deref())?,
            node,
            token: flags.token.or_else(default_token),
            output: flags.output,
            consistent: flags.consistent,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&dyn erased::Body>,
    ) -> Result<T, ClientError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.node));
        if method != Method::GET {
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.json());
        }
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            node: self.node.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            node: self.node.clone(),
            reason: root_cause(&e),
        })?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| ErrorDetail {
                    code: "http_error".into(),
                    message: format!("{status}: {}", String::from_utf8_lossy(&bytes).trim()),
                    field: None,
                });
            return Err(ClientError::Api { status, detail });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            node: self.node.clone(),
            reason: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        if self.consistent {
            let sep = if path.contains('?') { '&' } else { '?' };
            return self
                .call(Method::GET, &format!("{path}{sep}consistent=true"), None)
                .await;
        }
        self.call(Method::GET, path, None).await
    }

    /// Says on stderr that a write is committed but some members had not
    /// applied it yet (a `202` with `pending_nodes`); the command still
    /// succeeds.
    fn warn_pending(&self, nodes: &[NodeId]) {
        let Some(message) = pending_message(nodes) else {
            return;
        };
        match self.output {
            Output::Table => eprintln!("warning: {message}"),
            Output::Json => eprintln!(
                "{}",
                serde_json::json!({
                    "warning": { "code": "pending_nodes", "message": message, "nodes": nodes }
                })
            ),
        }
    }

    fn json<T: Serialize>(&self, value: &T) -> bool {
        if self.output == Output::Json {
            #[allow(clippy::expect_used)] // plain data with string keys always serializes
            let text = serde_json::to_string_pretty(value).expect("serializes");
            println!("{text}");
            true
        } else {
            false
        }
    }

    pub async fn group(&self, cmd: GroupCommand) -> Result<(), ClientError> {
        match cmd {
            GroupCommand::Create {
                name,
                drain_timeout,
                no_drain,
                slow_start,
            } => {
                cli::group(&name)?;
                let drain_timeout_ms = drain_timeout
                    .as_deref()
                    .map(cli::drain_timeout_ms)
                    .transpose()?;
                let body = CreateGroup {
                    name,
                    drain_enabled: Some(!no_drain),
                    drain_timeout_ms,
                    slow_start_ms: slow_start.as_deref().map(cli::slow_start_ms).transpose()?,
                };
                let g: GroupView = self.call(Method::POST, "/v1/groups", Some(&body)).await?;
                if !self.json(&g) {
                    output::group_written("created", &g);
                }
                self.warn_pending(&g.pending_nodes);
            }
            GroupCommand::Update {
                name,
                drain_timeout,
                drain,
                no_drain,
                slow_start,
                no_slow_start,
                health,
            } => {
                cli::group(&name)?;
                let body = UpdateGroup {
                    health: cli::health_update(health)?,
                    drain_enabled: if drain {
                        Some(true)
                    } else if no_drain {
                        Some(false)
                    } else {
                        None
                    },
                    drain_timeout_ms: drain_timeout
                        .as_deref()
                        .map(cli::drain_timeout_ms)
                        .transpose()?,
                    slow_start_ms: if no_slow_start {
                        Some(0)
                    } else {
                        slow_start.as_deref().map(cli::slow_start_ms).transpose()?
                    },
                };
                if body.health.is_empty()
                    && body.drain_enabled.is_none()
                    && body.drain_timeout_ms.is_none()
                    && body.slow_start_ms.is_none()
                {
                    return Err(UsageError::nothing_to_update(format!(
                        "group update {name}: nothing to change; give at least one of \
                         --drain-timeout, --drain, --no-drain, --slow-start, --no-slow-start \
                         or a health-check flag (see --help)"
                    ))
                    .into());
                }
                let path = format!("/v1/groups/{}", segment(&name));
                let g: GroupView = self.call(Method::PATCH, &path, Some(&body)).await?;
                if !self.json(&g) {
                    output::group_written("updated", &g);
                }
                self.warn_pending(&g.pending_nodes);
            }
            GroupCommand::Delete { name, force } => {
                cli::group(&name)?;
                let mut path = format!("/v1/groups/{}", segment(&name));
                if force {
                    path.push_str("?force=true");
                }
                let d: DeletedGroup = self.call(Method::DELETE, &path, None).await?;
                if !self.json(&d) {
                    output::group_deleted(&d);
                }
                self.warn_pending(&d.pending_nodes);
            }
            GroupCommand::List => {
                let gs: Vec<GroupView> = self.get("/v1/groups").await?;
                if !self.json(&gs) {
                    output::groups(&gs);
                }
            }
            GroupCommand::Show { name } => {
                let g: GroupView = self.get(&format!("/v1/groups/{}", segment(&name))).await?;
                if !self.json(&g) {
                    output::group(&g);
                }
            }
        }
        Ok(())
    }

    pub async fn backend(&self, cmd: BackendCommand) -> Result<(), ClientError> {
        match cmd {
            BackendCommand::Add {
                group,
                addr,
                weight,
            } => {
                cli::backend_addr(&addr)?;
                let body = AddBackend {
                    addr,
                    weight: Some(cli::weight(weight)?),
                };
                let path = format!("/v1/groups/{}/backends", segment(&group));
                let b: BackendView = self.call(Method::POST, &path, Some(&body)).await?;
                if !self.json(&b) {
                    match &b.drain {
                        Some(d) => println!(
                            "backend {} is draining: re-added, it stays out of rotation until drain {}",
                            b.addr,
                            output::drain_summary(d)
                        ),
                        None => println!("backend {} active in group {} (weight {})", b.addr, b.group, b.weight),
                    }
                }
                self.warn_pending(&b.pending_nodes);
            }
            BackendCommand::Set {
                group,
                addr,
                weight,
                maintenance,
            } => {
                cli::group(&group)?;
                cli::backend_addr(&addr)?;
                let body = SetBackend {
                    weight: weight.map(cli::weight).transpose()?,
                    maintenance: maintenance.as_deref().map(cli::maintenance).transpose()?,
                };
                if body.weight.is_none() && body.maintenance.is_none() {
                    return Err(UsageError::nothing_to_update(format!(
                        "backend set {group} {addr}: nothing to change; give --weight 0..=100 \
                         and/or --maintenance on|off"
                    ))
                    .into());
                }
                let path = format!("/v1/groups/{}/backends/{}", segment(&group), segment(&addr));
                let b: BackendView = self.call(Method::PATCH, &path, Some(&body)).await?;
                if !self.json(&b) {
                    println!(
                        "backend {} in group {}: weight {}, {}",
                        b.addr,
                        b.group,
                        b.weight,
                        output::state(&b)
                    );
                }
                self.warn_pending(&b.pending_nodes);
            }
            BackendCommand::Remove { group, addr, wait } => {
                let path = format!("/v1/groups/{}/backends/{}", segment(&group), segment(&addr));
                let b: BackendView = self.call(Method::DELETE, &path, None).await?;
                self.warn_pending(&b.pending_nodes);
                if wait {
                    return self.wait_drained(&path, b).await;
                }
                if !self.json(&b) {
                    match &b.drain {
                        Some(d) => {
                            println!("backend {} draining: {}", b.addr, output::drain_summary(d))
                        }
                        None => println!("backend {} removed from group {}", b.addr, b.group),
                    }
                }
            }
            BackendCommand::List { group, limit, page } => {
                let limit = limit.map(cli::list_limit).transpose()?;
                self.list_backends(&group, limit, cli::list_page(page)?)
                    .await?;
            }
        }
        Ok(())
    }

    /// `backend list`: fetches the group's backends `page` at a time,
    /// printing each page as it comes, until the last page or `limit`
    /// backends. A list that fits in one page prints as one table (or JSON
    /// array).
    async fn list_backends(
        &self,
        group: &str,
        limit: Option<u64>,
        page: u64,
    ) -> Result<(), ClientError> {
        let base = format!("/v1/groups/{}/backends", segment(group));
        let mut left = limit.unwrap_or(u64::MAX);
        let mut after: Option<String> = None;
        let mut printer = output::BackendsPrinter::new(self.output);
        loop {
            let mut path = format!("{base}?limit={}", left.min(page));
            if let Some(a) = &after {
                path.push_str(&format!("&after={}", segment(a)));
            }
            let (mut backends, next) = match self.get::<Listed>(&path).await? {
                Listed::Page(p) => (p.backends, p.next_after),
                // A node that predates paging answers the whole list.
                Listed::All(all) => (all, None),
            };
            backends.truncate(usize::try_from(left).unwrap_or(usize::MAX));
            left -= backends.len() as u64;
            let last = next.is_none() || left == 0;
            printer.page(&backends, last);
            if last {
                return Ok(());
            }
            if next <= after {
                return Err(ClientError::Decode {
                    node: self.node.clone(),
                    reason: format!("the next page starts at {next:?}, not after {after:?}"),
                });
            }
            after = next;
        }
    }

    /// `backend remove --wait`: follows the drain until it completes.
    async fn wait_drained(&self, path: &str, first: BackendView) -> Result<(), ClientError> {
        let started = Instant::now();
        let tty = std::io::stdout().is_terminal() && self.output == Output::Table;
        let drain_id = first.drain.as_ref().map(|d| d.id.to_string());
        let mut last = first.clone();
        let mut printed = String::new();
        if first.state == BackendState::Draining {
            loop {
                if let Some(line) = live_line(&last) {
                    if tty {
                        print!("\r\x1b[K{line}");
                        let _ = std::io::stdout().flush();
                    } else if self.output == Output::Table && line != printed {
                        println!("{line}");
                    }
                    printed = line;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                match self.get::<BackendView>(path).await {
                    Ok(v) if v.state == BackendState::Draining => last = v,
                    Ok(v) => {
                        last = v;
                        break;
                    }
                    Err(e) if e.is_not_found() => {
                        last.state = BackendState::Removed;
                        last.drain = None;
                        last.in_flight = 0;
                        last.tunnels = 0;
                        break;
                    }
                    Err(e) => {
                        if tty {
                            println!();
                        }
                        return Err(e);
                    }
                }
            }
            if tty {
                print!("\r\x1b[K");
            }
        } else {
            last.state = BackendState::Removed;
        }
        if self.json(&last) {
            return Ok(());
        }
        let drain = drain_id
            .map(|d| format!("drain {d} complete"))
            .unwrap_or_else(|| "no drain needed".into());
        let took = output::span(started.elapsed().as_millis() as u64);
        match last.state {
            BackendState::Active => println!(
                "{} is active again in group {} after {took} ({drain})",
                last.addr, last.group
            ),
            _ => println!(
                "removed {} from group {}: {drain} after {took}",
                last.addr, last.group
            ),
        }
        Ok(())
    }

    pub async fn listener(&self, cmd: ListenerCommand) -> Result<(), ClientError> {
        match cmd {
            ListenerCommand::Add {
                port,
                group,
                request_timeout,
                tls,
            } => {
                let port = cli::port("--port", port)?;
                cli::group(&group)?;
                let body = AddListener {
                    port,
                    group,
                    request_timeout_ms: Some(cli::request_timeout_ms(&request_timeout)?),
                    tls,
                };
                let l: ListenerView = self
                    .call(Method::POST, "/v1/listeners", Some(&body))
                    .await?;
                if !self.json(&l) {
                    output::listener_written(&l);
                }
                self.warn_pending(&l.pending_nodes);
                let mut failed: Vec<(String, String)> = l
                    .nodes
                    .iter()
                    .filter(|n| n.status == "failed")
                    .map(|n| (format!("node {}", n.node), n.detail.clone()))
                    .collect();
                if !matches!(l.status.as_str(), "listening" | "pending" | "") {
                    // The answering node's own bind, in case its report is
                    // not among `nodes` (yet).
                    let me = match self
                        .call::<serde_json::Value>(Method::GET, "/v1/cluster/self", None)
                        .await
                    {
                        Ok(v) => v["node"]
                            .as_u64()
                            .map(|n| format!("node {n}"))
                            .unwrap_or_else(|| format!("the node at {}", self.node)),
                        Err(_) => format!("the node at {}", self.node),
                    };
                    if !failed.iter().any(|(who, _)| *who == me) {
                        failed.push((me, l.status.clone()));
                    }
                }
                if !failed.is_empty() {
                    return Err(ClientError::BindFailed {
                        port: l.port,
                        failed,
                    });
                }
            }
            ListenerCommand::Update {
                port,
                group,
                request_timeout,
                tls,
                plain,
            } => {
                let port = cli::port("PORT", port)?;
                if let Some(g) = &group {
                    cli::group(g)?;
                }
                let body = UpdateListener {
                    group,
                    request_timeout_ms: request_timeout
                        .as_deref()
                        .map(cli::request_timeout_ms)
                        .transpose()?,
                    tls: if plain { Some(Vec::new()) } else { tls },
                };
                if body.group.is_none() && body.request_timeout_ms.is_none() && body.tls.is_none() {
                    return Err(UsageError::nothing_to_update(format!(
                        "listener update {port}: nothing to change; give --group, \
                         --request-timeout, --tls or --plain"
                    ))
                    .into());
                }
                let path = format!("/v1/listeners/{port}");
                let l: ListenerView = self.call(Method::PATCH, &path, Some(&body)).await?;
                if !self.json(&l) {
                    println!(
                        "updated listener :{} -> group {} (request timeout {})",
                        l.port,
                        l.group,
                        output::span(l.request_timeout_ms)
                    );
                }
                self.warn_pending(&l.pending_nodes);
            }
            ListenerCommand::Remove { port } => {
                let port = cli::port("PORT", port)?;
                let path = format!("/v1/listeners/{port}");
                let l: ListenerView = self.call(Method::DELETE, &path, None).await?;
                if !self.json(&l) {
                    println!(
                        "listener :{} (group {}) {}: it takes no new connections",
                        l.port,
                        l.group,
                        output::listener_state(&l)
                    );
                }
                self.warn_pending(&l.pending_nodes);
            }
            ListenerCommand::List => {
                let ls: Vec<ListenerView> = self.get("/v1/listeners").await?;
                if !self.json(&ls) {
                    output::listeners(&ls);
                }
            }
        }
        Ok(())
    }
}

impl Client {
    pub async fn cert(&self, cmd: CertCommand) -> Result<(), ClientError> {
        match cmd {
            CertCommand::Add { name, cert, key } => {
                cli::cert_name(&name)?;
                let body = AddCert {
                    name,
                    chain_pem: cli::pem_file("--cert", &cert)?,
                    key_pem: SecretPem(cli::pem_file("--key", &key)?),
                };
                let c: CertView = self.call(Method::POST, "/v1/certs", Some(&body)).await?;
                if !self.json(&c) {
                    output::cert_written("stored", &c);
                }
                self.warn_pending(&c.pending_nodes);
            }
            CertCommand::Update { name, cert, key } => {
                cli::cert_name(&name)?;
                let body = UpdateCert {
                    chain_pem: cli::pem_file("--cert", &cert)?,
                    key_pem: SecretPem(cli::pem_file("--key", &key)?),
                };
                let path = format!("/v1/certs/{}", segment(&name));
                let c: CertView = self.call(Method::PUT, &path, Some(&body)).await?;
                if !self.json(&c) {
                    output::cert_written("replaced", &c);
                }
                self.warn_pending(&c.pending_nodes);
            }
            CertCommand::Remove { name } => {
                cli::cert_name(&name)?;
                let path = format!("/v1/certs/{}", segment(&name));
                let r: RemovedCert = self.call(Method::DELETE, &path, None).await?;
                if !self.json(&r) {
                    println!("removed certificate {}", r.name);
                }
                self.warn_pending(&r.pending_nodes);
            }
            CertCommand::List => {
                let cs: Vec<CertView> = self.get("/v1/certs").await?;
                if !self.json(&cs) {
                    output::certs(&cs, now_ms());
                }
            }
            CertCommand::Show { name } => {
                cli::cert_name(&name)?;
                let c: CertView = self.get(&format!("/v1/certs/{}", segment(&name))).await?;
                if !self.json(&c) {
                    output::cert(&c, now_ms());
                }
            }
        }
        Ok(())
    }
}

/// `committed; not yet applied on node 3` (or `nodes 2, 3`).
fn pending_message(nodes: &[NodeId]) -> Option<String> {
    let list: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    match list.len() {
        0 => None,
        1 => Some(format!("committed; not yet applied on node {}", list[0])),
        _ => Some(format!(
            "committed; not yet applied on nodes {}",
            list.join(", ")
        )),
    }
}

// === node check ===

impl Client {
    /// `sluice node check`: `GET /readyz` within `timeout`; Ok only for 200.
    pub async fn check(&self, timeout: &str) -> Result<(), ClientError> {
        let timeout = cli::check_timeout(timeout)?;
        let url = format!("{}/readyz", self.node);
        let not_ready = |reason: String| ClientError::NotReady {
            node: self.node.clone(),
            reason,
        };
        let resp = match self.http.get(&url).timeout(timeout).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(not_ready(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                )))
            }
            Err(e) => {
                return Err(ClientError::Unreachable {
                    node: self.node.clone(),
                    reason: root_cause(&e),
                })
            }
        };
        let status = resp.status();
        if status != StatusCode::OK {
            return Err(not_ready(format!("/readyz answered {status}")));
        }
        let body = serde_json::json!({ "node": self.node, "ready": true });
        if !self.json(&body) {
            println!("sluice node at {} is ready", self.node);
        }
        Ok(())
    }
}

// === cluster ===

impl Client {
    pub async fn node(&self, cmd: NodeCommand) -> Result<(), ClientError> {
        match cmd {
            NodeCommand::Drain { id, timeout, wait } => {
                let body = DrainNode {
                    timeout_ms: Some(cli::node_drain_timeout_ms(&timeout)?),
                };
                let path = format!("/v1/nodes/{id}/drain");
                let n: NodeView = self.call(Method::POST, &path, Some(&body)).await?;
                self.warn_pending(&n.pending_nodes);
                if wait {
                    return self.wait_node_drained(id).await;
                }
                if !self.json(&n) {
                    println!("node {id} draining: {}", output::node_state(&n));
                }
            }
            NodeCommand::Undrain { id } => {
                let path = format!("/v1/nodes/{id}/undrain");
                let n: NodeView = self.call(Method::POST, &path, None).await?;
                self.warn_pending(&n.pending_nodes);
                if !self.json(&n) {
                    println!("node {id} takes new clients again");
                }
            }
            NodeCommand::List => {
                let list: NodeList = self.get("/v1/nodes").await?;
                if !self.json(&list) {
                    output::nodes(&list.nodes);
                }
            }
            NodeCommand::Check { timeout } => return self.check(&timeout).await,
            NodeCommand::Run { .. } => {
                return Err(UsageError::invalid(
                    "node run",
                    "`node run` runs a node; it is not a client command",
                )
                .into())
            }
        }
        Ok(())
    }

    /// Polls `node list` until node `id` holds nothing (its drain finished)
    /// or its deadline passed; prints the node as it ends.
    async fn wait_node_drained(&self, id: NodeId) -> Result<(), ClientError> {
        loop {
            let list: NodeList = self.get("/v1/nodes").await?;
            let node = list.nodes.into_iter().find(|n| n.node == id);
            let done = match node.as_ref().and_then(|n| n.drain.as_ref()) {
                Some(d) => d.finished || d.remaining_ms == 0,
                None => true,
            };
            if done {
                if let Some(n) = &node {
                    if !self.json(n) {
                        println!("node {id}: {}", output::node_state(n));
                    }
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn cluster(&self, cmd: ClusterCommand) -> Result<(), ClientError> {
        match cmd {
            ClusterCommand::Init => {
                let st: serde_json::Value =
                    self.call(Method::POST, "/v1/cluster/init", None).await?;
                if !self.json(&st) {
                    println!(
                        "initialised a new cluster: node {} is its only voter and leader",
                        st["node"]
                    );
                }
            }
            ClusterCommand::Join { addr } => {
                if !(addr.starts_with("http://") || addr.starts_with("https://")) {
                    return Err(UsageError::invalid(
                        "ADDR",
                        format!(
                            "ADDR = {addr:?} is invalid: expected the new node's admin URL, e.g. http://127.0.0.2:7072 (https:// when the cluster runs TLS)"
                        ),
                    )
                    .into());
                }
                let body = sluice_admin::api::JoinNode { addr };
                let who: serde_json::Value = self
                    .call(Method::POST, "/v1/cluster/join", Some(&body))
                    .await?;
                if !self.json(&who) {
                    println!(
                        "node {} ({}) joined as voter",
                        who["node"],
                        who["addr"].as_str().unwrap_or("")
                    );
                }
            }
            ClusterCommand::Status => {
                let st: serde_json::Value = self.get("/v1/cluster/status").await?;
                if !self.json(&st) {
                    output::cluster_status(&st);
                }
            }
            ClusterCommand::RemoveNode { id } => {
                let st: serde_json::Value = self
                    .call(Method::DELETE, &format!("/v1/cluster/nodes/{id}"), None)
                    .await?;
                if !self.json(&st) {
                    println!("node {id} removed from the cluster");
                }
            }
        }
        Ok(())
    }
}

/// One line of what a drain has left, whole seconds so a plain log changes
/// once a second.
fn live_line(b: &BackendView) -> Option<String> {
    let d = b.drain.as_ref()?;
    let finished = d.nodes.iter().filter(|n| n.finished).count();
    Some(format!(
        "draining {} ({}): {}s left, {} in flight, {} tunnel{}, nodes finished {}/{}",
        b.addr,
        d.id,
        d.remaining_ms.div_ceil(1000),
        b.in_flight,
        b.tunnels,
        if b.tunnels == 1 { "" } else { "s" },
        finished,
        d.nodes.len()
    ))
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    let mut tls = None;
    loop {
        tls = tls.or_else(|| rustls_error(cause));
        match cause.source() {
            Some(next) => cause = next,
            None => break,
        }
    }
    if e.is_timeout() {
        return "timed out after 10s".into();
    }
    let text = cause.to_string();
    match tls {
        Some(t) => tls_line(t, &text),
        None => tls_text_line(&text).unwrap_or(text),
    }
}

/// [`tls_line`] for a rustls error that came as text only (the client's
/// connector may keep its message and drop its type).
fn tls_text_line(text: &str) -> Option<String> {
    use rustls::CertificateError as C;
    let certificate = |e: C| Some(tls_line(&rustls::Error::InvalidCertificate(e), text));
    if text.contains("invalid peer certificate: UnknownIssuer")
        || text.contains("invalid peer certificate: BadSignature")
    {
        certificate(C::UnknownIssuer)
    } else if text.contains("invalid peer certificate: NotValidForName")
        || text.contains("certificate not valid for name")
    {
        certificate(C::NotValidForName)
    } else if text.contains("invalid peer certificate: Expired")
        || text.contains("certificate expired")
    {
        certificate(C::Expired)
    } else if text.contains("invalid peer certificate") {
        certificate(C::BadEncoding)
    } else if text.contains("received corrupt message") {
        Some(tls_line(
            &rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            text,
        ))
    } else if text.contains("invalid HTTP version") {
        Some(format!(
            "{text} (the node's admin port may speak TLS: use an https:// --node)"
        ))
    } else {
        None
    }
}

/// The rustls error `e` is or wraps (inside an `io::Error`, whose
/// `source()` skips it).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    e.downcast_ref::<rustls::Error>().or_else(|| {
        e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    })
}

/// A TLS failure, said as what the operator should do about it.
fn tls_line(e: &rustls::Error, text: &str) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "certificate not trusted ({text}): pass --ca FILE (or SLUICE_CA) with the CA that signs the nodes' certificates"
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
            "certificate does not name this host ({text}): --node must use a DNS name or IP address in the node's certificate"
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("certificate expired ({text})")
        }
        rustls::Error::InvalidCertificate(_) => format!("certificate refused: {text}"),
        rustls::Error::InvalidMessage(_) => format!(
            "TLS handshake failed ({text}): the node's admin port may speak plain HTTP: use an http:// --node"
        ),
        _ => format!("TLS failed: {text}"),
    }
}

/// Request bodies as JSON, behind one object-safe trait.
mod erased {
    pub trait Body {
        fn json(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Body for T {
        fn json(&self) -> Vec<u8> {
            #[allow(clippy::expect_used)] // plain data with string keys always serializes
            serde_json::to_vec(self).expect("serializes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("10.0.0.11:8080"), "10.0.0.11:8080");
        assert_eq!(segment("[::1]:80"), "%5B::1%5D:80");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn pending_nodes_are_named() {
        assert_eq!(pending_message(&[]), None);
        assert_eq!(
            pending_message(&[3]).unwrap(),
            "committed; not yet applied on node 3"
        );
        assert_eq!(
            pending_message(&[2, 3]).unwrap(),
            "committed; not yet applied on nodes 2, 3"
        );
    }

    #[test]
    fn every_error_has_the_api_shape_and_its_exit_code() {
        let usage = ClientError::from(cli::weight(101).unwrap_err());
        let d = usage.detail();
        assert_eq!(
            (d.code.as_str(), d.field.as_deref()),
            ("out_of_range", Some("--weight"))
        );
        assert_eq!(d.message, "--weight = 101 is out of range 0..=100");
        assert_eq!(usage.exit_code(), 2);
        let api = ClientError::Api {
            status: StatusCode::CONFLICT,
            detail: ErrorDetail {
                code: "group_in_use".into(),
                message: "in use".into(),
                field: None,
            },
        };
        assert_eq!(api.detail().code, "group_in_use");
        assert_eq!(api.exit_code(), 1);
        let down = ClientError::Unreachable {
            node: "http://127.0.0.1:1".into(),
            reason: "refused".into(),
        };
        assert_eq!(down.detail().code, "node_unreachable");
        assert_eq!(
            down.detail().message,
            "cannot reach sluice node at http://127.0.0.1:1: refused"
        );
        let bind = ClientError::BindFailed {
            port: 8080,
            failed: vec![("node 2".into(), "Address in use".into())],
        };
        assert_eq!(bind.exit_code(), 3);
        assert_eq!(bind.detail().code, "listener_bind_failed");
        assert!(bind.to_string().starts_with(
            "listener :8080 was created, but node 2 could not bind it (Address in use)"
        ));
    }
}
