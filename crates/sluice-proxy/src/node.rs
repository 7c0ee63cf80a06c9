//! The `Node` actor, root of the data plane's supervision tree, and the
//! plain `Supervisor` under it that keeps `Listeners` and `Backends`: a child
//! that fails is logged, never taken as a reason to stop.

use std::sync::Arc;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, warn};

use crate::applier::{ApplierArgs, ApplierMessage, StateApplier};
use crate::data_plane::{DrainReporter, Shared};
use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use crate::ProxySettings;

/// Keeps children alive independently: one failing does not stop the rest.
pub(crate) struct Supervisor {
    pub what: &'static str,
}

impl Actor for Supervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        event: SupervisionEvent,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(who, err) = event {
            warn!(supervisor = self.what, child = %who.get_id(), error = %err, "child failed");
        }
        Ok(())
    }
}

pub(crate) struct Node;

pub(crate) struct NodeArgs {
    pub settings: Arc<ProxySettings>,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub reporter: Arc<dyn DrainReporter>,
    pub shared: Arc<Shared>,
}

pub(crate) struct NodeState {
    pub applier: ActorRef<ApplierMessage>,
}

pub(crate) enum NodeMessage {
    /// Hands out the applier (asked once, at start).
    Applier(ractor::RpcReplyPort<ActorRef<ApplierMessage>>),
}

impl Actor for Node {
    type Msg = NodeMessage;
    type State = NodeState;
    type Arguments = NodeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: NodeArgs,
    ) -> Result<NodeState, ActorProcessingErr> {
        let cell = myself.get_cell();
        let (listeners, _) =
            Actor::spawn_linked(None, Supervisor { what: "listeners" }, (), cell.clone()).await?;
        let (backends, _) =
            Actor::spawn_linked(None, Supervisor { what: "backends" }, (), cell.clone()).await?;
        let (applier, _) = Actor::spawn_linked(
            None,
            StateApplier,
            ApplierArgs {
                settings: args.settings,
                routes: args.routes,
                metrics: args.metrics,
                reporter: args.reporter,
                shared: args.shared,
                listeners_sup: listeners.get_cell(),
                backends_sup: backends.get_cell(),
            },
            cell,
        )
        .await?;
        Ok(NodeState { applier })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: NodeMessage,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NodeMessage::Applier(reply) => {
                let _ = reply.send(state.applier.clone());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        // The applier and the two supervisors hold the data plane's whole
        // picture; losing one leaves routing unknowable, so the node stops
        // (and the process exits non-zero) rather than serve from a guess.
        match event {
            SupervisionEvent::ActorFailed(who, err) => {
                error!(child = %who.get_id(), error = %err, "data-plane core actor failed; stopping node");
                myself.stop(Some(format!("{} failed: {err}", who.get_id())));
            }
            SupervisionEvent::ActorTerminated(who, _, reason) => {
                error!(child = %who.get_id(), ?reason, "data-plane core actor ended; stopping node");
                myself.stop(reason);
            }
            _ => {}
        }
        Ok(())
    }
}
