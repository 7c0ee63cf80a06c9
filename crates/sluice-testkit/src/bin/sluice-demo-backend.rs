//! `sluice-demo-backend`: the demo backend as a process.
//!
//! Serves slow HTTP (`Hello from <name>` after `--delay`, overridable with
//! `?delay=250ms`), `/health` (made to answer 503 by `POST /admin/fail-health`,
//! optionally `?from=127.0.0.2` for probes from one address only, and
//! restored by `POST /admin/pass-health`), `/status/<code>`, and a WebSocket
//! echo on one port, and logs every connection, request and WebSocket event
//! to stdout with a UTC timestamp. Meant to run as PID 1 in a scratch container, so it handles
//! SIGTERM (and Ctrl-C) itself and exits cleanly.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use sluice_testkit::{DemoBackend, DemoBackendConfig};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

/// Slow HTTP + WebSocket echo backend for connection-draining demos.
#[derive(Debug, Parser)]
#[command(name = "sluice-demo-backend", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Name in responses (`Hello from <name>`, `x-backend`) and log lines;
    /// defaults to the host name, else "backend".
    #[arg(long)]
    name: Option<String>,
    /// How long each request waits before it is answered (e.g. `30s`,
    /// `250ms`); a request may override it with `?delay=`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    delay: Duration,
}

impl Args {
    fn into_config(self) -> DemoBackendConfig {
        DemoBackendConfig {
            listen: self.listen,
            name: self.name.unwrap_or_else(default_name),
            delay: self.delay,
        }
    }
}

/// The host name ($HOSTNAME, then the kernel's, then /etc/hostname), or
/// "backend".
fn default_name() -> String {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_files = || {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
    };
    from_env
        .or_else(from_files)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "backend".to_owned())
}

/// `2026-11-23T20:31:05.123Z`.
struct UtcMillis;

impl FormatTime for UtcMillis {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            humantime::format_rfc3339_millis(sluice_clock::now())
        )
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, stopping"),
                    _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received, stopping");
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_timer(UtcMillis)
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let backend = DemoBackend::start(args.into_config()).await?;
        stop_signal().await;
        backend.shutdown().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = Args::try_parse_from(["sluice-demo-backend"])
            .unwrap()
            .into_config();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.delay, Duration::ZERO);
        assert!(!config.name.is_empty());
    }

    #[test]
    fn all_flags() {
        let config = Args::try_parse_from([
            "sluice-demo-backend",
            "--listen",
            "0.0.0.0:9090",
            "--name",
            "ecs01",
            "--delay",
            "1m30s",
        ])
        .unwrap()
        .into_config();
        assert_eq!(config.listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(config.name, "ecs01");
        assert_eq!(config.delay, Duration::from_secs(90));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(Args::try_parse_from(["x", "--delay", "soon"]).is_err());
        assert!(Args::try_parse_from(["x", "--listen", "nowhere"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
