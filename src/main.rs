//! `sluice`: runs a node (`sluice node run`) or talks to one's admin API.

#![forbid(unsafe_code)]

mod cli;
mod client;
mod config;
mod node;
mod output;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, NodeCommand};
use crate::config::{LogFormat, NodeConfig, LOG_FORMAT_ENV};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Node(NodeCommand::Run { config }) => {
            let loaded = match config {
                Some(path) => NodeConfig::load(&path),
                None => Ok(NodeConfig::embedded_default()),
            };
            let env_format = std::env::var(LOG_FORMAT_ENV).ok();
            let config = match loaded.and_then(|mut c| {
                c.override_log_format(env_format.as_deref())?;
                Ok(c)
            }) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2);
                }
            };
            init_logging(&config);
            let runtime = runtime(config.worker_threads);
            match runtime.block_on(node::run(config)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            }
        }
        command => {
            let client = client::Client::new(cli.client);
            let result = runtime(0).block_on(async {
                match command {
                    Command::Group(c) => client.group(c).await,
                    Command::Backend(c) => client.backend(c).await,
                    Command::Listener(c) => client.listener(c).await,
                    Command::Cluster(c) => client.cluster(c).await,
                    Command::Node(NodeCommand::Check { timeout }) => client.check(&timeout).await,
                    Command::Node(NodeCommand::Run { .. }) => unreachable!("handled above"),
                }
            });
            match result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e}");
                    e.exit_code()
                }
            }
        }
    };
    std::process::exit(code);
}

/// A multi-thread runtime with `workers` threads (0: one per CPU this
/// process may run on).
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build().expect("tokio runtime")
}

fn init_logging(config: &NodeConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
