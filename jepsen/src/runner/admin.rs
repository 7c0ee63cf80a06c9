//! Operator actions on the cluster through the admin API: wait for a node,
//! form the cluster, create the workloads' groups and the listener, find
//! the leader and the members, join a node.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};
use sluice_jepsen::history::NodeId;

use super::clients::{Api, Reply};
use super::NODES;

/// Group of the register workload.
pub const REGISTER_GROUP: &str = "reg";
/// Group of the set workload.
pub const SET_GROUP: &str = "set";
/// Group of the drain workload (behind the listener).
pub const DRAIN_GROUP: &str = "drain";
/// The listener's port inside the containers (compose publishes it).
pub const LISTENER_PORT: u16 = 8080;

const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until node `n` answers `/readyz` 200, at most `bound`.
pub async fn wait_ready(api: &Api, n: NodeId, bound: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        match api.get(n, "/readyz", Duration::from_secs(1)).await {
            Reply::Answer { status, .. } if status.is_success() => return Ok(()),
            _ if start.elapsed() > bound => bail!("node {n} is not ready after {bound:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// `GET /v1/cluster/status` of node `n`.
pub async fn status(api: &Api, n: NodeId) -> Option<Value> {
    match api
        .get(n, "/v1/cluster/status", Duration::from_secs(2))
        .await
    {
        Reply::Answer { status, body, .. } if status.is_success() => Some(body),
        _ => None,
    }
}

/// The leader as the first node that names one sees it.
pub async fn leader(api: &Api) -> Option<NodeId> {
    for n in NODES {
        if let Some(l) = status(api, n)
            .await
            .and_then(|s| s.get("leader").and_then(Value::as_u64))
        {
            return Some(l);
        }
    }
    None
}

/// The members (voters and learners) in the status of a node that names a
/// leader, with their roles.
pub async fn members(api: &Api) -> Option<Vec<(NodeId, String)>> {
    for n in NODES {
        let Some(s) = status(api, n).await else {
            continue;
        };
        if s.get("leader").and_then(Value::as_u64).is_none() {
            continue;
        }
        let members = s.get("members").and_then(Value::as_array)?;
        return Some(
            members
                .iter()
                .filter_map(|m| {
                    let id = m.get("node").and_then(Value::as_u64)?;
                    let role = m.get("role").and_then(Value::as_str).unwrap_or("").into();
                    Some((id, role))
                })
                .collect(),
        );
    }
    None
}

/// Adds node `n` to the cluster (`POST /v1/cluster/join`, sent to `via`).
pub async fn join(api: &Api, via: NodeId, n: NodeId) -> Result<()> {
    let body = json!({ "addr": format!("http://node{n}:7070") });
    api.must(
        via,
        Method::POST,
        "/v1/cluster/join",
        Some(&body),
        SETUP_TIMEOUT,
    )
    .await
    .map(drop)
}

/// Whether every node of `NODES` is a voter, as a leader-naming node sees it.
pub async fn all_voters(api: &Api) -> bool {
    match members(api).await {
        Some(m) => NODES.iter().all(|n| {
            m.iter()
                .any(|(id, role)| id == n && (role == "leader" || role == "follower"))
        }),
        None => false,
    }
}

/// Forms the cluster: init on node 1, join 2 and 3, then the groups and
/// the listener the workloads use.
pub async fn form(api: &Api, drain_timeout_ms: u64, register_drain_timeout_ms: u64) -> Result<()> {
    for n in NODES {
        wait_ready(api, n, Duration::from_secs(60)).await?;
    }
    api.must(1, Method::POST, "/v1/cluster/init", None, SETUP_TIMEOUT)
        .await
        .context("cluster init")?;
    for n in [2, 3] {
        join(api, 1, n)
            .await
            .with_context(|| format!("join node {n}"))?;
    }
    let start = Instant::now();
    while !all_voters(api).await {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the three nodes are not all voters after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, timeout_ms) in [
        (REGISTER_GROUP, register_drain_timeout_ms),
        (SET_GROUP, drain_timeout_ms),
        (DRAIN_GROUP, drain_timeout_ms),
    ] {
        let body = json!({ "name": name, "drain_timeout_ms": timeout_ms });
        api.must(1, Method::POST, "/v1/groups", Some(&body), SETUP_TIMEOUT)
            .await
            .with_context(|| format!("create group {name}"))?;
        let update = json!({ "health": { "enabled": false } });
        api.must(
            1,
            Method::PATCH,
            &format!("/v1/groups/{name}"),
            Some(&update),
            SETUP_TIMEOUT,
        )
        .await
        .with_context(|| format!("turn health checks off in group {name}"))?;
    }
    let listener = json!({ "port": LISTENER_PORT, "group": DRAIN_GROUP });
    api.must(
        1,
        Method::POST,
        "/v1/listeners",
        Some(&listener),
        SETUP_TIMEOUT,
    )
    .await
    .context("add the listener")?;
    Ok(())
}
