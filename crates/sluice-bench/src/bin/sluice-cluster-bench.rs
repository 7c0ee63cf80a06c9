//! `sluice-cluster-bench`: starts a real three-node cluster of the `sluice`
//! binary on this host (loopback only) and prints figures for it —
//! propagation of a removal to every node's data plane, write throughput,
//! disk/memory footprint, and all of these as one group grows to many
//! backends — as markdown on stdout (and appended to
//! `--out FILE`). Progress goes to stderr. What each figure means and how it
//! is measured is documented in `sluice_bench::cluster` and
//! `docs/cluster-benchmark.md`.
//!
//! Every node it starts is killed before it exits, also on error and on
//! Ctrl-C / SIGTERM.
//!
//! ```text
//! cargo build --release --bin sluice
//! cargo build --release -p sluice-bench --bin sluice-cluster-bench
//! target/release/sluice-cluster-bench                 # full run
//! target/release/sluice-cluster-bench --quick         # smoke run, seconds
//! target/release/sluice-cluster-bench --scale-only --scale 1000,10000
//! ```

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use sluice_bench::cluster::{self, params::Params};
use sluice_bench::{format, shutdown};

/// Benchmark of a three-node sluice cluster on this host.
#[derive(Debug, Parser)]
#[command(name = "sluice-cluster-bench", version)]
struct Args {
    /// The sluice binary to run the nodes with.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// Add/remove rounds of the propagation phase [default: 200; 20 with --quick].
    #[arg(long)]
    removals: Option<usize>,
    /// Commands of the footprint phase [default: 100000; 2000 with --quick].
    #[arg(long)]
    writes: Option<u64>,
    /// Concurrent writers of the throughput and footprint phases.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Length of each throughput run [default: 10s; 2s with --quick].
    #[arg(long, value_parser = humantime::parse_duration)]
    throughput_duration: Option<Duration>,
    /// Longest wait, after a workload, for the cluster to settle (every
    /// node on one index, no drain pending).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    settle_limit: Duration,
    /// Stop a workload (and the wait after it) once any node's data
    /// directory is larger than this many MiB, to protect the host's disk.
    #[arg(long, default_value_t = 2048)]
    disk_limit_mib: u64,
    /// Skip the footprint phase.
    #[arg(long)]
    skip_footprint: bool,
    /// Backends in group `scale` at each step of the scale phase,
    /// ascending [default: 1000,10000,100000; 200,1000 with --quick].
    #[arg(long, value_delimiter = ',')]
    scale: Option<Vec<u64>>,
    /// Adds at the end of each fill over which the scale phase measures
    /// adds/s [default: 1000; 100 with --quick].
    #[arg(long)]
    scale_window: Option<u64>,
    /// Propagation rounds at each size of the scale phase [default: 50; 10
    /// with --quick].
    #[arg(long)]
    scale_removals: Option<usize>,
    /// Skip the scale phase.
    #[arg(long, conflicts_with = "scale_only")]
    skip_scale: bool,
    /// Run the scale phase alone (skip propagation, throughput and
    /// footprint).
    #[arg(long)]
    scale_only: bool,
    /// Smoke mode: small defaults so it runs in seconds; asserts nothing
    /// about speed.
    #[arg(long)]
    quick: bool,
    /// Also append the markdown results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Args {
    fn params(&self) -> anyhow::Result<Params> {
        if !self.sluice.is_file() {
            bail!(
                "{} is not a file: build it with `cargo build --release --bin sluice` or pass --sluice PATH",
                self.sluice.display()
            );
        }
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        let scale = match (&self.scale, self.skip_scale) {
            (_, true) => Vec::new(),
            (Some(sizes), false) => sizes.clone(),
            (None, false) if self.quick => vec![200, 1_000],
            (None, false) => vec![1_000, 10_000, 100_000],
        };
        if scale.first() == Some(&0) || scale.windows(2).any(|w| w[0] >= w[1]) {
            bail!("--scale {scale:?}: sizes must be above 0 and ascending");
        }
        if self.scale_only && scale.is_empty() {
            bail!("--scale-only needs at least one size in --scale");
        }
        let sluice = self
            .sluice
            .canonicalize()
            .with_context(|| format!("resolving {}", self.sluice.display()))?;
        let pick = |set: Option<u64>, full: u64, quick: u64| {
            set.unwrap_or(if self.quick { quick } else { full })
        };
        Ok(Params {
            sluice,
            sluice_as_given: self.sluice.clone(),
            removals: pick(self.removals.map(|n| n as u64), 200, 20) as usize,
            writes: pick(self.writes, 100_000, 2_000),
            concurrency: self.concurrency,
            throughput_for: self.throughput_duration.unwrap_or(if self.quick {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(10)
            }),
            settle_limit: self.settle_limit,
            disk_limit: self.disk_limit_mib.saturating_mul(1024 * 1024),
            footprint: !self.skip_footprint,
            scale,
            scale_window: pick(self.scale_window, 1_000, 100).max(1),
            scale_removals: pick(self.scale_removals.map(|n| n as u64), 50, 10) as usize,
            scale_only: self.scale_only,
            quick: self.quick,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        // The report was printed, but a phase could not be run.
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("sluice-cluster-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark and prints the report; `false` when it stopped
/// before its last phase (the report says why).
async fn run() -> anyhow::Result<bool> {
    let args = Args::parse();
    let params = args.params()?;
    let command = format::command_line(std::env::args());
    // Dropping the benchmark future drops the cluster, which kills the nodes.
    let report = tokio::select! {
        r = cluster::run(&params, command) => r?,
        why = shutdown::interrupted() => bail!("{why}; the nodes were stopped"),
    };
    let markdown = report.markdown();
    print!("{markdown}");
    std::io::stdout().flush().context("writing to stdout")?;
    if let Some(out) = &args.out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .with_context(|| format!("opening {}", out.display()))?;
        f.write_all(markdown.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("results appended to {}", out.display());
    }
    if let Some(why) = &report.aborted {
        eprintln!("sluice-cluster-bench: stopped early {why}");
    }
    Ok(report.aborted.is_none())
}
