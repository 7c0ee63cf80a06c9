//! A backend's drain on this node: [`DrainState`], kept by the `Backend`
//! actor (backend.rs) together with its own timer for the deadline. The
//! design's "Drain" is exactly that: this state plus the Backend's timer.
//!
//! The deadline is absolute (C3: every node fires together, and one that
//! learns of the drain late fires at once); the drain is reported finished
//! on this node once, as soon as the backend has no work left (R2).

use std::time::Duration;

use sluice_model::{DrainId, UnixMillis};

/// One drain of one backend on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DrainState {
    pub id: DrainId,
    pub deadline: UnixMillis,
    /// Whether `drain_finished` was reported (it is, once).
    pub reported: bool,
}

impl DrainState {
    pub fn new(id: DrainId, deadline: UnixMillis) -> Self {
        DrainState {
            id,
            deadline,
            reported: false,
        }
    }

    /// How long until the deadline from `now` (zero once it passed).
    pub fn wait_from(&self, now: UnixMillis) -> Duration {
        Duration::from_millis(self.deadline.saturating_sub(now))
    }

    /// Marks the drain reported; true only the first time.
    pub fn report_once(&mut self) -> bool {
        !std::mem::replace(&mut self.reported, true)
    }
}
