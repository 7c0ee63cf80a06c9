//! `sluice-load`: the load generator of the rolling-upgrade demonstration
//! (docs/rolling-upgrade.md). Keep-alive HTTP/1.1 GET loops and WebSocket
//! echo sessions, round-robin over the `--target` listeners, until
//! `--duration` has passed, SIGTERM or SIGINT arrives, or the `--stop-file`
//! exists. It then lets every request finish and every tunnel close, and
//! prints a JSON report (also written to `--report`) in which every
//! outcome is counted in exactly one class (see `sluice_testkit::load`).
//! A progress line goes to stderr every `--progress`.
//!
//! The exit code says whether the run itself worked (0), not what it
//! counted: read the report.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sluice_testkit::load::{self, LoadConfig, Stats, Target};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Load generator: HTTP keep-alive GETs and WebSocket echo sessions over
/// several listeners, every outcome counted.
#[derive(Debug, Parser)]
#[command(name = "sluice-load", version)]
struct Args {
    /// A listener to load, e.g. http://127.0.0.1:8071/ (repeat the flag;
    /// new connections go round-robin over them).
    #[arg(long = "target", required = true, value_name = "URL")]
    targets: Vec<String>,
    /// Keep-alive HTTP/1.1 GET loops.
    #[arg(long, default_value_t = 8, value_name = "N")]
    http_workers: usize,
    /// WebSocket sessions, each sending a message every --ws-every and
    /// expecting its echo.
    #[arg(long, default_value_t = 6, value_name = "M")]
    ws_sessions: usize,
    /// Time between a session's messages.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration, value_name = "D")]
    ws_every: Duration,
    /// Stop after this long (default: at SIGTERM, SIGINT or --stop-file).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    duration: Option<Duration>,
    /// Stop once this file exists.
    #[arg(long, value_name = "FILE")]
    stop_file: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Bound of one HTTP exchange, and of the wait for one echo.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "D")]
    request_timeout: Duration,
    /// Pause between a worker's requests (0s: back to back).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, value_name = "D")]
    http_pause: Duration,
    /// Time between progress lines on stderr (0s: none).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "D")]
    progress: Duration,
}

/// Turns `stop` true at the first of: the duration, SIGTERM, SIGINT, the
/// stop file.
async fn stop_when(args: &Args, stop: watch::Sender<bool>) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let duration = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let file = async {
        match &args.stop_file {
            Some(path) => {
                while !path.exists() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            None => std::future::pending().await,
        }
    };
    let why = tokio::select! {
        _ = duration => "the duration passed",
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = file => "the stop file exists",
    };
    eprintln!("sluice-load: stopping ({why}): finishing requests, closing tunnels");
    let _ = stop.send(true);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.ws_every.is_zero() || args.request_timeout.is_zero() {
        anyhow::bail!("--ws-every and --request-timeout must be more than 0s");
    }
    let cfg = LoadConfig {
        targets,
        http_workers: args.http_workers,
        ws_sessions: args.ws_sessions,
        ws_every: args.ws_every,
        request_timeout: args.request_timeout,
        http_pause: args.http_pause,
    };
    eprintln!(
        "sluice-load: {} HTTP workers and {} WebSocket sessions over {}",
        cfg.http_workers,
        cfg.ws_sessions,
        args.targets.join(" ")
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let stats = Arc::new(Stats::new(cfg.targets.len()));
    let mut load = tokio::spawn(load::run(cfg.clone(), stats.clone(), stop_rx));
    let stopper = stop_when(&args, stop_tx);
    tokio::pin!(stopper);
    let mut stopping = false;
    let mut tick = tokio::time::interval(args.progress.max(Duration::from_millis(100)));
    tick.tick().await;
    loop {
        tokio::select! {
            done = &mut load => {
                done.context("the load task")??;
                break;
            }
            result = &mut stopper, if !stopping => {
                result?;
                stopping = true;
            }
            _ = tick.tick(), if !args.progress.is_zero() => {
                eprintln!("sluice-load: {}", stats.line());
            }
        }
    }
    let report = stats.report(&cfg);
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.report {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    println!("{text}");
    Ok(())
}
