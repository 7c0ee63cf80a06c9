//! The node's config file (TOML). Every field is optional; an invalid value
//! fails at start naming the file, the field, the value and what is allowed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_raft::tls::{MemberTls, MemberTlsFiles, TlsFile};
use thiserror::Error;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// What a reload changes (field names as in the file).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadChanges {
    /// Taken at once.
    pub applied: Vec<&'static str>,
    /// Taken at the next start.
    pub need_restart: Vec<&'static str>,
}

/// The environment variable that, when set, overrides `[log] format`.
pub const LOG_FORMAT_ENV: &str = "SLUICE_LOG_FORMAT";

/// A node's settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub data_address: IpAddr,
    /// Tokio worker threads; 0 means one per CPU this process may run on.
    pub worker_threads: usize,
    /// A stopping node drains itself for at most this long (N1); the stop
    /// sequence after it has its own bound.
    pub stop_timeout: Duration,
    /// How long a draining node still accepts new connections.
    pub accept_grace: Duration,
    pub admin_listen: SocketAddr,
    /// `[admin] token`; `SLUICE_TOKEN` wins over it, and it wins over the
    /// data dir's token file (`sluice_admin::auth::resolve_token`).
    pub token: Option<String>,
    /// `[admin.tls]`: the admin API and the members' traffic over TLS
    /// (checked at load: readable, PEM, key matching, accepted by the CA).
    pub admin_tls: Option<MemberTlsFiles>,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub upstream_connect_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub upstream_max_idle_per_backend: usize,
    pub log_format: LogFormat,
    pub log_level: String,
    pub bootstrap: bool,
    pub advertise: String,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_every: u64,
    /// `[debug] fault_injection`: tests only, never in production.
    pub fault_injection: bool,
    /// `[access_log]`: `None` when `enabled = false`.
    pub access_log: Option<AccessLogConfig>,
}

/// `[access_log]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// `format`; `None`: the node's log format (`[log] format`, or
    /// `SLUICE_LOG_FORMAT`).
    pub format: Option<LogFormat>,
    /// `path`: a file appended to; `None`: standard output.
    pub path: Option<PathBuf>,
    /// `query`: whether a line's target keeps the query string.
    pub query: bool,
}

/// Why a config file was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {field} = {value} is out of range {range}")]
    OutOfRange {
        file: String,
        field: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("{file}: {field} = {value} is invalid: expected {expected}")]
    Invalid {
        file: String,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{file}: {field} is missing: [admin.tls] needs cert, key and ca together, or none of them for plain HTTP")]
    TlsIncomplete { file: String, field: &'static str },
    #[error("{file}: {field} = {value} is invalid: {reason}")]
    TlsFile {
        file: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{var} = {value} is invalid: expected {expected}")]
    Env {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    cluster: RawCluster,
    #[serde(default)]
    debug: RawDebug,
    #[serde(default)]
    access_log: RawAccessLog,
}

/// `[access_log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessLog {
    enabled: Option<bool>,
    format: Option<String>,
    path: Option<String>,
    query: Option<bool>,
}

/// `[debug]`: settings for tests only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDebug {
    fault_injection: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    bootstrap: Option<bool>,
    advertise: Option<String>,
    heartbeat_interval: Option<String>,
    election_timeout: Option<String>,
    snapshot_every: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Option<i64>,
    data_dir: Option<String>,
    data_address: Option<String>,
    worker_threads: Option<i64>,
    stop_timeout: Option<String>,
    accept_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token: Option<String>,
    tls: Option<RawAdminTls>,
}

/// `[admin.tls]`: all three files or none.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdminTls {
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    header_read_timeout: Option<String>,
    max_header_bytes: Option<i64>,
    upstream_connect_timeout: Option<String>,
    upstream_idle_timeout: Option<String>,
    upstream_max_idle_per_backend: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

impl NodeConfig {
    /// The settings `sluice node run` uses without `--config`: admin API on
    /// 127.0.0.1:7070, data in `./data`, listeners on 127.0.0.1.
    #[allow(clippy::expect_used)] // checked by a unit test of this module
    pub fn embedded_default() -> NodeConfig {
        Self::from_raw(RawConfig::default(), "<embedded default>")
            .expect("the embedded default is valid")
    }

    /// What reloading `new` over `self` changes: the fields a running node
    /// takes at once (SIGHUP) and those it takes at its next start.
    pub fn reload_changes(&self, new: &NodeConfig) -> ReloadChanges {
        let mut changes = ReloadChanges::default();
        macro_rules! compare {
            ($list:ident: $($field:ident => $name:literal),* $(,)?) => {
                $(if self.$field != new.$field {
                    changes.$list.push($name);
                })*
            };
        }
        compare!(applied:
            log_level => "log.level",
            log_format => "log.format",
            stop_timeout => "node.stop_timeout",
        );
        compare!(need_restart:
            node_id => "node.id",
            data_dir => "node.data_dir",
            data_address => "node.data_address",
            worker_threads => "node.worker_threads",
            accept_grace => "node.accept_grace",
            admin_listen => "admin.listen",
            token => "admin.token",
            admin_tls => "admin.tls",
            header_read_timeout => "proxy.header_read_timeout",
            max_header_bytes => "proxy.max_header_bytes",
            upstream_connect_timeout => "proxy.upstream_connect_timeout",
            upstream_idle_timeout => "proxy.upstream_idle_timeout",
            upstream_max_idle_per_backend => "proxy.upstream_max_idle_per_backend",
            bootstrap => "cluster.bootstrap",
            advertise => "cluster.advertise",
            heartbeat_interval => "cluster.heartbeat_interval",
            election_timeout => "cluster.election_timeout",
            snapshot_every => "cluster.snapshot_every",
            fault_injection => "debug.fault_injection",
            access_log => "access_log",
        );
        changes
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    fn parse(text: &str, file: &str) -> Result<NodeConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        Self::from_raw(raw, file)
    }

    fn from_raw(raw: RawConfig, file: &str) -> Result<NodeConfig, ConfigError> {
        let v = Validator { file };
        let node_id = v.int("node.id", raw.node.id, 1, 1, i64::MAX, "1..")? as u64;
        let data_address = v.parse::<IpAddr>(
            "node.data_address",
            raw.node.data_address.as_deref(),
            "127.0.0.1",
            "an IP address (e.g. 127.0.0.1, 0.0.0.0)",
        )?;
        let admin_listen = v.parse::<SocketAddr>(
            "admin.listen",
            raw.admin.listen.as_deref(),
            "127.0.0.1:7070",
            "ip:port (e.g. 127.0.0.1:7070)",
        )?;
        let token = match raw.admin.token {
            None => None,
            Some(t) if t.len() >= 16 && t.bytes().all(|b| b.is_ascii_graphic()) => Some(t),
            Some(t) => {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    field: "admin.token",
                    value: format!("{:?}", "*".repeat(t.len().min(8))),
                    expected: "at least 16 printable ASCII characters without spaces",
                })
            }
        };
        let format = raw.log.format.as_deref().unwrap_or("text");
        let log_format = LogFormat::parse(format).ok_or_else(|| ConfigError::Invalid {
            file: file.to_string(),
            field: "log.format",
            value: format!("{format:?}"),
            expected: "\"text\" or \"json\"",
        })?;
        let log_level = raw.log.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                field: "log.level",
                value: format!("{log_level:?}"),
                expected: "error, warn, info, debug, trace or a tracing filter directive",
            });
        }
        let access_log = access_log(raw.access_log, file)?;
        let admin_tls = admin_tls(raw.admin.tls, file)?;
        let scheme = if admin_tls.is_some() { "https" } else { "http" };
        let advertise = match raw.cluster.advertise {
            Some(url) => {
                let ok = url
                    .strip_prefix(scheme)
                    .and_then(|rest| rest.strip_prefix("://"))
                    .and_then(|rest| rest.trim_end_matches('/').rsplit_once(':'))
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    return Err(ConfigError::Invalid {
                        file: file.to_string(),
                        field: "cluster.advertise",
                        value: format!("{url:?}"),
                        expected: if admin_tls.is_some() {
                            "the admin URL other nodes reach this one at, https://host:port ([admin.tls] is set)"
                        } else {
                            "the admin URL other nodes reach this one at, http://host:port (https:// needs [admin.tls])"
                        },
                    });
                }
                url.trim_end_matches('/').to_string()
            }
            None if admin_listen.ip().is_unspecified() => {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    field: "cluster.advertise",
                    value: "(unset)".into(),
                    expected: "an http(s)://host:port URL: admin.listen is a wildcard address, so peers need to be told where to reach this node",
                })
            }
            None => format!("{scheme}://{admin_listen}"),
        };
        let heartbeat_interval = v.duration(
            "cluster.heartbeat_interval",
            raw.cluster.heartbeat_interval.as_deref(),
            "100ms",
            (Duration::from_millis(20), Duration::from_secs(5)),
            "20ms..=5s",
        )?;
        let election_timeout = v.duration(
            "cluster.election_timeout",
            raw.cluster.election_timeout.as_deref(),
            "500ms",
            (Duration::from_millis(100), Duration::from_secs(30)),
            "100ms..=30s",
        )?;
        if election_timeout < heartbeat_interval * 3 {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                field: "cluster.election_timeout",
                value: humantime::format_duration(election_timeout).to_string(),
                expected: "at least 3 x cluster.heartbeat_interval",
            });
        }
        Ok(NodeConfig {
            bootstrap: raw.cluster.bootstrap.unwrap_or(true),
            advertise,
            heartbeat_interval,
            election_timeout,
            fault_injection: raw.debug.fault_injection.unwrap_or(false),
            access_log,
            snapshot_every: v.int(
                "cluster.snapshot_every",
                raw.cluster.snapshot_every,
                1000,
                100,
                1_000_000,
                "100..=1000000",
            )? as u64,
            node_id,
            worker_threads: v.int(
                "node.worker_threads",
                raw.node.worker_threads,
                0,
                0,
                1024,
                "0..=1024",
            )? as usize,
            stop_timeout: v.duration(
                "node.stop_timeout",
                raw.node.stop_timeout.as_deref(),
                "30s",
                (Duration::from_secs(1), Duration::from_secs(3600)),
                "1s..=3600s",
            )?,
            accept_grace: v.duration(
                "node.accept_grace",
                raw.node.accept_grace.as_deref(),
                "3s",
                (Duration::ZERO, Duration::from_secs(60)),
                "0s..=60s",
            )?,
            data_dir: PathBuf::from(raw.node.data_dir.unwrap_or_else(|| "./data".into())),
            data_address,
            admin_listen,
            token,
            admin_tls,
            header_read_timeout: v.duration(
                "proxy.header_read_timeout",
                raw.proxy.header_read_timeout.as_deref(),
                "10s",
                (Duration::from_secs(1), Duration::from_secs(300)),
                "1s..=300s",
            )?,
            max_header_bytes: v.int(
                "proxy.max_header_bytes",
                raw.proxy.max_header_bytes,
                16_384,
                8_192,
                1_048_576,
                "8192..=1048576",
            )? as usize,
            upstream_connect_timeout: v.duration(
                "proxy.upstream_connect_timeout",
                raw.proxy.upstream_connect_timeout.as_deref(),
                "5s",
                (Duration::from_millis(100), Duration::from_secs(60)),
                "100ms..=60s",
            )?,
            upstream_idle_timeout: v.duration(
                "proxy.upstream_idle_timeout",
                raw.proxy.upstream_idle_timeout.as_deref(),
                "90s",
                (Duration::from_secs(1), Duration::from_secs(3600)),
                "1s..=3600s",
            )?,
            upstream_max_idle_per_backend: v.int(
                "proxy.upstream_max_idle_per_backend",
                raw.proxy.upstream_max_idle_per_backend,
                1024,
                0,
                100_000,
                "0..=100000",
            )? as usize,
            log_format,
            log_level,
        })
    }
}

impl NodeConfig {
    /// Applies the value of [`LOG_FORMAT_ENV`], if set: it overrides
    /// `[log] format` (containers switch to JSON logs without a new file).
    pub fn override_log_format(&mut self, env: Option<&str>) -> Result<(), ConfigError> {
        let Some(value) = env else {
            return Ok(());
        };
        self.log_format = LogFormat::parse(value).ok_or_else(|| ConfigError::Env {
            var: LOG_FORMAT_ENV,
            value: format!("{value:?}"),
            expected: "\"text\" or \"json\"",
        })?;
        Ok(())
    }
}

/// `[admin.tls]`, all three files or none, each checked by loading them.
/// `[access_log]`: on unless `enabled = false`; `format` one of the log
/// formats; `path` a non-empty file name (opened at start).
fn access_log(raw: RawAccessLog, file: &str) -> Result<Option<AccessLogConfig>, ConfigError> {
    let format = match raw.format.as_deref() {
        None => None,
        Some(f) => Some(LogFormat::parse(f).ok_or_else(|| ConfigError::Invalid {
            file: file.to_string(),
            field: "access_log.format",
            value: format!("{f:?}"),
            expected: "\"json\" or \"text\"",
        })?),
    };
    let path = match raw.path {
        Some(p) if p.trim().is_empty() => {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                field: "access_log.path",
                value: format!("{p:?}"),
                expected: "a file to append to (leave path out for standard output)",
            })
        }
        p => p.map(PathBuf::from),
    };
    Ok(raw.enabled.unwrap_or(true).then_some(AccessLogConfig {
        format,
        path,
        query: raw.query.unwrap_or(false),
    }))
}

fn admin_tls(raw: Option<RawAdminTls>, file: &str) -> Result<Option<MemberTlsFiles>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let (cert, key, ca) = match (raw.cert, raw.key, raw.ca) {
        (None, None, None) => return Ok(None),
        (Some(cert), Some(key), Some(ca)) => (cert, key, ca),
        (cert, key, _) => {
            let field = if cert.is_none() {
                "admin.tls.cert"
            } else if key.is_none() {
                "admin.tls.key"
            } else {
                "admin.tls.ca"
            };
            return Err(ConfigError::TlsIncomplete {
                file: file.to_string(),
                field,
            });
        }
    };
    let files = MemberTlsFiles {
        cert: PathBuf::from(cert),
        key: PathBuf::from(key),
        ca: PathBuf::from(ca),
    };
    MemberTls::load(&files).map_err(|e| ConfigError::TlsFile {
        file: file.to_string(),
        field: match e.file() {
            TlsFile::Cert => "admin.tls.cert",
            TlsFile::Key => "admin.tls.key",
            TlsFile::Ca => "admin.tls.ca",
        },
        value: format!("{:?}", e.path().display().to_string()),
        reason: e.to_string(),
    })?;
    Ok(Some(files))
}

struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
    fn int(
        &self,
        field: &'static str,
        value: Option<i64>,
        default: i64,
        min: i64,
        max: i64,
        range: &'static str,
    ) -> Result<i64, ConfigError> {
        let v = value.unwrap_or(default);
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(ConfigError::OutOfRange {
                file: self.file.to_string(),
                field,
                value: v.to_string(),
                range,
            })
        }
    }

    fn duration(
        &self,
        field: &'static str,
        value: Option<&str>,
        default: &str,
        (min, max): (Duration, Duration),
        range: &'static str,
    ) -> Result<Duration, ConfigError> {
        let text = value.unwrap_or(default);
        let d = humantime::parse_duration(text).map_err(|_| ConfigError::Invalid {
            file: self.file.to_string(),
            field,
            value: format!("{text:?}"),
            expected: "a duration such as 10s, 500ms or 5m",
        })?;
        if d < min || d > max {
            return Err(ConfigError::OutOfRange {
                file: self.file.to_string(),
                field,
                value: text.to_string(),
                range,
            });
        }
        Ok(d)
    }

    fn parse<T: std::str::FromStr>(
        &self,
        field: &'static str,
        value: Option<&str>,
        default: &str,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        let text = value.unwrap_or(default);
        text.parse().map_err(|_| ConfigError::Invalid {
            file: self.file.to_string(),
            field,
            value: format!("{text:?}"),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_loads_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/single.toml");
        let c = NodeConfig::load(&path).unwrap();
        let d = NodeConfig::embedded_default();
        assert_eq!(
            c,
            NodeConfig {
                token: None,
                ..d.clone()
            }
        );
        assert_eq!(d.admin_listen, "127.0.0.1:7070".parse().unwrap());
        assert_eq!(d.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn the_access_log_is_on_by_default_in_the_log_format() {
        let d = NodeConfig::embedded_default();
        assert_eq!(
            d.access_log,
            Some(AccessLogConfig {
                format: None,
                path: None,
                query: false
            })
        );
        let c = NodeConfig::parse("[access_log]\nenabled = false", "x.toml").unwrap();
        assert_eq!(c.access_log, None);
        let c = NodeConfig::parse(
            "[access_log]\nformat = \"json\"\npath = \"/var/log/a.log\"\nquery = true",
            "x.toml",
        )
        .unwrap();
        assert_eq!(
            c.access_log,
            Some(AccessLogConfig {
                format: Some(LogFormat::Json),
                path: Some(PathBuf::from("/var/log/a.log")),
                query: true
            })
        );
        let e = NodeConfig::parse("[access_log]\nfile = \"a\"", "x.toml").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn fault_injection_is_off_unless_asked_for() {
        assert!(!NodeConfig::embedded_default().fault_injection);
        let c = NodeConfig::parse("[debug]\nfault_injection = true", "x.toml").unwrap();
        assert!(c.fault_injection);
        let e = NodeConfig::parse("[debug]\nfaults = true", "x.toml").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn the_three_node_examples_load() {
        for i in 1..=3u64 {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("config/node{i}.toml"));
            let c = NodeConfig::load(&path).unwrap();
            assert_eq!(c.node_id, i);
            assert!(!c.bootstrap);
            assert_eq!(c.data_address, IpAddr::from([127, 0, 0, i as u8]));
            assert_eq!(c.advertise, format!("http://127.0.0.1:707{i}"));
        }
    }

    #[test]
    fn the_docker_configs_load() {
        for i in 1..=3u64 {
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docker/config/node{i}.toml"));
            let c = NodeConfig::load(&path).unwrap();
            assert_eq!(c.node_id, i);
            assert!(!c.bootstrap);
            assert_eq!(c.token, None, "the token comes from SLUICE_TOKEN");
            assert!(c.data_address.is_unspecified());
            assert_eq!(c.admin_listen, "0.0.0.0:7070".parse().unwrap());
            assert_eq!(c.advertise, format!("http://node{i}:7070"));
            assert_eq!(c.data_dir, PathBuf::from("/data"));
        }
    }

    #[test]
    fn the_docker_tls_configs_load_with_certificates_in_place() {
        use sluice_testkit::MemberCa;
        let dir = tempfile::tempdir().unwrap();
        let ca = MemberCa::new(dir.path(), "demo").unwrap();
        std::fs::copy(ca.ca_file(), dir.path().join("ca.pem")).unwrap();
        for i in 1..=3u64 {
            ca.issue(&format!("node{i}"), &[&format!("node{i}"), "127.0.0.1"])
                .unwrap();
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("docker/config/tls/node{i}.toml"));
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("/etc/sluice/tls", &dir.path().display().to_string());
            let c = NodeConfig::parse(&text, "x.toml").unwrap();
            assert_eq!(c.node_id, i);
            assert_eq!(c.advertise, format!("https://node{i}:7070"));
            assert_eq!(
                c.admin_tls.unwrap().cert,
                dir.path().join(format!("node{i}.pem"))
            );
            // Everything else as in the plain file.
            let plain = NodeConfig::load(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docker/config/node{i}.toml")),
            )
            .unwrap();
            assert_eq!(
                NodeConfig {
                    admin_tls: None,
                    advertise: plain.advertise.clone(),
                    ..c
                },
                plain
            );
        }
    }

    #[test]
    fn every_bad_value_names_file_field_value_and_range() {
        let cases = [
            ("[node]\nid = 0", "x.toml: node.id = 0 is out of range 1.."),
            (
                "[node]\nworker_threads = 2000",
                "x.toml: node.worker_threads = 2000 is out of range 0..=1024",
            ),
            (
                "[node]\nstop_timeout = \"0s\"",
                "x.toml: node.stop_timeout = 0s is out of range 1s..=3600s",
            ),
            (
                "[node]\naccept_grace = \"2m\"",
                "x.toml: node.accept_grace = 2m is out of range 0s..=60s",
            ),
            ("[node]\ndata_address = \"local\"", "x.toml: node.data_address = \"local\" is invalid: expected an IP address (e.g. 127.0.0.1, 0.0.0.0)"),
            ("[admin]\nlisten = \"nope\"", "x.toml: admin.listen = \"nope\" is invalid: expected ip:port (e.g. 127.0.0.1:7070)"),
            ("[admin]\ntoken = \"short\"", "x.toml: admin.token = \"*****\" is invalid: expected at least 16 printable ASCII characters without spaces"),
            ("[proxy]\nheader_read_timeout = \"0s\"", "x.toml: proxy.header_read_timeout = 0s is out of range 1s..=300s"),
            ("[proxy]\nheader_read_timeout = \"soon\"", "x.toml: proxy.header_read_timeout = \"soon\" is invalid: expected a duration such as 10s, 500ms or 5m"),
            ("[proxy]\nmax_header_bytes = 100", "x.toml: proxy.max_header_bytes = 100 is out of range 8192..=1048576"),
            ("[proxy]\nupstream_connect_timeout = \"2m\"", "x.toml: proxy.upstream_connect_timeout = 2m is out of range 100ms..=60s"),
            ("[proxy]\nupstream_idle_timeout = \"2h\"", "x.toml: proxy.upstream_idle_timeout = 2h is out of range 1s..=3600s"),
            ("[proxy]\nupstream_max_idle_per_backend = -1", "x.toml: proxy.upstream_max_idle_per_backend = -1 is out of range 0..=100000"),
            ("[log]\nformat = \"xml\"", "x.toml: log.format = \"xml\" is invalid: expected \"text\" or \"json\""),
            ("[log]\nlevel = \"[[\"", "x.toml: log.level = \"[[\" is invalid: expected error, warn, info, debug, trace or a tracing filter directive"),
            ("[cluster]\nadvertise = \"127.0.0.1:7070\"", "x.toml: cluster.advertise = \"127.0.0.1:7070\" is invalid: expected the admin URL other nodes reach this one at, http://host:port (https:// needs [admin.tls])"),
            ("[cluster]\nadvertise = \"https://127.0.0.1:7070\"", "x.toml: cluster.advertise = \"https://127.0.0.1:7070\" is invalid: expected the admin URL other nodes reach this one at, http://host:port (https:// needs [admin.tls])"),
            ("[admin.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"", "x.toml: admin.tls.ca is missing: [admin.tls] needs cert, key and ca together, or none of them for plain HTTP"),
            ("[admin.tls]\nca = \"ca.pem\"", "x.toml: admin.tls.cert is missing: [admin.tls] needs cert, key and ca together, or none of them for plain HTTP"),
            ("[admin.tls]\ncert = \"c.pem\"\nca = \"ca.pem\"", "x.toml: admin.tls.key is missing: [admin.tls] needs cert, key and ca together, or none of them for plain HTTP"),
            ("[admin]\nlisten = \"0.0.0.0:7070\"", "x.toml: cluster.advertise = (unset) is invalid: expected an http(s)://host:port URL: admin.listen is a wildcard address, so peers need to be told where to reach this node"),
            ("[cluster]\nheartbeat_interval = \"1ms\"", "x.toml: cluster.heartbeat_interval = 1ms is out of range 20ms..=5s"),
            ("[cluster]\nelection_timeout = \"200ms\"\nheartbeat_interval = \"100ms\"", "x.toml: cluster.election_timeout = 200ms is invalid: expected at least 3 x cluster.heartbeat_interval"),
            ("[cluster]\nsnapshot_every = 5", "x.toml: cluster.snapshot_every = 5 is out of range 100..=1000000"),
            ("[access_log]\nformat = \"xml\"", "x.toml: access_log.format = \"xml\" is invalid: expected \"json\" or \"text\""),
            ("[access_log]\npath = \"\"", "x.toml: access_log.path = \"\" is invalid: expected a file to append to (leave path out for standard output)"),
        ];
        for (text, want) in cases {
            let got = NodeConfig::parse(text, "x.toml").unwrap_err().to_string();
            assert_eq!(got, want, "for {text:?}");
        }
    }

    /// `[admin.tls]` naming `cert`, `key` and `ca`.
    fn tls_config(cert: &Path, key: &Path, ca: &Path) -> String {
        format!(
            "[admin.tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
            cert.display().to_string(),
            key.display().to_string(),
            ca.display().to_string()
        )
    }

    #[test]
    fn tls_files_are_checked_at_load() {
        use sluice_testkit::MemberCa;
        let dir = tempfile::tempdir().unwrap();
        let ca = MemberCa::new(dir.path(), "members").unwrap();
        let one = ca.issue("node1", &["127.0.0.1", "localhost"]).unwrap();
        let two = ca.issue("node2", &["127.0.0.1"]).unwrap();
        let stranger = MemberCa::new(dir.path(), "other")
            .unwrap()
            .issue("node4", &["127.0.0.1"])
            .unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let missing = dir.path().join("missing.pem");

        let c = NodeConfig::parse(&tls_config(&one.cert, &one.key, &one.ca), "x.toml").unwrap();
        assert_eq!(
            c.advertise, "https://127.0.0.1:7070",
            "TLS advertises https"
        );
        assert_eq!(
            c.admin_tls,
            Some(MemberTlsFiles {
                cert: one.cert.clone(),
                key: one.key.clone(),
                ca: one.ca.clone()
            })
        );
        let with_advertise = |advertise: &str| {
            format!(
                "{}[cluster]\nadvertise = {advertise:?}\n",
                tls_config(&one.cert, &one.key, &one.ca)
            )
        };
        let c = NodeConfig::parse(&with_advertise("https://node1:7070/"), "x.toml").unwrap();
        assert_eq!(c.advertise, "https://node1:7070");
        assert_eq!(
            NodeConfig::parse(&with_advertise("http://node1:7070"), "x.toml")
                .unwrap_err()
                .to_string(),
            "x.toml: cluster.advertise = \"http://node1:7070\" is invalid: expected the admin URL other nodes reach this one at, https://host:port ([admin.tls] is set)"
        );

        let shown = |p: &Path| format!("{:?}", p.display().to_string());
        let cases = [
            (
                tls_config(&missing, &one.key, &one.ca),
                format!(
                    "x.toml: admin.tls.cert = {} is invalid: cannot read it: No such file or directory (os error 2)",
                    shown(&missing)
                ),
            ),
            (
                tls_config(&one.cert, &two.key, &one.ca),
                format!(
                    "x.toml: admin.tls.key = {} is invalid: this key does not match the certificate in {}",
                    shown(&two.key),
                    one.cert.display()
                ),
            ),
            (
                tls_config(&garbage, &one.key, &one.ca),
                format!(
                    "x.toml: admin.tls.cert = {} is invalid: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    shown(&garbage)
                ),
            ),
            (
                tls_config(&one.cert, &garbage, &one.ca),
                format!(
                    "x.toml: admin.tls.key = {} is invalid: holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
                    shown(&garbage)
                ),
            ),
            (
                tls_config(&one.cert, &one.key, &garbage),
                format!(
                    "x.toml: admin.tls.ca = {} is invalid: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    shown(&garbage)
                ),
            ),
            (
                tls_config(&one.cert, &one.key, &missing),
                format!(
                    "x.toml: admin.tls.ca = {} is invalid: cannot read it: No such file or directory (os error 2)",
                    shown(&missing)
                ),
            ),
        ];
        for (text, want) in cases {
            let got = NodeConfig::parse(&text, "x.toml").unwrap_err().to_string();
            assert_eq!(got, want, "for {text:?}");
        }
        // A certificate the members' CA did not sign.
        let got = NodeConfig::parse(
            &tls_config(&stranger.cert, &stranger.key, &one.ca),
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            got.starts_with(&format!(
                "x.toml: admin.tls.cert = {} is invalid: the CA in {} does not accept this certificate: ",
                shown(&stranger.cert),
                one.ca.display()
            )),
            "{got}"
        );
    }

    #[test]
    fn the_log_format_env_var_overrides_the_file() {
        let mut c = NodeConfig::parse("[log]\nformat = \"text\"", "x.toml").unwrap();
        c.override_log_format(None).unwrap();
        assert_eq!(c.log_format, LogFormat::Text);
        c.override_log_format(Some("json")).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(
            c.override_log_format(Some("xml")).unwrap_err().to_string(),
            "SLUICE_LOG_FORMAT = \"xml\" is invalid: expected \"text\" or \"json\""
        );
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_fields_and_syntax_errors_name_the_file() {
        let e = NodeConfig::parse("[proxy]\nheader_timeout = \"1s\"", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml: ") && e.contains("header_timeout"),
            "{e}"
        );
        let e = NodeConfig::parse("[node", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml: "), "{e}");
    }
}
