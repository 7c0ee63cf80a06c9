//! `sluice`: runs a node (`sluice node run`) or talks to one's admin API.

#![forbid(unsafe_code)]

mod cli;
mod client;
mod config;
mod log_filter;
mod log_format;
mod logging;
mod node;
mod output;

use clap::Parser;

use crate::cli::{Cli, Command, NodeCommand, Output};
use crate::config::{NodeConfig, LOG_FORMAT_ENV};

/// jemalloc, whose background thread gives freed pages back to the OS a
/// few seconds after a load ends: glibc's malloc kept what a connection
/// flood had used for good (docs/connection-footprint.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| refuse_args(e));
    let code = match cli.command {
        Command::Node(NodeCommand::Run { config: path }) => {
            let loaded = match &path {
                Some(path) => NodeConfig::load(path),
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
            let log = logging::init(&config);
            let runtime = runtime(config.worker_threads);
            match runtime.block_on(node::run(config, node::Reload { file: path, log })) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            }
        }
        command => {
            let output = cli.client.output;
            let result = client::Client::new(cli.client).map(|client| {
                runtime(0).block_on(async {
                    match command {
                        Command::Group(c) => client.group(c).await,
                        Command::Backend(c) => client.backend(c).await,
                        Command::Listener(c) => client.listener(c).await,
                        Command::Cluster(c) => client.cluster(c).await,
                        Command::Cert(c) => client.cert(c).await,
                        Command::Node(NodeCommand::Check { timeout }) => {
                            client.check(&timeout).await
                        }
                        Command::Node(c) => client.node(c).await,
                    }
                })
            });
            match result.and_then(|r| r) {
                Ok(()) => 0,
                Err(e) => {
                    match output {
                        Output::Table => eprintln!("error: {e}"),
                        Output::Json => print_json_error(e.detail()),
                    }
                    e.exit_code()
                }
            }
        }
    };
    std::process::exit(code);
}

/// Prints `{"error": {"code", "message", "field"}}` on stderr, one line.
fn print_json_error(detail: sluice_admin::api::ErrorDetail) {
    let body = sluice_admin::api::ErrorBody { error: detail };
    match serde_json::to_string(&body) {
        Ok(line) => eprintln!("{line}"),
        Err(_) => eprintln!("error: {}", body.error.message),
    }
}

/// Arguments clap refused: its own text, or with `--output json` on the
/// command line the same error as JSON; exit 2 either way (help and
/// version go to stdout with exit 0 as usual).
fn refuse_args(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--output=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json");
    if !json || !e.use_stderr() {
        e.exit();
    }
    let code = match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => "invalid_value",
        ErrorKind::MissingRequiredArgument => "missing_argument",
        _ => "invalid_argument",
    };
    let field = match e.get(ContextKind::InvalidArg) {
        // `--weight <WEIGHT>` → `--weight`; `<PORT>` → `PORT`.
        Some(ContextValue::String(s)) => s
            .split([' ', '='])
            .next()
            .map(|f| f.trim_matches(['<', '>']).to_string()),
        _ => None,
    };
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    print_json_error(sluice_admin::api::ErrorDetail {
        code: code.into(),
        message,
        field,
    });
    std::process::exit(2);
}

/// The runtime with `workers` threads (0: one per CPU this process may run
/// on). One thread gets tokio's current-thread scheduler: the same single
/// thread runs the tasks and polls the sockets and timers, without the
/// multi-thread scheduler's cross-thread bookkeeping on every wake-up
/// (work-stealing queues, waking a parked worker), which one worker never
/// uses. Tasks that other threads spawn or wake still reach it.
/// Exits 1 when the runtime cannot start (no threads or descriptors left).
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}
