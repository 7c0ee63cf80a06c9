//! The route every node answers with the log index its data plane routes
//! by: served by the cluster routes, long-polled by [`crate::peer_progress`]
//! (`?at_least=N` waits for it), and asked by `cluster status`.

/// Path every node answers with the log index its data plane runs.
pub const APPLIED_PATH: &str = "/v1/cluster/applied";
