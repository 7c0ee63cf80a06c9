//! The health checker: one probe task per checked backend on this node.
//!
//! Each probe is one short-lived HTTP/1.1 connection from the node's data
//! address (so each node's probes come from its own source address), with
//! `Connection: close`, judged by the group's status classes within its
//! timeout. Consecutive results go through the thresholds into the node's
//! own view of the backend. Every result goes to the `StateApplier` (which
//! stops routing to a backend this node sees failing at once, C6); the view
//! goes to the [`crate::DrainReporter`] to be logged when it is first formed
//! under a revision, when it flips and when the first check passes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use ractor::ActorRef;
use sluice_model::{HealthCheck, ProbeMethod, UnixMillis};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use tracing::{debug, info, Instrument};

use crate::applier::ApplierMessage;
use crate::data_plane::DrainReporter;

/// A node's view of one backend, as reported to the replicated state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The group.
    pub group: String,
    /// `host:port`.
    pub backend: String,
    /// Health-check revision of the group the view was formed under.
    pub revision: u64,
    /// The view after the thresholds.
    pub healthy: bool,
    /// Whether a check passed under `revision`.
    pub passed: bool,
    /// The last probe's outcome (`200`, `timeout after 5s`, ...).
    pub detail: String,
}

/// This node's last probe of a backend (for the admin views).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHealth {
    /// The view after the thresholds.
    pub healthy: bool,
    /// The last probe's outcome.
    pub detail: String,
    /// Whether the last probe passed.
    pub last_passed: bool,
    /// When it ended.
    pub at: UnixMillis,
}

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
    node: u64,
    applier: ActorRef<ApplierMessage>,
    reporter: Arc<dyn DrainReporter>,
) -> JoinHandle<()> {
    let span = tracing::info_span!("health", node, group = %spec.group, backend = %spec.addr);
    tokio::spawn(run(spec, healthy, source, applier, reporter).instrument(span))
}

async fn run(
    spec: ProbeSpec,
    mut healthy: bool,
    source: IpAddr,
    applier: ActorRef<ApplierMessage>,
    reporter: Arc<dyn DrainReporter>,
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
        let ok = matches!(outcome, Ok(status) if c.passes(status));
        let detail = match &outcome {
            Ok(status) => status.to_string(),
            Err(e) => e.clone(),
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
            at: now_ms(),
        };
        if applier
            .cast(ApplierMessage::Probed {
                group: spec.group.clone(),
                addr: spec.addr.clone(),
                revision: spec.revision,
                local,
            })
            .is_err()
        {
            return;
        }
        if !reported || flip || first_pass {
            reported = true;
            reporter.health_view(ProbeReport {
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

/// One probe: the answer's status, or why there is none.
async fn probe(spec: &ProbeSpec, source: IpAddr) -> Result<u16, String> {
    let c = &spec.check;
    let timeout = Duration::from_millis(c.timeout_ms);
    match tokio::time::timeout(timeout, exchange(spec, source)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout after {}", humanize(timeout))),
    }
}

async fn exchange(spec: &ProbeSpec, source: IpAddr) -> Result<u16, String> {
    let c = &spec.check;
    let (host, port) = spec.addr.rsplit_once(':').ok_or("bad address")?;
    let port: u16 = match c.port {
        Some(p) => p,
        None => port.parse().map_err(|_| "bad port")?,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let target = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolve: {e}"))?
        .next()
        .ok_or("resolve: no address")?;
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    // Probe from this node's own address when the families match.
    if source.is_ipv4() == target.is_ipv4() && !source.is_unspecified() {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| format!("bind {source}: {e}"))?;
    }
    let stream = socket
        .connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let host_header = c.host.clone().unwrap_or_else(|| spec.addr.to_string());
    let method = match c.method {
        ProbeMethod::Get => hyper::Method::GET,
        ProbeMethod::Head => hyper::Method::HEAD,
    };
    let req = Request::builder()
        .method(method)
        .uri(c.path.as_str())
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::USER_AGENT, "sluice-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let result = sender
        .send_request(req)
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("http: {e}"));
    conn.abort();
    result
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub(crate) fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
