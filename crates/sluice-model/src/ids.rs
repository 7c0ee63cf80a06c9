//! The identifiers and the time unit every other file of the model uses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A cluster node's id (the Raft node id).
pub type NodeId = u64;

/// Wall-clock time as milliseconds since the Unix epoch. Deadlines are
/// absolute so that every node closes at the same moment (C3).
pub type UnixMillis = u64;

/// Identifies one drain for its whole life, cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DrainId(pub u64);

impl fmt::Display for DrainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}
