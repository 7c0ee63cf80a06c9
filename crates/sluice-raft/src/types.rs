//! The Raft type configuration: what sluice's log carries and answers.
//!
//! What: [`TypeConfig`] ties openraft to sluice — a log entry's payload is a
//! [`Request`] (model [`Command`]s applied in order), applying it gives a
//! [`Response`] (one [`Outcome`] per command), a node is a `u64` id with a
//! [`BasicNode`] whose `addr` is the node's admin URL
//! (`http://127.0.0.1:7071`), snapshots are bytes in memory.
//!
//! Why several commands per entry: the leader batches the writes that arrive
//! while its previous entry is being replicated into one entry (group
//! commit), so one log append and one fsync per node carry many writes.
//!
//! Why a [`RequestId`] per command: a follower that forwards a write and
//! loses the leader mid-call sends it again to the next leader; the state
//! machine applies each id once and answers a repeat with the first outcome,
//! so a re-sent write is applied exactly once.
//!
//! Why a `Rejected` outcome instead of an error: a command the model refuses
//! is still in a committed log entry; applying it changes nothing, and every
//! node answers the same — the model's own [`ModelError`], typed. Storage errors (the node cannot go on) are
//! openraft's `StorageError`, never an `Outcome`.

use std::fmt;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use sluice_model::{Applied, Command, ModelError, State};

openraft::declare_raft_types!(
    /// sluice's openraft type configuration.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft node id (the model's node id).
pub type NodeId = sluice_model::NodeId;
/// A running Raft node.
pub type Raft = openraft::Raft<TypeConfig>;
/// Term, leader and index of a log entry.
pub type LogId = openraft::LogId<NodeId>;
/// A node's vote (term and whom it voted for).
pub type Vote = openraft::Vote<NodeId>;
/// A cluster membership configuration.
pub type Membership = openraft::Membership<NodeId, BasicNode>;
/// A membership with the id of the log entry that set it.
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
/// What a snapshot covers.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
/// A snapshot: its meta and its bytes.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// First and last log id in the store.
pub type LogState = openraft::LogState<TypeConfig>;
/// A failure of the log or state-machine store (fatal to the Raft node).
pub type StorageError = openraft::StorageError<NodeId>;

/// The identity of one write, chosen by the node that first took it: that
/// node's id, the time it started (ms since the Unix epoch) and a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// The node that took the write.
    pub node: NodeId,
    /// When that node's process started (ms since the Unix epoch): ids stay
    /// unique across its restarts.
    pub boot: u64,
    /// Counter within that process.
    pub seq: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.node, self.boot, self.seq)
    }
}

/// What a log entry carries: commands every node applies, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The commands, applied one after the other; each one's outcome is its
    /// own (a refused command does not stop the next).
    #[serde(with = "crate::codec::as_json")]
    pub commands: Vec<Command>,
    /// Empty, or one id per command: a command whose id was applied recently
    /// is not applied again, it answers the outcome it had.
    pub ids: Vec<RequestId>,
}

impl Request {
    /// A request carrying one `command` without an id.
    pub fn new(command: Command) -> Self {
        Request {
            commands: vec![command],
            ids: Vec::new(),
        }
    }

    /// The id of command `i`, if the request carries ids.
    pub fn id(&self, i: usize) -> Option<RequestId> {
        self.ids.get(i).copied()
    }
}

impl From<Command> for Request {
    fn from(command: Command) -> Self {
        Request::new(command)
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.commands)
    }
}

/// What applying a log entry gave: one outcome per command of its
/// [`Request`] (one for a membership entry, none for a blank one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The outcomes, in the order of the commands.
    pub outcomes: Vec<Outcome>,
}

/// What applying one command gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The command was applied (or the entry needed nothing from the model).
    Applied {
        /// What applying it did.
        #[serde(with = "crate::codec::as_json")]
        applied: Applied,
        /// The objects it touched as they stood right after it
        /// ([`State::excerpt`]); the write's answer on any node (N2).
        #[serde(with = "crate::codec::as_json")]
        excerpt: Option<State>,
    },
    /// The model refused the command; the state is unchanged. Carries the
    /// model's error itself: callers match on its variants, and its code,
    /// message and field are the same on every node.
    Rejected {
        /// Why the model refused it.
        #[serde(with = "crate::codec::as_json")]
        error: ModelError,
    },
}

impl Outcome {
    /// Whether the command was applied.
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied { .. })
    }
}

impl From<ModelError> for Outcome {
    fn from(error: ModelError) -> Self {
        Outcome::Rejected { error }
    }
}

impl Outcome {
    /// Applies `command` to `state`: its outcome, with the excerpt of what
    /// it touched when it was applied.
    pub fn of(state: &mut State, command: &Command) -> Outcome {
        match state.apply(command) {
            Ok(applied) => Outcome::Applied {
                applied,
                excerpt: state.excerpt(command),
            },
            Err(error) => Outcome::Rejected { error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};
    use sluice_model::DrainId;

    #[test]
    fn rejected_carries_the_model_error() {
        let e = ModelError::GroupNotFound {
            group: "web".into(),
        };
        let r = Outcome::from(e.clone());
        assert_eq!(r, Outcome::Rejected { error: e.clone() });
        assert!(!r.is_applied());
        // Code, message and field survive the wire as they were.
        let Outcome::Rejected { error } = decode::<Outcome>(&encode(&r).unwrap()).unwrap() else {
            panic!("not a rejection");
        };
        assert_eq!(error.code(), "group_not_found");
        assert_eq!(error.to_string(), e.to_string());
        assert_eq!(error.field(), Some("group"));
    }

    #[test]
    fn request_and_response_round_trip_in_bincode() {
        let req = Request::new(Command::DrainFinished {
            drain: DrainId(4),
            node: 2,
            at: 0,
        });
        assert_eq!(decode::<Request>(&encode(&req).unwrap()).unwrap(), req);
        let mut with_id = req.clone();
        with_id.ids.push(RequestId {
            node: 2,
            boot: 1_700_000_000_000,
            seq: 9,
        });
        assert_eq!(
            decode::<Request>(&encode(&with_id).unwrap()).unwrap(),
            with_id
        );
        let resp = Response {
            outcomes: vec![
                Outcome::Applied {
                    applied: Applied::DrainCompleted { drain: DrainId(4) },
                    excerpt: Some(State::default()),
                },
                Outcome::from(ModelError::GroupNotFound { group: "x".into() }),
            ],
        };
        assert_eq!(decode::<Response>(&encode(&resp).unwrap()).unwrap(), resp);
    }
}
