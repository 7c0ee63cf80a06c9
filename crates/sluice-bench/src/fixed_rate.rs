//! Fixed-rate (open-loop) latency: the `sluice-bench fixed-rate`
//! subcommand and [`run`], which starts it pinned and reads its result.
//!
//! Request `i` (0-based) of `rate × duration` is due at `t0 + i / rate`
//! and goes on keep-alive connection `i mod conns`. A connection that is
//! free when a request is due sends it at that time (the timer's own
//! lateness, up to a millisecond, is not counted); one still busy with an
//! earlier answer sends it as soon as it is free and the request's latency
//! counts from when it was due — so a stalled server shows up in the
//! figures instead of silently lowering the rate (no coordinated
//! omission). A failed request is counted, the connection reopened.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::procs::{client_command, log_tail, ClientChild};
use crate::stats::percentile;
use crate::wire;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to send `GET /` to.
    #[arg(long)]
    target: SocketAddr,
    /// Requests per second.
    #[arg(long)]
    rate: u32,
    /// Keep-alive connections.
    #[arg(long)]
    conns: usize,
    /// How long to send.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Duration,
}

/// What one run measured (latencies in µs).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FixedRateResult {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Requests whose connection was still busy when they were due.
    pub behind: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// The generator subcommand: prints one [`FixedRateResult`] as JSON.
pub fn main(args: &Args) -> anyhow::Result<()> {
    if args.rate == 0 || args.conns == 0 {
        bail!("--rate and --conns must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    let result = rt.block_on(generate(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// One connection's share of the run.
#[derive(Default)]
struct Share {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    behind: u64,
}

async fn generate(args: &Args) -> anyhow::Result<FixedRateResult> {
    let total = (f64::from(args.rate) * args.duration.as_secs_f64()).round() as u64;
    let conns = args.conns as u64;
    let mut streams = Vec::with_capacity(args.conns);
    let mut buf = Vec::new();
    for i in 0..args.conns {
        let mut s = connect(args.target)
            .await
            .with_context(|| format!("opening connection {} to {}", i + 1, args.target))?;
        // One request first, so every connection (and the proxy's pool
        // behind it) is warm when the clock starts.
        wire::get(&mut s, &mut buf)
            .await
            .with_context(|| format!("first request on connection {}", i + 1))?;
        streams.push(s);
    }
    let t0 = Instant::now() + Duration::from_millis(100);
    let nanos_per_request = 1e9 / f64::from(args.rate);
    let target = args.target;
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(c, stream)| {
            tokio::spawn(async move {
                let mut share = Share::default();
                let mut stream = Some(stream);
                let mut buf = Vec::with_capacity(1024);
                let mut i = c as u64;
                while i < total {
                    let due = t0 + Duration::from_nanos((i as f64 * nanos_per_request) as u64);
                    let start = if Instant::now() < due {
                        tokio::time::sleep_until(due).await;
                        Instant::now()
                    } else {
                        share.behind += 1;
                        due
                    };
                    let outcome = match stream.as_mut() {
                        Some(s) => wire::get(s, &mut buf).await,
                        None => match connect(target).await {
                            Ok(s) => wire::get(stream.insert(s), &mut buf).await,
                            Err(e) => Err(e),
                        },
                    };
                    match outcome {
                        Ok(()) => share
                            .latencies
                            .push((start.elapsed().as_micros() as u64).max(1)),
                        Err(e) => {
                            share.errors += 1;
                            share.first_error.get_or_insert_with(|| format!("{e:#}"));
                            stream = None;
                        }
                    }
                    i += conns;
                }
                share
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total as usize);
    let mut result = FixedRateResult::default();
    for t in tasks {
        let share = t
            .await
            .map_err(|e| anyhow!("a connection task failed: {e}"))?;
        all.extend(share.latencies);
        result.errors += share.errors;
        result.behind += share.behind;
        if result.first_error.is_none() {
            result.first_error = share.first_error;
        }
    }
    all.sort_unstable();
    result.sent = total;
    result.ok = all.len() as u64;
    result.p50_us = percentile(&all, 50.0);
    result.p99_us = percentile(&all, 99.0);
    result.p999_us = percentile(&all, 99.9);
    result.max_us = all.last().copied().unwrap_or(0);
    Ok(result)
}

async fn connect(target: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(target)
        .await
        .with_context(|| format!("connecting to {target}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Runs the generator on `cpus` against `target` and returns its result.
pub async fn run(
    cpus: &str,
    target: SocketAddr,
    rate: u32,
    conns: usize,
    duration: Duration,
    log: &Path,
) -> anyhow::Result<FixedRateResult> {
    let args = [
        "fixed-rate".to_string(),
        format!("--target={target}"),
        format!("--rate={rate}"),
        format!("--conns={conns}"),
        format!("--duration={}ms", duration.as_millis()),
    ];
    let what = format!("fixed-rate against {target}");
    let out = ClientChild::spawn(
        client_command(cpus, &args, log)?
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped()),
        &what,
    )?
    .output(duration + Duration::from_secs(60), &what)
    .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "fixed-rate against {target} failed ({}); log {}:\n{}",
            out.status,
            log.display(),
            log_tail(log)
        );
    }
    serde_json::from_str(stdout.trim()).with_context(|| format!("fixed-rate printed {stdout:?}"))
}
