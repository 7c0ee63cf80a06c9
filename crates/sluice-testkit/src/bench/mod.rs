//! The Raft-cluster benchmark run by the `sluice-cluster-bench` binary.
//!
//! Why: the design brief sets figures for the cluster (C2: a committed
//! change reaches every node's data plane with p99 under 50 ms; writes
//! above 2,000/s; under 64 MB of disk per node). This measures them on a
//! real three-node cluster of the `sluice` binary on one host, so a
//! regression shows up as a number, not as a hunch.
//!
//! How: [`cluster`] forms the cluster with the test harness exactly as the
//! end-to-end tests do; [`propagation`], [`throughput`] and [`footprint`]
//! are the three phases (each module documents what it measures and how);
//! [`report`] renders the figures as markdown. All traffic is on loopback,
//! and every process started is killed when the [`cluster::BenchCluster`]
//! is dropped — on success, on error and on Ctrl-C alike (the binary turns
//! the signal into an error).

pub mod admin;
pub mod cluster;
pub mod disk;
pub mod footprint;
pub mod procfs;
pub mod propagation;
pub mod report;
pub mod stats;
pub mod throughput;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use cluster::BenchCluster;
use disk::DiskGuard;
use report::{Machine, Report};
use throughput::{drive, AddressSeq, Progress, Until, Workload};

/// What to run.
#[derive(Clone, Debug)]
pub struct Params {
    /// The `sluice` binary (absolute).
    pub sluice: PathBuf,
    /// The binary as the command line named it (what the report shows: no
    /// machine-specific absolute path in published results).
    pub sluice_as_given: PathBuf,
    /// Removal rounds of the propagation phase.
    pub removals: usize,
    /// Commands of the footprint phase.
    pub writes: u64,
    /// Concurrent writers of the throughput and footprint phases.
    pub concurrency: usize,
    /// Duration of each throughput run.
    pub throughput_for: Duration,
    /// Longest wait for the cluster to settle after a workload.
    pub settle_limit: Duration,
    /// A workload stops once a node's data directory is larger (bytes).
    pub disk_limit: u64,
    /// Whether to run the footprint phase.
    pub footprint: bool,
    /// Smoke mode (only changes the defaults above; noted in the report).
    pub quick: bool,
}

/// Forms the cluster, runs every phase, and returns the figures. The
/// cluster is stopped before this returns, whatever the outcome.
pub async fn run(params: &Params, command: String) -> anyhow::Result<Report> {
    let started = sluice_clock::now();
    let machine = Machine::probe(&params.sluice);
    let clock = Instant::now();

    eprintln!(
        "forming a three-node cluster of {}",
        params.sluice.display()
    );
    let sluice = params.sluice.clone();
    let nodes = tokio::task::spawn_blocking(move || BenchCluster::start_blocking(&sluice))
        .await
        .map_err(|e| anyhow!("the cluster start panicked: {e}"))??;
    let cluster = BenchCluster::formed(nodes, params.concurrency.max(4)).await?;
    let formed_in = clock.elapsed();
    let leader = cluster.leader().await?;
    eprintln!(
        "formed in {:.1} s; leader is node {}",
        formed_in.as_secs_f64(),
        leader + 1
    );

    eprintln!("phase 1: propagation, {} removal rounds", params.removals);
    let phase = Instant::now();
    let propagation = propagation::run(&cluster, params.removals)
        .await
        .context("propagation phase")?;
    eprintln!("  phase 1 took {:.1} s", phase.elapsed().as_secs_f64());

    throughput::create_group(&cluster).await?;
    let addrs = Arc::new(AddressSeq::default());
    let guard = DiskGuard::new(&cluster, params.disk_limit);
    let mut throughput = Vec::new();
    let mut aborted = None;
    let leader = cluster.leader().await?;
    let runs = [
        ("all nodes, round robin".to_string(), cluster.admin_urls()),
        (
            format!("leader only (node {})", leader + 1),
            vec![cluster.admin_url(leader)],
        ),
    ];
    for (label, urls) in runs {
        eprintln!(
            "phase 2: write throughput, {} writers for {:?}, calls to {label}",
            params.concurrency, params.throughput_for
        );
        let result = drive(
            &cluster,
            Workload {
                label: label.clone(),
                urls,
                concurrency: params.concurrency,
                until: Until::Elapsed(params.throughput_for),
                addrs: addrs.clone(),
                progress: Arc::new(Progress::default()),
                guard: guard.clone(),
                settle_limit: params.settle_limit,
            },
        )
        .await
        .with_context(|| format!("throughput phase ({label})"))?;
        eprintln!(
            "  {} commands in {:.2} s = {:.0}/s ({} errors)",
            result.ok,
            result.elapsed.as_secs_f64(),
            stats::per_second(result.ok, result.elapsed),
            result.errors
        );
        // The next run would measure this one's backlog: stop here.
        if let Some(why) = &result.unsettled {
            aborted = Some(format!("after the throughput run \"{label}\": {why}"));
        }
        throughput.push(result);
        if aborted.is_some() {
            break;
        }
    }

    let footprint = if params.footprint && aborted.is_none() {
        eprintln!(
            "phase 3: footprint, {} commands by {} writers",
            params.writes, params.concurrency
        );
        let phase = Instant::now();
        let f = footprint::run(
            &cluster,
            params.writes,
            params.concurrency,
            &addrs,
            &guard,
            params.settle_limit,
        )
        .await
        .context("footprint phase")?;
        eprintln!("  phase 3 took {:.1} s", phase.elapsed().as_secs_f64());
        Some(f)
    } else {
        None
    };

    let final_leader = cluster.leader().await.ok().map(|i| i as u64 + 1);
    drop(cluster);
    Ok(Report {
        machine,
        started,
        command,
        params: params.clone(),
        formed_in,
        leader: leader as u64 + 1,
        final_leader,
        propagation,
        throughput,
        footprint,
        aborted,
        total: clock.elapsed(),
    })
}

/// Resolves on Ctrl-C or SIGTERM, with what happened: a benchmark
/// `select!`s on it so that an interruption drops (and so stops) every
/// process it started.
pub async fn interrupted() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
        _ = term => "terminated (SIGTERM)",
    }
}

/// Aborts a background task when dropped, so an early return (an error)
/// leaves nothing running.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
