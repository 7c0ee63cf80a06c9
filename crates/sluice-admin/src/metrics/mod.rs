//! `/metrics` in the Prometheus text format: what an operator alerts on.
//!
//! Every series carries `node`. The families are built per subject — the
//! node (`node.rs`), its Raft (`raft.rs`), each backend (`backend.rs`),
//! each listener (`listener.rs`) — from this node's replicated state, its
//! data plane's counters and its Raft figures, read without waiting on any
//! of them; `exposition.rs` writes each family once with its series under
//! it. Alerting rules over them are in `docs/alerts.yml`.

mod backend;
mod exposition;
mod listener;
mod node;
mod raft;

use exposition::{Exposition, Labels};
pub(crate) use node::mark_started;

use crate::AdminContext;

/// The text of `/metrics` on the node of `ctx`, now.
pub(crate) fn render(ctx: &AdminContext) -> String {
    let state = ctx.store.current();
    let dp = ctx.store.data_plane();
    let raft = ctx.store.node();
    let labels = Labels::node(ctx.node_id);
    let view = node::NodeView {
        ready: raft.stopped().is_none() && dp.node_drain().is_none(),
    };
    let mut out = Exposition::default();
    out.push_all(node::families(&labels, &state, dp, view));
    out.push_all(raft::families(&labels, &raft.figures()));
    out.push_all(backend::families(
        &labels,
        &state,
        dp,
        sluice_clock::now_ms(),
    ));
    out.push_all(listener::families(&labels, &state, dp));
    out.finish()
}
