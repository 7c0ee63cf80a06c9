//! The `Drain` actor: one per backend drain on this node. It waits for the
//! replicated deadline (C3: an absolute time, so every node fires together;
//! a deadline already past fires at once), then has the `Backend` shut what
//! is left (R3). Whenever the backend has no work left it reports the drain
//! finished on this node, once (R2).

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sluice_model::{DrainId, UnixMillis};
use tracing::info;

use crate::backend::{BackendMessage, BackendRuntime};
use crate::data_plane::DrainReporter;

pub(crate) use sluice_clock::now_ms;

pub(crate) struct Drain;

pub(crate) struct DrainArgs {
    pub drain: DrainId,
    pub deadline: UnixMillis,
    pub backend: ActorRef<BackendMessage>,
    pub runtime: Arc<BackendRuntime>,
    pub reporter: Arc<dyn DrainReporter>,
}

pub(crate) struct DrainState {
    args: DrainArgs,
    reported: bool,
}

pub(crate) enum DrainMessage {
    /// The deadline has come.
    Deadline,
    /// Work on the backend ended; report if none is left.
    CheckIdle,
}

impl Actor for Drain {
    type Msg = DrainMessage;
    type State = DrainState;
    type Arguments = DrainArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: DrainArgs,
    ) -> Result<DrainState, ActorProcessingErr> {
        let wait = args.deadline.saturating_sub(now_ms());
        info!(
            group = %args.runtime.group,
            backend = %args.runtime.addr,
            drain = %args.drain,
            deadline_in_ms = wait,
            "drain started"
        );
        if wait == 0 {
            myself.cast(DrainMessage::Deadline)?;
        } else {
            myself.send_after(Duration::from_millis(wait), || DrainMessage::Deadline);
        }
        myself.cast(DrainMessage::CheckIdle)?;
        Ok(DrainState {
            args,
            reported: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: DrainMessage,
        state: &mut DrainState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DrainMessage::Deadline => {
                state.args.backend.cast(BackendMessage::ShutdownAll {
                    drain: state.args.drain,
                })?;
            }
            DrainMessage::CheckIdle => {
                if !state.reported && state.args.runtime.is_idle() {
                    state.reported = true;
                    info!(
                        group = %state.args.runtime.group,
                        backend = %state.args.runtime.addr,
                        drain = %state.args.drain,
                        "drain finished on this node"
                    );
                    state.args.reporter.drain_finished(
                        state.args.drain,
                        &state.args.runtime.group,
                        &state.args.runtime.addr,
                    );
                }
            }
        }
        Ok(())
    }
}
