//! Why the bridge could not start.

use sluice_proxy::ProxyError;
use thiserror::Error;

/// Why [`crate::Bridge::start`] failed.
#[derive(Debug, Error)]
pub enum BridgeError {
    /// The data plane did not take the node's current state (restored from
    /// the data dir), so no listener may accept traffic (C5).
    #[error("the data plane did not take the state at log index {index}: {source}")]
    DataPlaneRefused {
        /// Log index of the refused state.
        index: u64,
        /// What the data plane answered.
        #[source]
        source: ProxyError,
    },
}
