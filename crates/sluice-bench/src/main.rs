//! `sluice-bench`: sluice measured side by side with HAProxy and nginx on
//! this machine, interleaved in one run (loopback only). Without a
//! subcommand it runs the benchmark — keep-alive throughput, fixed-rate
//! latency, idle memory, drain fan-out, cluster propagation, a removal
//! under load, throughput on a contended CPU — and prints
//! markdown tables on stdout (progress on stderr). The subcommands are its
//! own helper processes: the WebSocket echo backend, the two load
//! generators and the CPU spinner, which it starts pinned to their CPUs.
//!
//! Every process it starts is stopped before it exits, also on error and
//! on Ctrl-C / SIGTERM. `bench/compare.sh` installs the peers and builds
//! everything first.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use sluice_bench::progress::say;
use sluice_bench::{
    bench, contended, fixed_rate, format, hold, params, report, shutdown, ws_backend,
};

/// sluice side by side with HAProxy and nginx on this machine.
#[derive(Debug, Parser)]
#[command(name = "sluice-bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    helper: Option<Helper>,
    #[command(flatten)]
    run: params::RunArgs,
}

/// The benchmark's own helper processes.
#[derive(Debug, Subcommand)]
enum Helper {
    /// WebSocket echo backend (one thread).
    WsBackend(ws_backend::Args),
    /// Hold connections through a proxy (driven over stdin/stdout).
    Hold(hold::Args),
    /// Open-loop fixed-rate HTTP load; prints its result as JSON.
    FixedRate(fixed_rate::Args),
    /// Burn CPU until stopped (the contended case's competing process).
    Spin,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.helper {
        Some(Helper::WsBackend(a)) => ws_backend::main(a),
        Some(Helper::Hold(a)) => hold::main(a),
        Some(Helper::FixedRate(a)) => fixed_rate::main(a),
        Some(Helper::Spin) => contended::spin_main(),
        None => benchmark(&cli.run),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark and prints the report; fails when something did not
/// work (the report's Problems section says what), and then keeps the
/// directory of configs and logs.
fn benchmark(args: &params::RunArgs) -> anyhow::Result<()> {
    say("starting");
    let command = format::command_line(std::env::args());
    let params = args.params(command)?;
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir()
        .context("creating the results directory")?;
    // One thread: blocking steps (starting a node) hold back the signal
    // handling until they end, so an interruption never strands a process.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    // Dropping the benchmark future drops every process guard.
    let outcome = rt.block_on(async {
        tokio::select! {
            r = bench::run(&params, dir.path()) => r,
            why = shutdown::interrupted() => Err(anyhow::anyhow!("{why}; every process started was stopped")),
        }
    });
    drop(rt);
    let problems = outcome
        .as_ref()
        .map(report::Report::problems)
        .unwrap_or_default();
    let where_logs = if params.keep || outcome.is_err() || !problems.is_empty() {
        format!("configs and raw logs kept in {}", dir.keep().display())
    } else {
        format!(
            "configs and raw logs were in {} (removed; --keep keeps them)",
            dir.path().display()
        )
    };
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            say(&where_logs);
            return Err(e);
        }
    };
    let markdown = report.markdown(&params);
    print!("{markdown}");
    std::io::stdout().flush().context("writing to stdout")?;
    if let Some(out) = &params.out {
        std::fs::write(out, &markdown).with_context(|| format!("writing {}", out.display()))?;
        say(&format!("results written to {}", out.display()));
    }
    say(&where_logs);
    if !problems.is_empty() {
        bail!("{} problem(s): {}", problems.len(), problems.join("; "));
    }
    Ok(())
}
