//! [`DrainMark`]: which drain a backend or a listener is in, readable by
//! the request path with two atomic loads, so that each access-log line can
//! name the drain its request ended under (its id and deadline) without
//! asking the actor that runs the drain.
//!
//! The `Backend` actor marks its runtime as its drain starts; a `Listener`
//! marks the mark it shares with its connections when it is removed or its
//! node drains, and clears it when a node drain ends.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use sluice_model::{DrainId, UnixMillis};

use crate::error::DrainCause;

/// A drain as a request saw it when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DrainSeen {
    /// The replicated drain's id (none for a listener removed without a
    /// drain, or a node drain the cluster has not recorded).
    pub id: Option<DrainId>,
    /// When what is left is closed (Unix ms).
    pub deadline: UnixMillis,
    /// What drains: the backend, the listener or the node.
    pub cause: DrainCause,
}

/// No drain id known (`id`), or no drain at all (`deadline`).
const NONE: u64 = u64::MAX;

/// The drain a backend or listener is in, if any.
#[derive(Debug)]
pub(crate) struct DrainMark {
    id: AtomicU64,
    deadline: AtomicU64,
    cause: AtomicU8,
}

impl Default for DrainMark {
    fn default() -> Self {
        DrainMark {
            id: AtomicU64::new(NONE),
            deadline: AtomicU64::new(NONE),
            cause: AtomicU8::new(0),
        }
    }
}

impl DrainMark {
    /// The drain starts (or its deadline changed).
    pub fn set(&self, id: Option<DrainId>, deadline: UnixMillis, cause: DrainCause) {
        self.id.store(id.map_or(NONE, |d| d.0), Ordering::Relaxed);
        self.cause.store(cause_code(cause), Ordering::Relaxed);
        self.deadline.store(deadline, Ordering::Release);
    }

    /// The drain ended without closing (a node drain undone).
    pub fn clear(&self) {
        self.deadline.store(NONE, Ordering::Release);
    }

    /// The drain now, if one runs.
    pub fn get(&self) -> Option<DrainSeen> {
        let deadline = self.deadline.load(Ordering::Acquire);
        if deadline == NONE {
            return None;
        }
        let id = self.id.load(Ordering::Relaxed);
        Some(DrainSeen {
            id: (id != NONE).then_some(DrainId(id)),
            deadline,
            cause: match self.cause.load(Ordering::Relaxed) {
                1 => DrainCause::Listener,
                2 => DrainCause::Node,
                _ => DrainCause::Backend,
            },
        })
    }
}

fn cause_code(cause: DrainCause) -> u8 {
    match cause {
        DrainCause::Backend => 0,
        DrainCause::Listener => 1,
        DrainCause::Node => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_says_what_was_set_until_cleared() {
        let m = DrainMark::default();
        assert_eq!(m.get(), None);
        m.set(Some(DrainId(7)), 1_000, DrainCause::Listener);
        assert_eq!(
            m.get(),
            Some(DrainSeen {
                id: Some(DrainId(7)),
                deadline: 1_000,
                cause: DrainCause::Listener
            })
        );
        m.set(None, 2_000, DrainCause::Node);
        assert_eq!(
            m.get().map(|d| (d.id, d.cause)),
            Some((None, DrainCause::Node))
        );
        m.clear();
        assert_eq!(m.get(), None);
    }
}
