//! One run from start to verdict: the cluster up and formed, the workloads
//! and the nemesis for `--time`, the heal, the finals and the logs, then the
//! history written and checked, the report and the timeline.

use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_jepsen::check::{self, CheckSettings, Validity, Verdict};
use sluice_jepsen::history::History;
use sluice_jepsen::report::{self, RunInfo};
use sluice_jepsen::timeline;
use tokio::task::JoinSet;

use super::backends::Backends;
use super::clients::Api;
use super::docker::Docker;
use super::drain::Drain;
use super::nemesis::Nemesis;
use super::{admin, collect, net, now, progress, register, set, Config, Recorder, Stop};

/// A spawned task that is aborted when dropped: an interrupted run leaves
/// nothing acting on the cluster while it is torn down.
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    fn spawn(f: impl std::future::Future<Output = T> + Send + 'static) -> Task<T> {
        Task(tokio::spawn(f))
    }

    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves on Ctrl-C or SIGTERM, naming it.
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
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term => "SIGTERM",
    }
}

/// The run; its combined verdict.
pub async fn run(config: &Config, docker: &Docker) -> Result<Validity> {
    net::check_tools().await?;
    let log_dir = config.out.join("logs");
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    for n in super::NODES {
        // Logs are appended (a removed node's log is kept before it goes).
        let _ = std::fs::remove_file(log_dir.join(format!("node{n}.log")));
    }

    progress(&format!(
        "starting project {} (image {})",
        config.project, config.image
    ));
    let _ = docker.down().await;
    docker.up().await?;
    let api = Api::new(&config.token, config.admin_ports)?;
    admin::form(
        &api,
        config.drain_timeout_ms,
        config.register_drain_timeout_ms,
    )
    .await
    .context("forming the cluster")?;
    let node1 = docker.must_container(1).await?;
    let (_, gateway) = docker.addresses(&node1).await?;
    progress(&format!(
        "cluster formed; drain backends on {gateway}; running {} s, nemesis {}",
        config.time.as_secs(),
        names(config)
    ));

    let rec = Arc::new(Recorder::default());
    rec.with(|h| h.drains.tolerance_ms = config.tolerance_ms);
    let backends = Backends::new(gateway, rec.clone());
    let (stop_tx, stop) = Stop::new();
    let (healed_tx, healed_signal) = Stop::new();
    let started = now();
    rec.with(|h| h.started = started);

    let mut clients = JoinSet::new();
    for i in 0..config.register_clients {
        clients.spawn(register::client(
            i,
            config.register_clients,
            api.clone(),
            rec.clone(),
            config.seed,
            config.key_pool_period,
            stop.clone(),
        ));
    }
    for i in 0..config.set_clients {
        clients.spawn(set::client(
            i,
            config.set_clients,
            api.clone(),
            rec.clone(),
            config.seed,
            stop.clone(),
        ));
    }
    let drain = Task::spawn(
        Drain {
            api: api.clone(),
            backends: backends.clone(),
            rec: rec.clone(),
            seed: config.seed,
            listener_ports: config.listener_ports,
            drain_timeout_ms: config.drain_timeout_ms,
            tolerance_ms: config.tolerance_ms,
        }
        .run(stop.clone(), healed_signal),
    );
    let nemesis = Task::spawn(
        Nemesis {
            docker: docker.clone(),
            api: api.clone(),
            rec: rec.clone(),
            kinds: config.nemesis.clone(),
            seed: config.seed,
            warmup: config.warmup,
            log_dir: log_dir.clone(),
        }
        .run(stop.clone()),
    );
    let faults_seen = Task::spawn(report_faults(rec.clone(), stop.clone()));

    tokio::time::sleep(config.time).await;
    progress("time is up: stopping the clients, healing");
    let _ = stop_tx.send(true);
    nemesis.join().await.context("the nemesis task")?;
    let healed = now();
    rec.with(|h| h.healed = healed);
    let _ = healed_tx.send(true);
    progress("healed; waiting for the nodes to agree");

    let workloads = async {
        while clients.join_next().await.is_some() {}
        let _ = drain.join().await;
    };
    let ((), finals) = tokio::join!(workloads, collect::finals(&api, config.convergence_bound));
    let _ = faults_seen.join().await;
    match finals.iter().filter_map(|f| f.converged_at).max() {
        Some(t) if finals.len() == super::NODES.len() => progress(&format!(
            "converged {:.1} s after the heal",
            (t - healed) as f64 / 1e6
        )),
        _ => progress("the nodes did not agree within the bound"),
    }
    let (findings, log_errors) = collect::logs(docker, &log_dir).await;
    for e in log_errors {
        eprintln!("sluice-jepsen: logs: {e}");
    }
    if backends.unstamped() > 0 {
        eprintln!(
            "sluice-jepsen: {} requests reached a backend without x-sluice-node/x-sluice-revision (not a test build?)",
            backends.unstamped()
        );
    }
    rec.with(|h| {
        h.finals = finals;
        h.log_findings = findings;
        h.ended = now();
    });
    let history = rec.snapshot();
    let path = config.out.join("history.json");
    let json = serde_json::to_vec_pretty(&history)?;
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;

    let info = run_info(config, &history);
    let path = config.out.join("run.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    check(config, &history, &info)
}

/// Checks `history`, writes the report and the timeline, prints the
/// summary; the combined verdict.
fn check(config: &Config, history: &History, info: &RunInfo) -> Result<Validity> {
    progress("checking");
    // The rest (the drain tolerance) comes from the history.
    #[allow(clippy::needless_update)]
    let settings = CheckSettings {
        linearizability_timeout: config.linearizability_timeout,
        convergence_bound: config.convergence_bound,
        ..CheckSettings::default()
    };
    let verdicts = check::check_all(history, &settings);
    report::write_report(&config.out, info, history, &verdicts)
        .with_context(|| format!("cannot write the report in {}", config.out.display()))?;
    timeline::write_timeline(&config.out, info, history)
        .with_context(|| format!("cannot write the timeline in {}", config.out.display()))?;
    let validity = combined(&verdicts);
    summary(config, history, &verdicts, validity);
    Ok(validity)
}

/// `--check-only`: checks `OUT/history.json` again, with the run's own
/// parameters from `OUT/run.json` when it has one; the exit status.
pub fn check_only(config: &Config) -> u8 {
    let path = config.out.join("history.json");
    let history = std::fs::read(&path)
        .with_context(|| format!("cannot read {}", path.display()))
        .and_then(|b| {
            serde_json::from_slice::<History>(&b)
                .with_context(|| format!("{} is not a history", path.display()))
        });
    super::exit_status(history.and_then(|h| {
        let info = std::fs::read(config.out.join("run.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<RunInfo>(&b).ok())
            .unwrap_or_else(|| run_info(config, &h));
        check(config, &h, &info)
    }))
}

/// The nemesis list as given.
fn names(config: &Config) -> String {
    if config.nemesis.is_empty() {
        return "none".into();
    }
    config
        .nemesis
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// Every verdict combined; unknown when no checker gave one.
fn combined(verdicts: &[Verdict]) -> Validity {
    if verdicts.is_empty() {
        return Validity::Unknown;
    }
    verdicts
        .iter()
        .fold(Validity::Valid, |v, x| v.combine(x.validity))
}

fn run_info(config: &Config, history: &History) -> RunInfo {
    // The repository of the compose file.
    let repo = config
        .compose_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let commit = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    RunInfo {
        seed: config.seed,
        time_s: config.time.as_secs(),
        nemesis: config
            .nemesis
            .iter()
            .map(|k| k.name().to_string())
            .collect(),
        started: history.started,
        healed: history.healed,
        ended: history.ended,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        commit,
    }
}

/// Prints each fault as it starts, until `stop` (progress on stderr).
async fn report_faults(rec: Arc<Recorder>, mut stop: Stop) {
    let mut shown = 0;
    let started = rec.with(|h| h.started);
    loop {
        let running = stop.sleep(std::time::Duration::from_millis(500)).await;
        let new: Vec<_> = rec.with(|h| {
            h.faults
                .iter()
                .skip(shown)
                .filter(|f| !f.detail.is_empty())
                .cloned()
                .collect()
        });
        for f in &new {
            progress(&format!(
                "+{:.1} s {}: {}",
                (f.start - started) as f64 / 1e6,
                f.kind,
                f.detail
            ));
        }
        shown += new.len();
        if !running {
            return;
        }
    }
}

fn summary(config: &Config, history: &History, verdicts: &[Verdict], validity: Validity) {
    let info = history
        .ops
        .iter()
        .filter(|o| matches!(o.outcome, sluice_jepsen::history::Outcome::Info { .. }))
        .count();
    println!(
        "sluice-jepsen: seed {}, {} s, nemesis {}: {} faults, {} operations ({} indeterminate), {} tunnels, {} slow requests, {} removals",
        config.seed,
        config.time.as_secs(),
        names(config),
        history.faults.len(),
        history.ops.len(),
        info,
        history.drains.tunnels.len(),
        history.drains.requests.len(),
        history.drains.removals.len(),
    );
    for v in verdicts {
        let counts: Vec<String> = v.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "  {:<8} {}: {}",
            format!("{:?}", v.validity).to_lowercase(),
            v.invariant,
            counts.join(", ")
        );
        for p in v.problems.iter().take(3) {
            println!("           - {p}");
        }
    }
    if verdicts.is_empty() {
        println!("  (no checker gave a verdict)");
    }
    println!("  output: {}", config.out.display());
    println!("verdict: {}", format!("{validity:?}").to_lowercase());
}
