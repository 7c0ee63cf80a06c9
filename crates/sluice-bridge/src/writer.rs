//! Where reports are written: the Raft log, or a fake in tests.

use std::future::Future;

use sluice_model::Command;
use sluice_raft::{ClusterError, Outcome, RaftNode};

/// Writes commands to the replicated log in one call and answers each
/// one's outcome, in order.
pub trait CommandWriter: Send + Sync + 'static {
    /// Proposes `commands` together; an error means none is known to be
    /// applied and the call may be made again.
    fn write(
        &self,
        commands: Vec<Command>,
    ) -> impl Future<Output = Result<Vec<Outcome>, ClusterError>> + Send;
}

impl CommandWriter for RaftNode {
    async fn write(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, ClusterError> {
        let written = self.write_all(commands).await?;
        Ok(written.into_iter().map(|w| w.outcome).collect())
    }
}
