//! `GET /v1/overview`, the cluster at a glance for the dashboard, and `GET
//! /v1/local`, the one node's part of it that members read from each
//! other.
//!
//! Why: "drain applied everywhere" is a fact about every member at once:
//! the answering node alone knows the replicated state but not what the
//! others hold. How: the answering node asks every other member for its
//! [`LocalView`] over the member transport (TLS or not), all in parallel,
//! each within [`ASK_WITHIN`]; a member that does not answer in time is
//! shown unreachable rather than delaying or failing the answer. Groups,
//! backends and drains come from the answering node's replicated state,
//! the per-node figures from each member's own view.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxState;
use axum::routing::get;
use axum::{Json, Router};
use sluice_clock::now_ms;
use sluice_model::{NodeDrainReason, NodeId, State, UnixMillis};

use crate::api::{
    DrainKind, LocalBackendView, LocalView, Overview, OverviewBackend, OverviewBackendOnNode,
    OverviewDrain, OverviewDrainOnNode, OverviewGroup, OverviewMember,
};
use crate::context::{AdminContext, Ctx};
use crate::local_view::{local_view, routing_state};

/// Path of a member's own view.
pub(crate) const LOCAL_PATH: &str = "/v1/local";

/// How long the overview waits for each member's view.
pub(crate) const ASK_WITHIN: Duration = Duration::from_millis(500);

/// Routes of the overview and of the local view.
pub(crate) fn routes() -> Router<Arc<AdminContext>> {
    Router::new()
        .route(LOCAL_PATH, get(local))
        .route("/v1/overview", get(overview))
}

async fn local(AxState(ctx): Ctx) -> Json<LocalView> {
    Json(local_view(&ctx, now_ms()))
}

/// A member's view as it answered, with the answering node's clock half
/// way through the request (to estimate the member's clock skew).
struct Answer {
    view: LocalView,
    midpoint_ms: UnixMillis,
}

impl Answer {
    fn skew_ms(&self) -> i64 {
        i64::try_from(self.view.now_ms).unwrap_or(i64::MAX)
            - i64::try_from(self.midpoint_ms).unwrap_or(i64::MAX)
    }

    fn backend(&self, group: &str, addr: &str) -> Option<&LocalBackendView> {
        self.view
            .backends
            .iter()
            .find(|b| b.group == group && b.addr == addr)
    }
}

/// Member `addr`'s view, or `None` when it does not answer in time.
async fn ask(ctx: &AdminContext, addr: &str) -> Option<Answer> {
    let sent = now_ms();
    let call = ctx.store.node().get_json::<LocalView>(addr, LOCAL_PATH);
    let view = tokio::time::timeout(ASK_WITHIN, call).await.ok()?.ok()?;
    let midpoint_ms = sent + now_ms().saturating_sub(sent) / 2;
    Some(Answer { view, midpoint_ms })
}

async fn overview(AxState(ctx): Ctx) -> Json<Overview> {
    let status = ctx.store.node().status();
    let me = ctx.node_id;
    let asks = status.members.iter().map(|m| {
        let ctx = &ctx;
        async move {
            let answer = if m.node == me {
                let now = now_ms();
                Some(Answer {
                    view: local_view(ctx, now),
                    midpoint_ms: now,
                })
            } else {
                ask(ctx, &m.addr).await
            };
            (m.node, answer)
        }
    });
    let answers: BTreeMap<NodeId, Option<Answer>> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .collect();
    let answers: BTreeMap<NodeId, Answer> = answers
        .into_iter()
        .filter_map(|(n, a)| a.map(|a| (n, a)))
        .collect();

    let state = ctx.store.current();
    let now = now_ms();
    let mut members: Vec<OverviewMember> = status
        .members
        .into_iter()
        .map(|m| {
            let a = answers.get(&m.node);
            OverviewMember {
                node: m.node,
                reachable: a.is_some(),
                applied: a.map(|a| a.view.applied),
                clock_skew_ms: a.map(Answer::skew_ms),
                holds: a.map(|a| a.view.holds),
                drain: state.node_drains.get(&m.node).map(|d| d.drain),
                role: m.role,
                addr: m.addr,
            }
        })
        .collect();
    members.sort_by_key(|m| m.node);
    let ids: Vec<NodeId> = members.iter().map(|m| m.node).collect();
    Json(Overview {
        node: me,
        now_ms: now,
        leader: status.leader,
        term: status.term,
        revision: state.revision,
        groups: groups(&state, &ids, &answers, now),
        drains: drains(&state, &answers, now),
        members,
    })
}

fn groups(
    state: &State,
    ids: &[NodeId],
    answers: &BTreeMap<NodeId, Answer>,
    now: UnixMillis,
) -> Vec<OverviewGroup> {
    let mut listeners: HashMap<&str, Vec<u16>> = HashMap::new();
    for l in state.listeners.values() {
        listeners.entry(l.group.as_str()).or_default().push(l.port);
    }
    state
        .groups
        .values()
        .map(|g| OverviewGroup {
            name: g.name.clone(),
            drain_enabled: g.drain.enabled,
            drain_timeout_ms: g.drain.timeout_ms,
            health_checks: g.health.enabled,
            listeners: listeners.remove(g.name.as_str()).unwrap_or_default(),
            backends: g
                .backends
                .values()
                .map(|b| OverviewBackend {
                    addr: b.addr.clone(),
                    weight: b.weight,
                    state: routing_state(g, b, now),
                    drain: match b.status {
                        sluice_model::BackendStatus::Draining { drain } => Some(drain),
                        sluice_model::BackendStatus::Active => None,
                    },
                    nodes: ids
                        .iter()
                        .map(|&node| {
                            let answer = answers.get(&node);
                            let on = answer.and_then(|a| a.backend(&g.name, &b.addr));
                            OverviewBackendOnNode {
                                node,
                                reachable: answer.is_some(),
                                state: on.map(|o| o.state),
                                in_flight: on.map(|o| o.in_flight),
                                tunnels: on.map(|o| o.tunnels),
                                probe: on.and_then(|o| o.probe.clone()),
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn drains(
    state: &State,
    answers: &BTreeMap<NodeId, Answer>,
    now: UnixMillis,
) -> Vec<OverviewDrain> {
    let mut drains: Vec<OverviewDrain> = Vec::new();
    for d in state.drains.values() {
        drains.push(OverviewDrain {
            id: d.id,
            kind: DrainKind::Backend,
            subject: format!("{} {}", d.group, d.backend),
            cause: crate::views::drain_cause_name(d.cause).into(),
            started_at_ms: d.started_at,
            deadline_ms: d.deadline,
            remaining_ms: d.deadline.saturating_sub(now),
            nodes: state
                .nodes
                .iter()
                .map(|&node| {
                    let answer = answers.get(&node);
                    let on = answer.and_then(|a| a.backend(&d.group, &d.backend));
                    OverviewDrainOnNode {
                        node,
                        reachable: answer.is_some(),
                        finished: d.finished.contains(&node),
                        requests: on.map(|o| o.in_flight),
                        tunnels: on.map(|o| o.tunnels),
                        connections: None,
                    }
                })
                .collect(),
        });
    }
    for d in state.listener_drains.values() {
        drains.push(OverviewDrain {
            id: d.id,
            kind: DrainKind::Listener,
            subject: format!("listener :{} ({})", d.port, d.group),
            cause: "removed".into(),
            started_at_ms: d.started_at,
            deadline_ms: d.deadline,
            remaining_ms: d.deadline.saturating_sub(now),
            nodes: Vec::new(),
        });
    }
    for (&node, d) in &state.node_drains {
        let holds = answers.get(&node).map(|a| a.view.holds);
        drains.push(OverviewDrain {
            id: d.drain,
            kind: DrainKind::Node,
            subject: format!("node {node}"),
            cause: match d.reason {
                NodeDrainReason::Operator => "operator".into(),
                NodeDrainReason::Stopping => "stopping".into(),
            },
            started_at_ms: d.started,
            deadline_ms: d.deadline,
            remaining_ms: d.deadline.saturating_sub(now),
            nodes: vec![OverviewDrainOnNode {
                node,
                reachable: holds.is_some(),
                finished: d.finished,
                requests: holds.map(|h| h.requests),
                tunnels: holds.map(|h| h.tunnels),
                connections: holds.map(|h| h.connections),
            }],
        });
    }
    drains.sort_by_key(|d| d.id);
    drains
}
