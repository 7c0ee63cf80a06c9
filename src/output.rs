//! Printing answers: aligned tables for people, the API's JSON with
//! `--output json`.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use sluice_admin::api::{
    BackendView, CertView, DeletedGroup, DrainView, GroupView, HealthView, ListenerView, NodeView,
    OwnDrainView,
};
use sluice_raft::MemberHolds;

use crate::cli::Output;

/// Prints rows under headers, columns aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let widths = widen(headers.iter().map(|h| h.len()).collect(), rows);
    line(headers, &widths);
    for row in rows {
        line(row, &widths);
    }
}

/// `widths` grown to fit every cell of `rows`.
fn widen(mut widths: Vec<usize>, rows: &[Vec<String>]) -> Vec<usize> {
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

/// One table line: every cell but the last padded to its column's width.
fn line<S: AsRef<str>>(cells: &[S], widths: &[usize]) {
    let mut out = String::new();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        let cell = cell.as_ref();
        if i + 1 == cells.len() {
            out.push_str(cell);
        } else {
            out.push_str(&format!("{cell:<w$}  "));
        }
    }
    println!("{}", out.trim_end());
}

/// `12:31:05.123` (UTC) from Unix milliseconds.
pub fn clock(unix_ms: u64) -> String {
    let s = unix_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        unix_ms % 1000
    )
}

/// `15s`, `2.5s`, `300ms`.
pub fn span(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

fn drain_policy(enabled: bool, timeout_ms: u64) -> String {
    if enabled {
        format!("on, timeout {}", span(timeout_ms))
    } else {
        "off".to_string()
    }
}

/// `d1 until 12:31:05.123 UTC (12.4s left), nodes finished 0/1, then remove`.
pub fn drain_summary(d: &DrainView) -> String {
    let finished = d.nodes.iter().filter(|n| n.finished).count();
    format!(
        "{} until {} UTC ({} left), nodes finished {}/{}, then {}",
        d.id,
        clock(d.deadline_ms),
        span(d.remaining_ms),
        finished,
        d.nodes.len(),
        d.then
    )
}

pub fn groups(groups: &[GroupView]) {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                drain_policy(g.drain_enabled, g.drain_timeout_ms),
                g.backends.len().to_string(),
            ]
        })
        .collect();
    table(&["NAME", "DRAIN", "BACKENDS"], &rows);
}

pub fn group(g: &GroupView) {
    println!("group {}", g.name);
    println!(
        "drain: {}",
        drain_policy(g.drain_enabled, g.drain_timeout_ms)
    );
    println!("health check: {}", health_check(g));
    println!(
        "slow start: {}",
        g.slow_start_ms.map(span).unwrap_or_else(|| "off".into())
    );
    println!();
    backends(&g.backends);
}

const BACKEND_HEADERS: [&str; 8] = [
    "ADDR",
    "WEIGHT",
    "STATE",
    "IN-FLIGHT",
    "TUNNELS",
    "HEALTH (PER NODE)",
    "LAST PROBE HERE",
    "DRAIN",
];

pub fn backends(backends: &[BackendView]) {
    table(&BACKEND_HEADERS, &backend_rows(backends));
}

fn backend_rows(backends: &[BackendView]) -> Vec<Vec<String>> {
    backends
        .iter()
        .map(|b| {
            vec![
                b.addr.clone(),
                b.weight.to_string(),
                state(b),
                b.in_flight.to_string(),
                b.tunnels.to_string(),
                health_summary(&b.health),
                last_probe(&b.health),
                b.drain
                    .as_ref()
                    .map(drain_summary)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

/// Prints `backend list` page by page as the pages come. A list of one
/// page prints as [`backends`] (or the JSON array) would; a longer one as
/// one table whose columns are as wide as the first page needs (a wider
/// cell later widens its column from there on), or as one JSON array.
pub struct BackendsPrinter {
    output: Output,
    /// Backends printed so far.
    printed: usize,
    widths: Vec<usize>,
}

impl BackendsPrinter {
    pub fn new(output: Output) -> BackendsPrinter {
        BackendsPrinter {
            output,
            printed: 0,
            widths: BACKEND_HEADERS.iter().map(|h| h.len()).collect(),
        }
    }

    /// Prints the next page; `last` closes the list.
    pub fn page(&mut self, page: &[BackendView], last: bool) {
        let only = self.printed == 0 && last;
        match self.output {
            Output::Json if only => println!("{}", pretty(&page)),
            Output::Json => {
                for b in page {
                    let open = if self.printed == 0 { "[" } else { "," };
                    println!("{open}");
                    let text = pretty(b);
                    let lines: Vec<String> = text.lines().map(|l| format!("  {l}")).collect();
                    print!("{}", lines.join("\n"));
                    self.printed += 1;
                }
                if last {
                    println!("{}", if self.printed == 0 { "[]" } else { "\n]" });
                }
            }
            Output::Table => {
                let rows = backend_rows(page);
                self.widths = widen(std::mem::take(&mut self.widths), &rows);
                if self.printed == 0 {
                    line(&BACKEND_HEADERS, &self.widths);
                }
                for row in &rows {
                    line(row, &self.widths);
                }
                self.printed += rows.len();
            }
        }
        let _ = std::io::stdout().flush();
    }
}

/// `value` as pretty JSON, as `--output json` prints answers.
fn pretty<T: serde::Serialize>(value: &T) -> String {
    #[allow(clippy::expect_used)] // plain data with string keys always serializes
    serde_json::to_string_pretty(value).expect("serializes")
}

/// `active`, `draining`, `maintenance`, or `ramping 40% (18s left)` during
/// slow start.
pub fn state(b: &BackendView) -> String {
    match &b.ramp {
        Some(r) => format!("ramping {}% ({} left)", r.percent, span(r.remaining_ms)),
        None => format!("{:?}", b.state).to_lowercase(),
    }
}

/// `GET /health every 2s, timeout 5s, 2xx/3xx, healthy 3, unhealthy 3 (rev 1)`.
pub fn health_check(g: &GroupView) -> String {
    let h = &g.health;
    if !h.enabled {
        return format!("off (rev {})", g.health_revision);
    }
    let classes: Vec<String> = h.status_classes.iter().map(|c| format!("{c}xx")).collect();
    let mut out = format!(
        "{:?} {} every {}, timeout {}, {}, healthy {}, unhealthy {}",
        h.method,
        h.path,
        span(h.interval_ms),
        span(h.timeout_ms),
        classes.join("/"),
        h.healthy_threshold,
        h.unhealthy_threshold
    )
    .replace("Get ", "GET ")
    .replace("Head ", "HEAD ");
    if let Some(p) = h.port {
        out.push_str(&format!(", port {p}"));
    }
    if let Some(host) = &h.host {
        out.push_str(&format!(", Host {host}"));
    }
    out.push_str(&format!(" (rev {})", g.health_revision));
    out
}

/// `unhealthy (1:ok 2:503 3:-)`: the agreed health and each node's view.
pub fn health_summary(h: &HealthView) -> String {
    let nodes: Vec<String> = h
        .nodes
        .iter()
        .map(|n| match n.healthy {
            Some(true) => format!("{}:ok", n.node),
            Some(false) => format!("{}:{}", n.node, n.detail),
            None => format!("{}:-", n.node),
        })
        .collect();
    if nodes.is_empty() {
        h.status.clone()
    } else {
        format!("{} ({})", h.status, nodes.join(" "))
    }
}

/// `pass 200` / `fail connect: refused`, or `-` when this node does not probe.
pub fn last_probe(h: &HealthView) -> String {
    match &h.local {
        Some(l) if l.passed => format!("pass {}", l.detail),
        Some(l) => format!("fail {}", l.detail),
        None => "-".into(),
    }
}

/// `active`, or `draining until 12:31:05.123 UTC` once removed.
pub fn listener_state(l: &ListenerView) -> String {
    match l.drain_deadline_ms {
        Some(deadline) => format!("draining until {} UTC", clock(deadline)),
        None => l.state.clone(),
    }
}

/// Each member's bind: `1 listening, 2 failed (Address in use), 3 unknown`;
/// `-` when no member reported (a draining listener).
pub fn node_binds(l: &ListenerView) -> String {
    if l.nodes.is_empty() {
        return "-".into();
    }
    let nodes: Vec<String> = l
        .nodes
        .iter()
        .map(|n| {
            if n.detail.is_empty() {
                format!("{} {}", n.node, n.status)
            } else {
                format!("{} {} ({})", n.node, n.status, n.detail)
            }
        })
        .collect();
    nodes.join(", ")
}

pub fn listeners(listeners: &[ListenerView]) {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let rows: Vec<Vec<String>> = listeners
        .iter()
        .map(|l| {
            vec![
                l.port.to_string(),
                l.group.clone(),
                span(l.request_timeout_ms),
                listener_state(l),
                dash(&l.bind),
                dash(&l.status),
                tls(l),
                node_binds(l),
            ]
        })
        .collect();
    table(
        &[
            "PORT",
            "GROUP",
            "REQUEST-TIMEOUT",
            "STATE",
            "BIND",
            "STATUS",
            "TLS",
            "NODES",
        ],
        &rows,
    );
}

/// A listener's certificates, `-` for plain TCP.
fn tls(l: &ListenerView) -> String {
    if l.tls.is_empty() {
        "-".into()
    } else {
        l.tls.join(",")
    }
}

/// The answer of `listener add`: this node's bind, then every member's.
pub fn listener_written(l: &ListenerView) {
    let here = match l.status.as_str() {
        "listening" | "pending" => format!("{} on {}", l.status, l.bind),
        why => format!("not listening here: {why}"),
    };
    let tls = if l.tls.is_empty() {
        String::new()
    } else {
        format!(" TLS {}", l.tls.join(","))
    };
    println!(
        "listener :{} -> group {} (request timeout {}){tls} {here}",
        l.port,
        l.group,
        span(l.request_timeout_ms),
    );
    println!("nodes: {}", node_binds(l));
}

/// The answer of `group delete`: gone, or going once what it had drains.
pub fn group_deleted(d: &DeletedGroup) {
    if d.state == "deleted" {
        println!("deleted group {}", d.name);
    } else {
        println!(
            "deleting group {}: it goes when its backends have drained",
            d.name
        );
    }
    for l in &d.listeners {
        println!("listener :{} {}", l.port, listener_state(l));
    }
    for b in &d.backends {
        match &b.drain {
            Some(dr) => println!("backend {} draining: {}", b.addr, drain_summary(dr)),
            None => println!("backend {} {}", b.addr, state(b)),
        }
    }
}

pub fn group_written(verb: &str, g: &GroupView) {
    let slow_start = g
        .slow_start_ms
        .map(|ms| format!(", slow start {}", span(ms)))
        .unwrap_or_default();
    println!(
        "{verb} group {} (drain {}{slow_start})",
        g.name,
        drain_policy(g.drain_enabled, g.drain_timeout_ms)
    );
}

/// `3 connections, 1 request, 2 tunnels`.
pub fn holds(h: &MemberHolds) -> String {
    let n = |count: u64, one: &str, many: &str| {
        format!("{count} {}", if count == 1 { one } else { many })
    };
    format!(
        "{}, {}, {}",
        n(h.connections, "connection", "connections"),
        n(h.requests, "request", "requests"),
        n(h.tunnels, "tunnel", "tunnels")
    )
}

/// `d7 (operator) until 12:31:05.123 UTC (12.4s left)`, `… drained`.
pub fn own_drain(d: &OwnDrainView) -> String {
    let reason = serde_json::to_value(d.reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let state = if d.finished {
        "drained".to_string()
    } else {
        format!("{} left", span(d.remaining_ms))
    };
    format!(
        "{} ({reason}) until {} UTC, {state}",
        d.drain,
        clock(d.deadline_ms)
    )
}

/// A node's drain and holds, one line.
pub fn node_state(n: &NodeView) -> String {
    let drain = n
        .drain
        .as_ref()
        .map_or("takes clients".to_string(), own_drain);
    match &n.holds {
        Some(h) => format!("{drain}; holds {}", holds(h)),
        None => format!("{drain}; unreachable"),
    }
}

/// `node list`.
pub fn nodes(nodes: &[NodeView]) {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.node.to_string(),
                n.addr.clone(),
                n.drain.as_ref().map_or("-".to_string(), own_drain),
                n.holds.as_ref().map_or("unreachable".to_string(), holds),
            ]
        })
        .collect();
    table(&["NODE", "ADDR", "DRAIN", "HOLDS"], &rows);
}

pub fn cluster_status(st: &serde_json::Value) {
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    println!(
        "node {} sees leader {} in term {}",
        show(&st["node"]),
        show(&st["leader"]),
        show(&st["term"])
    );
    if let Some(why) = st["stopped"].as_str() {
        println!("its Raft core stopped: {why}");
    }
    println!();
    let rows: Vec<Vec<String>> = st["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    vec![
                        show(&m["node"]),
                        m["addr"].as_str().unwrap_or("").to_string(),
                        m["role"].as_str().unwrap_or("").to_string(),
                        show(&m["last_applied"]),
                        show(&m["lag"]),
                        if m["reachable"].as_bool().unwrap_or(false) {
                            "yes"
                        } else {
                            "no"
                        }
                        .to_string(),
                        member_drain(m),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "NODE",
            "ADDR",
            "ROLE",
            "APPLIED",
            "LAG",
            "REACHABLE",
            "DRAIN",
        ],
        &rows,
    );
}

/// A member's own drain in `cluster status`: `stopping until 12:31:05.123
/// UTC, holds 2 connections, …`, or `-`.
fn member_drain(m: &serde_json::Value) -> String {
    let Ok(d) = serde_json::from_value::<sluice_model::NodeDrain>(m["drain"].clone()) else {
        return "-".to_string();
    };
    let reason = if d.reason == sluice_model::NodeDrainReason::Stopping {
        "stopping"
    } else {
        "draining"
    };
    let state = if d.finished {
        "drained".to_string()
    } else {
        match serde_json::from_value::<MemberHolds>(m["holds"].clone()) {
            Ok(h) => format!("holds {}", holds(&h)),
            Err(_) => "holds ?".to_string(),
        }
    };
    format!(
        "{reason} ({}) until {} UTC, {state}",
        d.drain,
        clock(d.deadline)
    )
}

// === certificates ===

/// `2026-03-01` (UTC) from Unix milliseconds.
pub fn date(unix_ms: u64) -> String {
    let stamp = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(unix_ms));
    stamp.to_string().chars().take(10).collect()
}

/// `2026-03-01 (in 89 days)`, `2026-03-01 (expired 2 days ago)`.
pub fn not_after(not_after_ms: u64, now_ms: u64) -> String {
    const DAY: u64 = 86_400_000;
    let when = if not_after_ms > now_ms {
        match (not_after_ms - now_ms) / DAY {
            0 => "today".to_string(),
            1 => "in 1 day".to_string(),
            n => format!("in {n} days"),
        }
    } else {
        match (now_ms - not_after_ms) / DAY {
            0 => "expired today".to_string(),
            1 => "expired 1 day ago".to_string(),
            n => format!("expired {n} days ago"),
        }
    };
    format!("{} ({when})", date(not_after_ms))
}

fn ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "-".into();
    }
    let ports: Vec<String> = ports.iter().map(|p| format!(":{p}")).collect();
    ports.join(",")
}

/// `cert list`.
pub fn certs(certs: &[CertView], now_ms: u64) {
    let rows: Vec<Vec<String>> = certs
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                format!("{} ({})", c.subject, c.sans.join(", ")),
                c.issuer.clone(),
                not_after(c.not_after_ms, now_ms),
                ports(&c.listeners),
            ]
        })
        .collect();
    table(
        &["NAME", "SUBJECT/SANS", "ISSUER", "NOT AFTER", "LISTENERS"],
        &rows,
    );
}

/// `cert show`: one field a line.
pub fn cert(c: &CertView, now_ms: u64) {
    println!("name:        {}", c.name);
    println!("subject:     {}", c.subject);
    println!("sans:        {}", c.sans.join(", "));
    println!("issuer:      {}", c.issuer);
    println!("not before:  {}", date(c.not_before_ms));
    println!("not after:   {}", not_after(c.not_after_ms, now_ms));
    println!("sha-256:     {}", c.fingerprint_sha256);
    println!("chain:       {} certificate(s)", c.chain_len);
    println!("version:     {}", c.version);
    println!("listeners:   {}", ports(&c.listeners));
}

/// The answer of `cert add` / `cert update`.
pub fn cert_written(verb: &str, c: &CertView) {
    println!(
        "{verb} certificate {} (version {}): {} [{}], not after {}, sha-256 {}",
        c.name,
        c.version,
        c.subject,
        c.sans.join(", "),
        date(c.not_after_ms),
        c.fingerprint_sha256
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(clock(1_795_467_686_220), "21:01:26.220");
        assert_eq!(span(15_000), "15s");
        assert_eq!(span(2_450), "2.5s");
        assert_eq!(span(250), "250ms");
    }

    #[test]
    fn expiry_dates() {
        const DAY: u64 = 86_400_000;
        // 2026-11-23T21:01:26Z
        let now = 1_795_467_686_220;
        assert_eq!(date(now), "2026-11-23");
        assert_eq!(
            not_after(now + 89 * DAY + 5, now),
            "2027-02-20 (in 89 days)"
        );
        assert_eq!(not_after(now + DAY, now), "2026-11-24 (in 1 day)");
        assert_eq!(not_after(now + 1000, now), "2026-11-23 (today)");
        assert_eq!(
            not_after(now - 3 * DAY, now),
            "2026-11-20 (expired 3 days ago)"
        );
    }
}
