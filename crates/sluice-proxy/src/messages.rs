//! The protocol between the data plane's actors: every message each actor
//! accepts, in one place. Bytes never go through these mailboxes; only
//! lifecycle events do.
//!
//! A backend's drain, from removal to "drain finished" (files in brackets):
//!
//! ```text
//! StateApplier ──StartDrain{drain, deadline}──▶ Backend         [applier.rs → backend.rs]
//!     sent after the new routes no longer name the backend (R1). The
//!     Backend keeps the drain's state (drain.rs), sets its timer for the
//!     absolute deadline (C3: at once if already past) and checks idle.
//! WorkGuard dropped while draining ──WorkEnded──▶ Backend        [backend.rs]
//!     no request in flight and no tunnel left: events.drain_finished,
//!     once per drain and node (R2; at once for an idle backend).
//! Backend's timer ──DrainDeadline{drain}──▶ Backend               [backend.rs]
//!     early (the wall clock, read again every ≤ 250 ms, is not there
//!     yet: wall_deadline.rs): the timer is set again; else it
//!     cancels each registered connection's token for this backend, once;
//!     the work wakes on it: a request still waiting answers 500 with
//!     Connection: close, a response already streaming is cut, a tunnel
//!     sends Close 1001 to both sides (R3) [connection.rs, forward.rs,
//!     tunnel/]. As the work ends, WorkEnded leads to drain_finished.
//! Connection ──Register{connection, token}──▶ Backend             [connection.rs]
//!     the first time a connection sends the backend work (never per
//!     request); Unregister when it ends. A token registered after the
//!     deadline is cancelled at once.
//! ```
//!
//! A removed listener drains the same way: `StateApplier ──Drain──▶
//! Listener ──ListenerDraining──▶ Connection` (keep-alive ends, idle ones
//! close), then at its deadline `Listener ──ListenerDeadline──▶ Connection`
//! (every token of the connection cancelled, as at a backend's deadline).
//! A connection is an actor while it has requests (connection.rs): a quiet
//! one hears the listener's `WindDown` instead and closes by itself.
//!
//! A node that drains itself (N1) tells every listener `NodeDrain`: the
//! listener ends keep-alive at once, keeps accepting for the node's accept
//! grace, then closes its socket and sends `ListenerDraining`; at the
//! deadline `ListenerDeadline`, as above. `NodeUndrain` undoes it.

use std::sync::Arc;

use ractor::{ActorId, ActorRef, RpcReplyPort};
use sluice_model::{DrainId, State, UnixMillis};
use tokio_util::sync::CancellationToken;

use crate::health_view::LocalHealth;

/// What the root `DataPlaneSupervisor` answers.
pub(crate) enum SupervisionMessage {
    /// Hands out the applier (asked once, at start).
    Applier(RpcReplyPort<ActorRef<ApplierMessage>>),
}

/// What the `StateApplier` handles.
pub(crate) enum ApplierMessage {
    /// Run this state; answered once its routes are in place.
    Apply(Arc<State>, RpcReplyPort<()>),
    /// A probe ended (from a probe task).
    Probed {
        group: Arc<str>,
        addr: Arc<str>,
        revision: u64,
        local: LocalHealth,
    },
    /// Time to rebuild the routes of ramping backends (R10).
    RampTick,
    /// Time to try failed binds again.
    RetryBinds,
    /// Drain this node until `deadline` whatever the replicated state says
    /// (a stop, fail-static: C4); answered once the listeners were told.
    DrainLocally {
        deadline: UnixMillis,
        reply: RpcReplyPort<()>,
    },
    /// While the node drains: time to see whether it holds nothing yet.
    NodeDrainCheck,
    /// A connection sends a backend work and the backend has no actor yet:
    /// start it, then register the connection's token with it.
    FirstWork {
        group: Arc<str>,
        addr: Arc<str>,
        /// The backend incarnation's id (`BackendRuntime::id`).
        incarnation: u64,
        connection: ActorId,
        token: CancellationToken,
    },
}

/// What a `Backend` handles.
pub(crate) enum BackendMessage {
    /// A connection sends this backend work for the first time; cancelling
    /// the token ends that work.
    Register {
        connection: ActorId,
        token: CancellationToken,
    },
    /// A connection ended.
    Unregister(ActorId),
    /// The backend starts draining (applied from the replicated state).
    StartDrain {
        drain: DrainId,
        deadline: UnixMillis,
    },
    /// The backend's own timer: the drain's deadline came.
    DrainDeadline { drain: DrainId },
    /// A request or tunnel ended while draining.
    WorkEnded,
}

/// What a `Connection` handles.
pub(crate) enum ConnectionMessage {
    /// The listener was removed and drains (its `ending` flag is set): an
    /// idle connection closes now, a busy one after its response.
    ListenerDraining { drain: Option<DrainId> },
    /// The listener's drain deadline came (or its node's: `node`): a
    /// request still waiting gets
    /// `500` with `Connection: close`, a tunnel Close 1001 on both sides, a
    /// response already streaming is cut (R3).
    ListenerDeadline { drain: Option<DrainId>, node: bool },
    /// Crash on purpose (supervision tests).
    #[cfg(any(test, feature = "test-hooks"))]
    Panic,
}

/// What a `Listener` handles.
pub(crate) enum ListenerMessage {
    /// The listener left the state: stop accepting (answered once the
    /// socket is closed), end keep-alive, and close what is left at
    /// `deadline` (at once if it passed, C3).
    Drain {
        drain: Option<DrainId>,
        deadline: UnixMillis,
        reply: RpcReplyPort<()>,
    },
    /// The drain's deadline came (or the drain left the state).
    Deadline,
    /// `STOP_AFTER` past the deadline: drop what is left.
    Stop,
    /// This node drains itself (N1): end keep-alive, accept until
    /// `accept_until`, then close the socket and the idle connections;
    /// at `deadline` end what is left. Sent again when the drain's
    /// deadline changes.
    NodeDrain {
        /// The replicated drain, once the cluster recorded it.
        drain: Option<DrainId>,
        deadline: UnixMillis,
        accept_until: UnixMillis,
    },
    /// The node drain's timer: its accept grace or its deadline may have
    /// come.
    NodeDrainTick,
    /// The node's drain ended: accept (bind again if the socket closed)
    /// and keep connections alive again.
    NodeUndrain,
    /// Try again to bind the port after a node drain ended.
    Rebind,
}
