//! The data plane's supervision tree: its root, [`DataPlaneSupervisor`]
//! (one per node), which stops the node if a core actor fails, and the plain
//! [`Supervisor`] under it that keeps `Listeners` and `Backends`: a child
//! that fails there is logged, never taken as a reason to stop.

use std::sync::Arc;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, warn};

use crate::applier::{ApplierArgs, StateApplier};
use crate::events::DataPlaneEvents;
use crate::messages::{ApplierMessage, SupervisionMessage};
use crate::metrics::Metrics;
use crate::published::Published;
use crate::routing::RoutingTable;
use crate::settings::ProxySettings;

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

/// The root of the tree: the `StateApplier` and the two supervisors.
pub(crate) struct DataPlaneSupervisor;

pub(crate) struct SupervisionArgs {
    pub settings: Arc<ProxySettings>,
    pub routes: Arc<ArcSwap<RoutingTable>>,
    pub metrics: Arc<Metrics>,
    pub events: Arc<dyn DataPlaneEvents>,
    pub published: Arc<Published>,
}

pub(crate) struct SupervisionState {
    pub applier: ActorRef<ApplierMessage>,
}

impl Actor for DataPlaneSupervisor {
    type Msg = SupervisionMessage;
    type State = SupervisionState;
    type Arguments = SupervisionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisionArgs,
    ) -> Result<SupervisionState, ActorProcessingErr> {
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
                events: args.events,
                published: args.published,
                listeners_sup: listeners.get_cell(),
                backends_sup: backends.get_cell(),
            },
            cell,
        )
        .await?;
        Ok(SupervisionState { applier })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: SupervisionMessage,
        state: &mut SupervisionState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisionMessage::Applier(reply) => {
                let _ = reply.send(state.applier.clone());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut SupervisionState,
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
