//! After the heal: wait until every node shows the same applied index and
//! the same replicated state (bounded), read each node's view of the set
//! and register groups, and keep each node's log with the lines that name
//! a panic or an unexpected error.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_jepsen::history::{LogFinding, Micros, NodeFinal, NodeId, Observed};

use super::admin::{REGISTER_GROUP, SET_GROUP};
use super::clients::{observed, Api, Reply};
use super::docker::Docker;
use super::{now, NODES};

const READ: Duration = Duration::from_secs(3);

/// One node's view at one poll.
#[derive(Debug, Clone, PartialEq)]
struct View {
    applied: u64,
    state: Value,
}

async fn view(api: &Api, n: NodeId) -> Option<View> {
    let applied = match api.get(n, "/v1/cluster/applied", READ).await {
        Reply::Answer { status, body, .. } if status.is_success() => {
            body.get("applied").and_then(Value::as_u64)?
        }
        _ => return None,
    };
    match api.get(n, "/v1/state", READ).await {
        Reply::Answer { status, body, .. } if status.is_success() => Some(View {
            applied,
            state: body,
        }),
        _ => None,
    }
}

/// Polls every node until all show the same applied index and state, at
/// most `bound`; then reads each node's final view. A node that never
/// answered has no final.
pub async fn finals(api: &Api, bound: Duration) -> Vec<NodeFinal> {
    let start = Instant::now();
    // When each node first showed each view it showed.
    let mut first_seen: HashMap<NodeId, Vec<(View, Micros)>> = HashMap::new();
    let mut last: BTreeMap<NodeId, (View, Micros)> = BTreeMap::new();
    let mut agreed: Option<View> = None;
    loop {
        for n in NODES {
            if let Some(v) = view(api, n).await {
                let at = now();
                let seen = first_seen.entry(n).or_default();
                if !seen.iter().any(|(s, _)| *s == v) {
                    seen.push((v.clone(), at));
                }
                last.insert(n, (v, at));
            }
        }
        if last.len() == NODES.len() {
            let mut views = last.values().map(|(v, _)| v);
            if let Some(first) = views.next() {
                if views.all(|v| v == first) {
                    agreed = Some(first.clone());
                    break;
                }
            }
        }
        if start.elapsed() > bound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut out = Vec::new();
    for (n, (v, at)) in last {
        let converged_at = agreed.as_ref().and_then(|a| {
            first_seen
                .get(&n)?
                .iter()
                .find(|(s, _)| s == a)
                .map(|(_, t)| *t)
        });
        let (set_members, register) = groups(api, n).await;
        out.push(NodeFinal {
            node: n,
            at,
            applied_index: v.applied,
            set_members,
            register,
            state: v.state.to_string(),
            converged_at,
        });
    }
    out
}

/// Node `n`'s own view of the set group's members and the register group.
async fn groups(api: &Api, n: NodeId) -> (Vec<String>, BTreeMap<String, Observed>) {
    let list = |group: &str| {
        let path = format!("/v1/groups/{group}/backends");
        async move {
            match api.get(n, &path, READ).await {
                Reply::Answer { status, body, .. } if status.is_success() => {
                    body.as_array().cloned().unwrap_or_default()
                }
                _ => Vec::new(),
            }
        }
    };
    let addr = |b: &Value| b.get("addr").and_then(Value::as_str).map(String::from);
    let mut set: Vec<String> = list(SET_GROUP).await.iter().filter_map(addr).collect();
    set.sort();
    let register = list(REGISTER_GROUP)
        .await
        .iter()
        .filter_map(|b| Some((addr(b)?, observed(b).ok()?)))
        .collect();
    (set, register)
}

/// Saves each node's log to `dir/nodeN.log` (after what a removed
/// container left there) and answers the lines naming a panic or an
/// unexpected error.
pub async fn logs(docker: &Docker, dir: &Path) -> (Vec<LogFinding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut errors = Vec::new();
    for n in NODES {
        let path = dir.join(format!("node{n}.log"));
        match docker.container(n).await {
            Ok(Some(id)) => {
                if let Err(e) = docker.save_logs(&id, &path).await {
                    errors.push(format!("node{n}: {e:#}"));
                }
            }
            Ok(None) => errors.push(format!("node{n} has no container")),
            Err(e) => errors.push(format!("node{n}: {e:#}")),
        }
        let text = std::fs::read(&path).unwrap_or_default();
        for line in String::from_utf8_lossy(&text).lines() {
            let lower = line.to_lowercase();
            if lower.contains("panicked") || lower.contains("unexpected") {
                findings.push(LogFinding {
                    node: n,
                    line: line.to_string(),
                });
            }
        }
    }
    (findings, errors)
}
