//! Assembles and runs one node (written by the data-plane work; stub).

use crate::config::NodeConfig;

/// Runs a node until Ctrl-C or SIGTERM.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let _ = config;
    anyhow::bail!("not wired yet")
}
