//! The Raft-cluster benchmark run by the `sluice-cluster-bench` binary
//! (and, for its propagation phase, by case e of `sluice-bench`).
//!
//! Why: the design brief sets figures for the cluster (C2: a committed
//! change reaches every node's data plane with p99 under 50 ms; writes
//! above 2,000/s; under 64 MB of disk per node). This measures them on a
//! real three-node cluster of the `sluice` binary on one host, so a
//! regression shows up as a number, not as a hunch.
//!
//! How: [`nodes`] forms the cluster with the test harness exactly as the
//! end-to-end tests do; [`propagation`], [`throughput`], [`footprint`] and
//! [`scale`] are the four phases (each module documents what it measures
//! and how), [`disk`] watches the data directories meanwhile; [`params`] is
//! what to run and [`report`] renders the figures as markdown. All traffic
//! is on loopback, and every process started is killed when the
//! [`nodes::BenchCluster`] is dropped — on success, on error and on Ctrl-C
//! alike (the binary turns the signal into an error).

pub mod disk;
pub mod footprint;
pub mod nodes;
pub mod params;
pub mod propagation;
pub mod report;
pub mod scale;
pub mod scale_report;
pub mod throughput;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};

use crate::machine::Machine;
use crate::stats;
use disk::DiskGuard;
use nodes::BenchCluster;
use params::Params;
use propagation::PropagationResult;
use report::Report;
use scale::ScaleParams;
use throughput::{drive, AddressSeq, Progress, Until, Workload, WorkloadResult};

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

    let addrs = Arc::new(AddressSeq::default());
    let guard = DiskGuard::new(cluster.data_dirs(), params.disk_limit);
    let mut aborted = None;
    let (propagation, throughput, footprint) = if params.scale_only {
        (None, Vec::new(), None)
    } else {
        let (propagation, throughput) =
            first_phases(&cluster, params, &addrs, &guard, &mut aborted).await?;
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
        (Some(propagation), throughput, footprint)
    };

    let scale = if !params.scale.is_empty() && aborted.is_none() {
        eprintln!(
            "phase 4: scale, group `{}` filled to {:?} backends",
            scale::GROUP,
            params.scale
        );
        let phase = Instant::now();
        let scale_params = ScaleParams {
            sizes: params.scale.clone(),
            window: params.scale_window,
            removals: params.scale_removals,
            concurrency: params.concurrency,
            settle_limit: params.settle_limit,
        };
        let r = scale::run(&cluster, &scale_params, &addrs, &guard)
            .await
            .context("scale phase")?;
        eprintln!("  phase 4 took {:.1} s", phase.elapsed().as_secs_f64());
        if let Some(why) = &r.stopped {
            aborted = Some(format!("in the scale phase {why}"));
        }
        Some(r)
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
        scale,
        aborted,
        total: clock.elapsed(),
    })
}

/// Phases 1 and 2: propagation, then the two throughput runs (the second
/// is not run when the first did not settle; `aborted` says why).
async fn first_phases(
    cluster: &BenchCluster,
    params: &Params,
    addrs: &Arc<AddressSeq>,
    guard: &Arc<DiskGuard>,
    aborted: &mut Option<String>,
) -> anyhow::Result<(PropagationResult, Vec<WorkloadResult>)> {
    eprintln!("phase 1: propagation, {} removal rounds", params.removals);
    let phase = Instant::now();
    let propagation = propagation::run(cluster, params.removals)
        .await
        .context("propagation phase")?;
    eprintln!("  phase 1 took {:.1} s", phase.elapsed().as_secs_f64());

    throughput::create_group(cluster).await?;
    let mut throughput = Vec::new();
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
            cluster,
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
            *aborted = Some(format!("after the throughput run \"{label}\": {why}"));
        }
        throughput.push(result);
        if aborted.is_some() {
            break;
        }
    }
    Ok((propagation, throughput))
}
