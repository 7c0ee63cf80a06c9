//! The health checker: one probe task per checked backend on this node.
//!
//! Each probe is one short-lived HTTP/1.1 connection from the node's data
//! address (so each node's probes come from its own source address), with
//! `Connection: close`, judged by the group's status classes within its
//! timeout. Consecutive results go through the thresholds into the node's
//! own view of the backend. Every result goes to the `StateApplier` (which
//! stops routing to a backend this node sees failing at once, C6); the view
//! goes to the [`crate::DataPlaneEvents`] to be logged when it is first formed
//! under a revision, when it flips and when the first check passes.
//!
//! A probe this node could not make (no descriptor, memory or source port:
//! [`LocalTrouble`]) is "unknown" (N3): it moves neither threshold, never
//! flips the view and is not reported; it shows in the local view and is
//! logged, rate-limited, as this node's problem.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use ractor::ActorRef;
use sluice_model::{HealthCheck, ProbeMethod};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

use crate::events::DataPlaneEvents;
use crate::health_view::{LocalHealth, ProbeReport};
use crate::local_trouble::LocalTrouble;
use crate::log_limit::{LogLimit, LOG_EVERY};
use crate::messages::ApplierMessage;

/// What a probe task needs; a change restarts the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeSpec {
    pub group: Arc<str>,
    pub addr: Arc<str>,
    pub check: HealthCheck,
    pub revision: u64,
}

/// Runs until aborted.
pub(crate) fn spawn(
    spec: ProbeSpec,
    healthy: bool,
    source: IpAddr,
    applier: ActorRef<ApplierMessage>,
    events: Arc<dyn DataPlaneEvents>,
) -> JoinHandle<()> {
    let span = tracing::info_span!("health", group = %spec.group, backend = %spec.addr);
    tokio::spawn(run(spec, healthy, source, applier, events).instrument(span))
}

async fn run(
    spec: ProbeSpec,
    mut healthy: bool,
    source: IpAddr,
    applier: ActorRef<ApplierMessage>,
    events: Arc<dyn DataPlaneEvents>,
) {
    let c = &spec.check;
    let mut tick = tokio::time::interval(Duration::from_millis(c.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut passes, mut fails) = (0u8, 0u8);
    let mut passed = false;
    let mut reported = false;
    loop {
        tick.tick().await;
        let outcome = probe(&spec, source).await;
        let detail = outcome.to_string();
        let ok = match &outcome {
            ProbeOutcome::Status(status) => c.passes(*status),
            ProbeOutcome::Failed(_) => false,
            ProbeOutcome::Unknown { trouble, stage } => {
                // This node's problem: no threshold moves, the view stays,
                // nothing is reported; only the local view shows it.
                note_local_trouble(*trouble, stage);
                let local = LocalHealth {
                    healthy,
                    detail,
                    last_passed: false,
                    at: sluice_clock::now_ms(),
                };
                if !send_local(&applier, &spec, local) {
                    return;
                }
                continue;
            }
        };
        if ok {
            passes = passes.saturating_add(1);
            fails = 0;
        } else {
            fails = fails.saturating_add(1);
            passes = 0;
        }
        let first_pass = ok && !passed;
        passed |= ok;
        let flip = (healthy && fails >= c.unhealthy_threshold)
            || (!healthy && passes >= c.healthy_threshold);
        if flip {
            healthy = !healthy;
            info!(healthy, %detail, "this node's view of the backend flipped");
        } else {
            debug!(ok, %detail, "probe");
        }
        let local = LocalHealth {
            healthy,
            detail: detail.clone(),
            last_passed: ok,
            at: sluice_clock::now_ms(),
        };
        if !send_local(&applier, &spec, local) {
            return;
        }
        if !reported || flip || first_pass {
            reported = true;
            events.health_view(ProbeReport {
                group: spec.group.to_string(),
                backend: spec.addr.to_string(),
                revision: spec.revision,
                healthy,
                passed,
                detail,
            });
        }
    }
}

/// Hands a probe's result to the `StateApplier`; `false` once it is gone.
fn send_local(applier: &ActorRef<ApplierMessage>, spec: &ProbeSpec, local: LocalHealth) -> bool {
    applier
        .cast(ApplierMessage::Probed {
            group: spec.group.clone(),
            addr: spec.addr.clone(),
            revision: spec.revision,
            local,
        })
        .is_ok()
}

/// Logs a probe this node could not make, at most once per [`LOG_EVERY`]
/// for all backends together (they run out of the same descriptors).
fn note_local_trouble(trouble: LocalTrouble, stage: &str) {
    static LIMIT: LogLimit = LogLimit::new(LOG_EVERY);
    if let Some(left_out) = LIMIT.admit() {
        warn!(
            %trouble,
            stage,
            left_out,
            "health probe not made: this node is out of resources; the backend's health is unknown, not failed"
        );
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeOutcome {
    /// The backend answered with this status (judged by the group's
    /// status classes).
    Status(u16),
    /// The backend did not answer properly: refused, reset, timed out, or
    /// not HTTP. Counts toward the unhealthy threshold.
    Failed(String),
    /// This node could not make the probe (no descriptor, memory or port):
    /// nothing is known about the backend.
    Unknown {
        trouble: LocalTrouble,
        stage: &'static str,
    },
}

impl std::fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeOutcome::Status(status) => write!(f, "{status}"),
            ProbeOutcome::Failed(why) => f.write_str(why),
            ProbeOutcome::Unknown { trouble, .. } => write!(f, "unknown: {trouble} (this node)"),
        }
    }
}

/// Sorts a failed step's error: this node's trouble, or the backend's
/// failure.
fn judge(stage: &'static str, err: &(dyn std::error::Error + 'static)) -> ProbeOutcome {
    match LocalTrouble::in_chain(err) {
        Some(trouble) => ProbeOutcome::Unknown { trouble, stage },
        None => ProbeOutcome::Failed(format!("{stage}: {err}")),
    }
}

/// One probe: the answer's status, why there is none, or why this node
/// could not ask.
async fn probe(spec: &ProbeSpec, source: IpAddr) -> ProbeOutcome {
    let c = &spec.check;
    let timeout = Duration::from_millis(c.timeout_ms);
    match tokio::time::timeout(timeout, exchange(spec, source)).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::Failed(format!("timeout after {}", humanize(timeout))),
    }
}

async fn exchange(spec: &ProbeSpec, source: IpAddr) -> ProbeOutcome {
    let c = &spec.check;
    let Some((host, port)) = spec.addr.rsplit_once(':') else {
        return ProbeOutcome::Failed("bad address".into());
    };
    let port: u16 = match c.port.map_or_else(|| port.parse().ok(), Some) {
        Some(p) => p,
        None => return ProbeOutcome::Failed("bad port".into()),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let target = match host.parse::<IpAddr>() {
        // An address needs no resolver (which may itself need descriptors).
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => a,
                None => return ProbeOutcome::Failed("resolve: no address".into()),
            },
            Err(e) => return judge("resolve", &e),
        },
    };
    let socket = match match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    } {
        Ok(s) => s,
        Err(e) => return judge("socket", &e),
    };
    // Probe from this node's own address when the families match.
    if source.is_ipv4() == target.is_ipv4() && !source.is_unspecified() {
        if let Err(e) = socket.bind(SocketAddr::new(source, 0)) {
            return match LocalTrouble::of(&e) {
                Some(trouble) => ProbeOutcome::Unknown {
                    trouble,
                    stage: "bind",
                },
                // Binding the node's own address is never the backend's
                // fault; say what failed all the same.
                None => ProbeOutcome::Failed(format!("bind {source}: {e}")),
            };
        }
    }
    let stream = match socket.connect(target).await {
        Ok(s) => s,
        Err(e) => return judge("connect", &e),
    };
    let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => return judge("handshake", &e),
    };
    let conn = tokio::spawn(conn);
    let host_header = c.host.clone().unwrap_or_else(|| spec.addr.to_string());
    let method = match c.method {
        ProbeMethod::Get => hyper::Method::GET,
        ProbeMethod::Head => hyper::Method::HEAD,
    };
    let req = match Request::builder()
        .method(method)
        .uri(c.path.as_str())
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::USER_AGENT, "sluice-health-check")
        .body(Empty::<Bytes>::new())
    {
        Ok(req) => req,
        Err(e) => return ProbeOutcome::Failed(format!("request: {e}")),
    };
    let outcome = match sender.send_request(req).await {
        Ok(r) => ProbeOutcome::Status(r.status().as_u16()),
        Err(e) => judge("http", &e),
    };
    conn.abort();
    outcome
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_the_node_could_not_make_is_unknown() {
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let outcome = judge("socket", &emfile);
        assert_eq!(
            outcome,
            ProbeOutcome::Unknown {
                trouble: LocalTrouble::ProcessDescriptors,
                stage: "socket"
            }
        );
        assert_eq!(
            outcome.to_string(),
            "unknown: too many open files (this node)"
        );
    }

    #[test]
    fn a_refused_probe_is_the_backends_failure() {
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        match judge("connect", &refused) {
            ProbeOutcome::Failed(why) => assert!(why.starts_with("connect: "), "{why}"),
            other => panic!("refused judged {other:?}"),
        }
        assert_eq!(ProbeOutcome::Status(503).to_string(), "503");
    }
}
