//! The command line: `sluice node run` runs a node; every other command is a
//! client of a node's admin API. Values are checked here, before any request,
//! with the same ranges the node enforces.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice_model::{
    validate_backend_addr, validate_drain_timeout, validate_group_name, validate_health_interval,
    validate_health_threshold, validate_health_timeout, validate_port, validate_request_timeout,
    validate_slow_start, validate_weight, HealthCheckUpdate, ModelError, ProbeMethod,
};

/// sluice: a clustered HTTP/WebSocket load balancer with connection draining.
#[derive(Debug, Parser)]
#[command(name = "sluice", version)]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags of every client command.
#[derive(Debug, Args)]
pub struct ClientFlags {
    /// Admin API of the node to talk to.
    #[arg(
        long,
        global = true,
        env = "SLUICE_NODE",
        default_value = "http://127.0.0.1:7070"
    )]
    pub node: String,
    /// Bearer token for writes (default: the node's generated ./data/token, if present).
    #[arg(long, global = true, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) that signs the nodes' certificates: the only
    /// trust root for an https:// --node (default: the system's roots).
    #[arg(long, global = true, env = "SLUICE_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// Output format of every command.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Linearizable reads: confirmed by (or forwarded to) the leader instead
    /// of answered from the node's own state.
    #[arg(long, global = true)]
    pub consistent: bool,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Server groups: the backends a listener spreads work over.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Backends of a group.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Listening ports.
    #[command(subcommand)]
    Listener(ListenerCommand),
    /// Cluster membership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Certificates that TLS listeners serve, replicated to every node.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Make the node (--node) the first member of a new cluster.
    Init,
    /// Add the node whose admin URL is ADDR (run against any member).
    Join {
        /// Admin URL of the node to add, e.g. http://127.0.0.2:7072 (https:// when the cluster runs TLS)
        addr: String,
    },
    /// Leader, term, and each member's role, applied index, lag, reachability.
    Status,
    /// Take a node out of the cluster.
    RemoveNode {
        /// Node id.
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a node. SIGTERM or Ctrl-C drains it (up to node.stop_timeout),
    /// then it exits 0; SIGHUP reloads its log settings and stop timeout.
    Run {
        /// Node config (TOML); without it the embedded default is used
        /// (admin on 127.0.0.1:7070, data in ./data).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Exit 0 if the node (--node) answers `/readyz` within --timeout, else
    /// 1: a health check for containers and scripts (needs no token).
    Check {
        /// How long to wait for the answer, 100ms..=60s.
        #[arg(long, value_name = "DURATION", default_value = "2s")]
        timeout: String,
    },
    /// Drain node ID (sent to any node): not ready at once, new connections
    /// only for its accept grace, keep-alive ended, what is left closed at
    /// the deadline. It lasts until `node undrain`, across restarts.
    Drain {
        /// Node id.
        id: u64,
        /// Time from now to the deadline, 0s..=3600s.
        #[arg(long, value_name = "DURATION", default_value = "60s")]
        timeout: String,
        /// Wait until the node holds nothing (or its deadline passed).
        #[arg(long)]
        wait: bool,
    },
    /// End node ID's drain: it takes new clients again.
    Undrain {
        /// Node id.
        id: u64,
    },
    /// Every member: its drain and what it holds now.
    List,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group (drain on, timeout 300s unless told otherwise).
    Create {
        name: String,
        /// Time from a backend's removal to its drain deadline, 0s..=3600s.
        #[arg(long, value_name = "DURATION")]
        drain_timeout: Option<String>,
        /// Remove backends abruptly (no draining).
        #[arg(long)]
        no_drain: bool,
        /// Ramp a backend that becomes active up to its weight over this
        /// window, 30s..=900s (default off).
        #[arg(long, value_name = "DURATION")]
        slow_start: Option<String>,
    },
    /// Change a group's drain, slow-start and health-check settings (drains
    /// in progress keep their deadline).
    Update {
        name: String,
        /// New drain timeout, 0s..=3600s.
        #[arg(long, value_name = "DURATION")]
        drain_timeout: Option<String>,
        /// Turn draining on.
        #[arg(long, conflicts_with = "no_drain")]
        drain: bool,
        /// Turn draining off.
        #[arg(long)]
        no_drain: bool,
        /// Turn slow start on or change its window, 30s..=900s.
        #[arg(long, value_name = "DURATION", conflicts_with = "no_slow_start")]
        slow_start: Option<String>,
        /// Turn slow start off (backends ramping now get their full weight).
        #[arg(long)]
        no_slow_start: bool,
        #[command(flatten)]
        health: HealthFlags,
    },
    /// Delete a group. Refused while backends or listeners use it, unless
    /// --force: then its listeners and backends drain and it goes when the
    /// last drain completes.
    Delete {
        name: String,
        /// Drain what uses the group instead of refusing.
        #[arg(long)]
        force: bool,
    },
    /// List groups.
    List,
    /// Show one group and its backends.
    Show { name: String },
}

/// Health-check flags of `group update`; any change starts a new health-check
/// revision (a failure before the first pass under it does not drain).
#[derive(Debug, clap::Args, Default)]
pub struct HealthFlags {
    /// Turn health checks on.
    #[arg(long, conflicts_with = "no_health_checks")]
    pub health_checks: bool,
    /// Turn health checks off (every backend counts as healthy).
    #[arg(long)]
    pub no_health_checks: bool,
    /// Path probed, starting with / (default /health).
    #[arg(long, value_name = "PATH")]
    pub health_path: Option<String>,
    /// GET or HEAD (default GET).
    #[arg(long, value_name = "METHOD")]
    pub health_method: Option<String>,
    /// Passing status classes, e.g. 2xx,3xx (the default).
    #[arg(long, value_name = "CLASSES")]
    pub health_status: Option<String>,
    /// Time between probes, 1s..=300s (default 2s).
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Time a probe may take, 1s..=120s (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Consecutive passes to become healthy, 1..=10 (default 3).
    #[arg(long, value_name = "N")]
    pub healthy_threshold: Option<u32>,
    /// Consecutive failures to become unhealthy, 1..=10 (default 3).
    #[arg(long, value_name = "N")]
    pub unhealthy_threshold: Option<u32>,
    /// Port probed instead of the backend's, 1..=65535; 0 = the backend's.
    #[arg(long, value_name = "PORT")]
    pub health_port: Option<u32>,
    /// Host header sent instead of the backend's host:port; "" = default.
    #[arg(long, value_name = "HOST")]
    pub health_host: Option<String>,
}

/// Checks the health flags; each refusal names the flag, the value and what
/// is allowed.
pub fn health_update(f: HealthFlags) -> Result<HealthCheckUpdate, UsageError> {
    let threshold = |flag: &str, v: u32| {
        let out_of_range =
            || UsageError::out_of_range(flag, format!("{flag} = {v} is out of range 1..=10"));
        let v = u8::try_from(v).map_err(|_| out_of_range())?;
        validate_health_threshold("threshold", v).map_err(|_| out_of_range())?;
        Ok(v)
    };
    let method = match f.health_method.as_deref() {
        None => None,
        Some(m) if m.eq_ignore_ascii_case("get") => Some(ProbeMethod::Get),
        Some(m) if m.eq_ignore_ascii_case("head") => Some(ProbeMethod::Head),
        Some(m) => {
            return Err(UsageError::invalid(
                "--health-method",
                format!("--health-method = {m:?} is invalid: expected GET or HEAD"),
            ))
        }
    };
    let status_classes = f
        .health_status
        .as_deref()
        .map(|v| {
            let bad = || {
                UsageError::invalid(
                    "--health-status",
                    format!(
                        "--health-status = {v:?} is invalid: expected classes among 1xx..5xx, e.g. 2xx,3xx"
                    ),
                )
            };
            let mut set = std::collections::BTreeSet::new();
            for part in v.split(',') {
                let part = part.trim().to_ascii_lowercase();
                let class = part
                    .strip_suffix("xx")
                    .and_then(|d| d.parse::<u8>().ok())
                    .filter(|d| (1..=5).contains(d))
                    .ok_or_else(bad)?;
                set.insert(class);
            }
            Ok(set)
        })
        .transpose()?;
    if let Some(p) = &f.health_path {
        if !p.starts_with('/') {
            return Err(UsageError::invalid(
                "--health-path",
                format!("--health-path = {p:?} is invalid: expected a path starting with '/'"),
            ));
        }
    }
    Ok(HealthCheckUpdate {
        enabled: if f.health_checks {
            Some(true)
        } else if f.no_health_checks {
            Some(false)
        } else {
            None
        },
        method,
        path: f.health_path,
        status_classes,
        interval_ms: f
            .health_interval
            .as_deref()
            .map(|v| duration_flag_ms("--health-interval", v, validate_health_interval))
            .transpose()?,
        timeout_ms: f
            .health_timeout
            .as_deref()
            .map(|v| duration_flag_ms("--health-timeout", v, validate_health_timeout))
            .transpose()?,
        healthy_threshold: f
            .healthy_threshold
            .map(|v| threshold("--healthy-threshold", v))
            .transpose()?,
        unhealthy_threshold: f
            .unhealthy_threshold
            .map(|v| threshold("--unhealthy-threshold", v))
            .transpose()?,
        port: f
            .health_port
            .map(|v| {
                u16::try_from(v).map_err(|_| {
                    UsageError::out_of_range(
                        "--health-port",
                        format!("--health-port = {v} is out of range 0..=65535"),
                    )
                })
            })
            .transpose()?,
        host: f.health_host,
    })
}

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Add a backend (or change an active backend's weight).
    Add {
        group: String,
        /// host:port
        addr: String,
        /// Share of new work, 0..=100.
        #[arg(long, default_value_t = 100)]
        weight: u32,
    },
    /// Change a backend's weight or maintenance state (at least one).
    Set {
        group: String,
        /// host:port
        addr: String,
        /// Share of new work, 0..=100.
        #[arg(long)]
        weight: Option<u32>,
        /// `on`: no new work, its connections kept; `off`: active again.
        #[arg(long, value_name = "on|off")]
        maintenance: Option<String>,
    },
    /// Remove a backend: no new work at once, drained until its deadline.
    Remove {
        group: String,
        /// host:port
        addr: String,
        /// Stay until the drain is complete, showing what is left.
        #[arg(long)]
        wait: bool,
    },
    /// List a group's backends with their state and live work, by address
    /// (fetched and printed page by page).
    List {
        group: String,
        /// Print only the first N backends, N >= 1.
        #[arg(long)]
        limit: Option<u64>,
        /// Backends fetched per request, 1..=10000.
        #[arg(long, default_value_t = 1000)]
        page: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListenerCommand {
    /// Add a listener on every node.
    Add {
        /// TCP port, 1..=65535.
        #[arg(long)]
        port: u32,
        /// Group it forwards to.
        #[arg(long)]
        group: String,
        /// Time a backend has to answer before the client gets 504, 1s..=600s.
        #[arg(long, value_name = "DURATION", default_value = "60s")]
        request_timeout: String,
        /// Terminate TLS with these certificates (names given to `cert
        /// add`, comma-separated): SNI picks among them, the first answers
        /// clients that send no name. Without it the listener is plain TCP.
        #[arg(long, value_name = "CERT[,CERT]", value_delimiter = ',')]
        tls: Vec<String>,
    },
    /// Change a listener's group, request timeout or TLS (at least one);
    /// requests already under way keep the settings they started with.
    Update {
        /// TCP port, 1..=65535.
        port: u32,
        /// Group it forwards to from now on.
        #[arg(long)]
        group: Option<String>,
        /// Time a backend has to answer before the client gets 504, 1s..=600s.
        #[arg(long, value_name = "DURATION")]
        request_timeout: Option<String>,
        /// Terminate TLS with these certificates from now on (comma-separated
        /// names); established connections keep their session.
        #[arg(
            long,
            value_name = "CERT[,CERT]",
            value_delimiter = ',',
            conflicts_with = "plain"
        )]
        tls: Option<Vec<String>>,
        /// Stop terminating TLS: new connections are plain TCP.
        #[arg(long)]
        plain: bool,
    },
    /// Remove a listener: it stops accepting at once; its open connections
    /// get until its group's drain deadline.
    Remove {
        /// TCP port, 1..=65535.
        port: u32,
    },
    /// List listeners (draining ones too) with each node's bind.
    List,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Store a certificate and its key on every node (a name stored
    /// already is replaced). The node checks them first: PEM, the key is
    /// the leaf's, the leaf is valid now.
    Add {
        /// Name listeners refer to it by: 1 to 63 of a-z, 0-9, '-', '_'.
        name: String,
        /// PEM file of the certificate chain, leaf first.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// PEM file of the leaf's private key (PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Replace a stored certificate (it must exist): new handshakes get the
    /// new one, established connections keep their session.
    Update {
        /// Name of the stored certificate.
        name: String,
        /// PEM file of the certificate chain, leaf first.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// PEM file of the leaf's private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Remove a certificate no listener uses.
    Remove {
        /// Name of the stored certificate.
        name: String,
    },
    /// List certificates: subject, names, issuer, expiry, listeners.
    List,
    /// Show one certificate (never its key).
    Show {
        /// Name of the stored certificate.
        name: String,
    },
}

/// A flag or argument value the CLI refuses before sending anything, in the
/// API's error shape: a stable code, the field (the flag or argument) and a
/// sentence naming the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// `invalid_value`, `out_of_range` or `nothing_to_update`.
    pub code: &'static str,
    /// The flag or argument at fault, e.g. `--weight`.
    pub field: Option<String>,
    /// One readable sentence.
    pub message: String,
}

impl UsageError {
    /// A value of the wrong form.
    pub fn invalid(field: &str, message: impl Into<String>) -> UsageError {
        UsageError {
            code: "invalid_value",
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// A value outside its range.
    pub fn out_of_range(field: &str, message: impl Into<String>) -> UsageError {
        UsageError {
            code: "out_of_range",
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// An update that names nothing to change.
    pub fn nothing_to_update(message: impl Into<String>) -> UsageError {
        UsageError {
            code: "nothing_to_update",
            field: None,
            message: message.into(),
        }
    }

    fn model(e: ModelError) -> UsageError {
        UsageError {
            code: e.code(),
            field: e.field().map(String::from),
            message: e.to_string(),
        }
    }
}

/// A certificate's name, checked as the node checks it.
pub fn cert_name(name: &str) -> Result<(), UsageError> {
    sluice_model::validate_cert_name(name).map_err(|e| {
        UsageError::invalid("NAME", format!("certificate name {name:?} is invalid: {e}"))
    })
}

/// The text of a PEM file given with `flag`: a file that cannot be read is
/// a usage error naming the flag and the path.
pub fn pem_file(flag: &str, path: &std::path::Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(|e| {
        UsageError::invalid(
            flag,
            format!("cannot read {flag} file {}: {e}", path.display()),
        )
    })
}

/// Parses a human duration flag (`15s`, `5m`).
pub fn parse_duration(flag: &str, value: &str) -> Result<Duration, UsageError> {
    humantime::parse_duration(value).map_err(|_| {
        UsageError::invalid(
            flag,
            format!("{flag} = {value:?} is not a duration (e.g. 15s, 5m)"),
        )
    })
}

/// Parses a duration flag and checks it with the model's own `validate`;
/// returns milliseconds, or an error naming the flag, the value and the
/// model's range.
fn duration_flag_ms(
    flag: &str,
    value: &str,
    validate: impl Fn(u64) -> Result<(), ModelError>,
) -> Result<u64, UsageError> {
    let ms = parse_duration(flag, value)?.as_millis() as u64;
    match validate(ms) {
        Ok(()) => Ok(ms),
        Err(ModelError::OutOfRange { range, .. }) => Err(UsageError::out_of_range(
            flag,
            format!("{flag} = {value} is out of range {range}"),
        )),
        Err(e) => Err(UsageError::invalid(flag, format!("{flag} = {value}: {e}"))),
    }
}

/// Checks a drain timeout flag; returns milliseconds.
pub fn drain_timeout_ms(value: &str) -> Result<u64, UsageError> {
    duration_flag_ms("--drain-timeout", value, validate_drain_timeout)
}

/// Checks a node drain's `--timeout`; returns milliseconds.
pub fn node_drain_timeout_ms(value: &str) -> Result<u64, UsageError> {
    duration_flag_ms(
        "--timeout",
        value,
        sluice_model::validate_node_drain_timeout,
    )
}

/// Checks a slow-start flag; returns milliseconds.
pub fn slow_start_ms(value: &str) -> Result<u64, UsageError> {
    duration_flag_ms("--slow-start", value, validate_slow_start)
}

/// Checks a request timeout flag; returns milliseconds.
pub fn request_timeout_ms(value: &str) -> Result<u64, UsageError> {
    duration_flag_ms("--request-timeout", value, validate_request_timeout)
}

/// Checks a `node check` timeout flag.
pub fn check_timeout(value: &str) -> Result<Duration, UsageError> {
    let d = parse_duration("--timeout", value)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(60) {
        return Err(UsageError::out_of_range(
            "--timeout",
            format!("--timeout = {value} is out of range 100ms..=60s"),
        ));
    }
    Ok(d)
}

/// Checks a weight flag.
pub fn weight(value: u32) -> Result<u32, UsageError> {
    validate_weight(value).map(u32::from).map_err(|_| {
        UsageError::out_of_range(
            "--weight",
            format!("--weight = {value} is out of range 0..=100"),
        )
    })
}

/// Checks `backend list --limit`.
pub fn list_limit(value: u64) -> Result<u64, UsageError> {
    if value == 0 {
        return Err(UsageError::out_of_range(
            "--limit",
            format!("--limit = {value} is out of range 1.."),
        ));
    }
    Ok(value)
}

/// Checks `backend list --page`.
pub fn list_page(value: u64) -> Result<u64, UsageError> {
    let max = sluice_admin::api::BACKEND_PAGE_MAX as u64;
    if !(1..=max).contains(&value) {
        return Err(UsageError::out_of_range(
            "--page",
            format!("--page = {value} is out of range 1..={max}"),
        ));
    }
    Ok(value)
}

/// Checks a port flag (`--port`) or argument (`PORT`).
pub fn port(field: &str, value: u32) -> Result<u32, UsageError> {
    validate_port(value).map(u32::from).map_err(|_| {
        UsageError::out_of_range(
            field,
            format!("{field} = {value} is out of range 1..=65535"),
        )
    })
}

/// Checks a group name argument.
pub fn group(name: &str) -> Result<(), UsageError> {
    validate_group_name(name).map_err(UsageError::model)
}

/// Checks a backend address argument.
pub fn backend_addr(addr: &str) -> Result<(), UsageError> {
    validate_backend_addr(addr).map_err(UsageError::model)
}

/// Checks `--maintenance on|off`.
pub fn maintenance(value: &str) -> Result<bool, UsageError> {
    match value.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(UsageError::invalid(
            "--maintenance",
            format!("--maintenance = {value:?} is invalid: expected on or off"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_documented_forms_parse() {
        for args in [
            &["node", "run"][..],
            &["node", "check", "--timeout", "1s"],
            &["group", "create", "web", "--drain-timeout", "15s"],
            &["group", "create", "web", "--no-drain"],
            &["group", "update", "web", "--drain-timeout", "300s"],
            &["group", "create", "web", "--slow-start", "60s"],
            &["group", "update", "web", "--slow-start", "2m"],
            &["group", "update", "web", "--no-slow-start"],
            &["backend", "add", "web", "10.0.0.11:8080", "--weight", "100"],
            &[
                "listener",
                "add",
                "--port",
                "80",
                "--group",
                "web",
                "--request-timeout",
                "60s",
            ],
            &["backend", "remove", "web", "10.0.0.11:8080", "--wait"],
            &["backend", "list", "web", "--output", "json"],
            &[
                "cluster",
                "join",
                "http://127.0.0.2:7072",
                "--node",
                "http://127.0.0.1:7071",
            ],
            &["cluster", "status", "--consistent"],
            &["cluster", "remove-node", "3"],
            &["group", "delete", "web", "--force"],
            &["backend", "set", "web", "10.0.0.11:8080", "--weight", "50"],
            &[
                "backend",
                "set",
                "web",
                "10.0.0.11:8080",
                "--maintenance",
                "on",
            ],
            &["listener", "update", "80", "--group", "api"],
            &["listener", "update", "80", "--request-timeout", "15s"],
            &["listener", "remove", "80"],
        ] {
            parse(args);
        }
        assert!(
            Cli::try_parse_from(["sluice", "group", "update", "web", "--drain", "--no-drain"])
                .is_err()
        );
        assert!(Cli::try_parse_from([
            "sluice",
            "group",
            "update",
            "web",
            "--slow-start",
            "60s",
            "--no-slow-start"
        ])
        .is_err());
    }

    #[test]
    fn bad_values_name_flag_value_and_range() {
        assert_eq!(
            drain_timeout_ms("2h").unwrap_err().message,
            "--drain-timeout = 2h is out of range 0s..=3600s"
        );
        assert_eq!(
            drain_timeout_ms("abc").unwrap_err().message,
            "--drain-timeout = \"abc\" is not a duration (e.g. 15s, 5m)"
        );
        assert_eq!(drain_timeout_ms("15s").unwrap(), 15_000);
        for bad in ["10s", "16m"] {
            let e = slow_start_ms(bad).unwrap_err().message;
            assert_eq!(
                e,
                format!("--slow-start = {bad} is out of range 30s..=900s")
            );
        }
        assert_eq!(slow_start_ms("30s").unwrap(), 30_000);
        assert_eq!(slow_start_ms("15m").unwrap(), 900_000);
        let err = |f: HealthFlags| health_update(f).unwrap_err().message;
        assert_eq!(
            err(HealthFlags {
                health_interval: Some("500ms".into()),
                ..Default::default()
            }),
            "--health-interval = 500ms is out of range 1s..=300s"
        );
        assert_eq!(
            err(HealthFlags {
                unhealthy_threshold: Some(11),
                ..Default::default()
            }),
            "--unhealthy-threshold = 11 is out of range 1..=10"
        );
        assert!(err(HealthFlags {
            health_status: Some("2xx,6xx".into()),
            ..Default::default()
        })
        .contains("--health-status"));
        let ok = health_update(HealthFlags {
            health_status: Some("2XX, 3xx".into()),
            health_method: Some("head".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.status_classes, Some([2, 3].into_iter().collect()));
        assert_eq!(ok.method, Some(ProbeMethod::Head));
        assert_eq!(
            request_timeout_ms("0s").unwrap_err().message,
            "--request-timeout = 0s is out of range 1s..=600s"
        );
        for bad in ["2m", "10ms"] {
            let e = check_timeout(bad).unwrap_err().message;
            assert_eq!(e, format!("--timeout = {bad} is out of range 100ms..=60s"));
        }
        assert_eq!(check_timeout("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            weight(101).unwrap_err().message,
            "--weight = 101 is out of range 0..=100"
        );
        assert_eq!(
            port("--port", 70000).unwrap_err().message,
            "--port = 70000 is out of range 1..=65535"
        );
        assert!(backend_addr("10.0.0.1")
            .unwrap_err()
            .message
            .contains("host:port"));
        assert!(group("Web").is_err());
        assert!(maintenance("ON").unwrap());
        assert!(!maintenance("off").unwrap());
        let e = maintenance("maybe").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref(), e.message.as_str()),
            (
                "invalid_value",
                Some("--maintenance"),
                "--maintenance = \"maybe\" is invalid: expected on or off"
            )
        );
    }

    #[test]
    fn refusals_carry_code_and_field() {
        let e = weight(101).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("out_of_range", Some("--weight"))
        );
        let e = drain_timeout_ms("soon").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_value", Some("--drain-timeout"))
        );
        let e = port("PORT", 0).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref(), e.message.as_str()),
            (
                "out_of_range",
                Some("PORT"),
                "PORT = 0 is out of range 1..=65535"
            )
        );
        let e = group("Web").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("group"));
        assert!(e.message.contains("Web"), "{}", e.message);
        let e = backend_addr("10.0.0.1").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("backend"));
    }
}
