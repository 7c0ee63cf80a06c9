//! Assembles one node: the admin token, the data plane, Raft and its sled
//! store (restored from the data dir), the bridge between them
//! ([`sluice_bridge`]: the restored state applied to the data plane before
//! any listener accepts traffic, C5, and the data plane's drain, health and
//! bind reports fed back as commands), and the admin API (which also serves
//! the Raft RPCs; over TLS only when the config has `[admin.tls]`, and then
//! the members talk to each other over TLS too).
//!
//! SIGTERM or Ctrl-C drains the node first (N1): the data plane drains at
//! once on its own word (not ready, accept grace, keep-alive ended, the
//! deadline `node.stop_timeout` away) and the drain is proposed to the
//! cluster as this process's stop, so that the other members show it; when
//! the cluster does not answer the node drains alone (C4). The node goes on
//! when it holds nothing after the grace, at the deadline (plus the
//! listeners' time to send their 500s and Close frames), or at a second
//! signal (which moves the deadline to now). Then the admin API stops taking
//! connections and its open requests get half of [`STOP_REST`], and Raft
//! (flushing its store) and the data plane stop within the rest; what is
//! still running then is logged and the process exits anyway (a watchdog
//! thread makes sure of it). SIGHUP reloads the config file's log level and
//! format and the stop timeout, and names the changes that need a restart.
//!
//! A node whose Raft core stopped (openraft stops it for good on a storage
//! error such as a full disk) reports not ready, logs the cause once and
//! stops within `node.stop_timeout`, exiting with [`EXIT_RAFT_STOPPED`] (75)
//! so that its supervisor restarts it: a new process reopens the store and
//! replays it (C5).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sluice_admin::auth::{self, TokenSource};
use sluice_admin::{router, AdminContext, CommandStore};
use sluice_bridge::Bridge;
use sluice_model::{Applied, Command, NodeDrainReason};
use sluice_proxy::{
    AccessLog, AccessLogFormat, AccessLogOutput, AccessLogSettings, DataPlane, ProxySettings,
};
use sluice_raft::tls::MemberTls;
use sluice_raft::{ClusterConfig, RaftNode};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{LogFormat, NodeConfig};
use crate::logging::LogReload;

/// What SIGHUP works with: the config file the node started from (none:
/// the embedded default) and the log subscriber's handle.
pub struct Reload {
    pub file: Option<PathBuf>,
    pub log: LogReload,
}

/// Runs a node until Ctrl-C or SIGTERM (then it drains and returns), or
/// until its Raft core stops (then the process exits with
/// [`EXIT_RAFT_STOPPED`]).
pub async fn run(config: NodeConfig, reload: Reload) -> anyhow::Result<()> {
    let node = config.node_id;
    let incarnation = new_incarnation();
    // Heard from now on: a stop asked while the node starts is kept.
    let mut signals = StopSignals::new();
    private_data_dir(&config.data_dir)?;
    let (token, source) = auth::resolve_token(
        config.token.clone(),
        std::env::var("SLUICE_TOKEN").ok(),
        &config.data_dir,
    )
    .context("cannot set up the admin token")?;
    match &source {
        TokenSource::Generated(p) => {
            info!("generated an admin token; it is stored in {}", p.display())
        }
        TokenSource::File(p) => info!("admin token read from {}", p.display()),
        TokenSource::Env => info!("admin token taken from SLUICE_TOKEN"),
        TokenSource::Config => info!("admin token taken from the config file"),
    }
    // Checked at load already; loaded again for this process's configs.
    let tls = match &config.admin_tls {
        Some(files) => Some(MemberTls::load(files).map_err(|e| {
            anyhow::anyhow!(
                "admin.tls.{} = {}: {e}",
                e.file().field(),
                e.path().display()
            )
        })?),
        None => None,
    };
    // The admin port first: a node that cannot be administered does not start.
    let admin = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on admin address {}", config.admin_listen))?;

    let access_log = start_access_log(&config)?;
    let settings = ProxySettings {
        node_id: node,
        data_address: config.data_address,
        header_read_timeout: config.header_read_timeout,
        max_header_bytes: config.max_header_bytes,
        upstream_connect_timeout: config.upstream_connect_timeout,
        upstream_idle_timeout: config.upstream_idle_timeout,
        upstream_max_idle_per_backend: config.upstream_max_idle_per_backend,
        incarnation,
        accept_grace: config.accept_grace,
        access_log: access_log.clone(),
    };
    let (events, event_queue) = sluice_bridge::events();
    let data_plane = Arc::new(
        DataPlane::start(settings, events)
            .await
            .context("cannot start the data plane")?,
    );
    let raft = Arc::new(
        RaftNode::start(
            &config.data_dir.join("raft"),
            ClusterConfig {
                node_id: node,
                advertise: config.advertise.clone(),
                token: token.clone(),
                heartbeat_interval: config.heartbeat_interval,
                election_timeout: config.election_timeout,
                snapshot_every: config.snapshot_every,
                fault_injection: config.fault_injection,
                tls: tls.clone(),
            },
        )
        .await
        .context("cannot start raft")?,
    );
    let bridge = Bridge::start(raft.clone(), data_plane.clone(), event_queue)
        .await
        .context("cannot restore the node's state")?;
    if config.bootstrap && !raft.is_initialized().await? {
        raft.init()
            .await
            .context("cannot initialise a one-node cluster")?;
        info!("bootstrapped a one-node cluster");
    }
    let store = Arc::new(CommandStore::new(bridge));

    let app = router(Arc::new(AdminContext {
        node_id: node,
        token,
        store: store.clone(),
    }));
    let (stop_admin, admin_stopping) = oneshot::channel::<()>();
    let mut admin_server = tokio::spawn(sluice_admin::serve(
        admin,
        app,
        tls.as_ref().map(MemberTls::server_config),
        async {
            let _ = admin_stopping.await;
        },
    ));
    // The data plane's own stop is awaited once, here; `dp_stopped` tells
    // everyone else.
    let (dp_stopped_tx, mut dp_stopped) = watch::channel(false);
    let dp = data_plane.clone();
    tokio::spawn(async move {
        dp.stopped().await;
        let _ = dp_stopped_tx.send(true);
    });
    info!(admin = %config.admin_listen, advertise = %config.advertise, admin_tls = tls.is_some(), data_address = %config.data_address, incarnation, "sluice node ready");
    // Milliseconds; SIGHUP may change it.
    let stop_timeout_ms = Arc::new(AtomicU64::new(config.stop_timeout.as_millis() as u64));
    tokio::spawn(reload_on_sighup(
        reload,
        config.clone(),
        stop_timeout_ms.clone(),
    ));

    let cause = tokio::select! {
        _ = signals.recv() => Stop::Signal,
        why = raft.wait_stopped() => Stop::RaftStopped(why),
        r = &mut admin_server => Stop::AdminEnded(match r {
            Ok(Ok(())) => "the admin server ended".to_owned(),
            Ok(Err(e)) => format!("the admin server failed: {e}"),
            Err(e) => format!("the admin server failed: {e}"),
        }),
        _ = dp_stopped.wait_for(|s| *s) => Stop::Failed("the data plane stopped unexpectedly".to_owned()),
    };
    // A finished task must not be awaited again.
    let admin_server = (!matches!(cause, Stop::AdminEnded(_))).then_some(admin_server);
    let stop_timeout = Duration::from_millis(stop_timeout_ms.load(Ordering::Relaxed));
    let code = match &cause {
        Stop::Signal => 0,
        Stop::RaftStopped(why) => {
            // /readyz answers 503 `raft_stopped` from now on.
            error!(
                cause = %why,
                exit_code = EXIT_RAFT_STOPPED,
                "this node's Raft core stopped and cannot restart in this process; \
                 the node is not ready and exits so that its supervisor starts it again"
            );
            EXIT_RAFT_STOPPED
        }
        Stop::Failed(why) | Stop::AdminEnded(why) => {
            error!(cause = %why, "stopping the node");
            1
        }
    };
    let limit = match &cause {
        Stop::Signal => {
            // Whatever hangs below (or dropping the runtime after it), the
            // process ends shortly after its drain and stop bounds.
            arm_watchdog(stop_timeout + DRAIN_CLOSE + STOP_REST + WATCHDOG_MARGIN, 1);
            drain_to_stop(&store, &data_plane, incarnation, stop_timeout, &mut signals).await;
            STOP_REST
        }
        Stop::RaftStopped(_) => {
            arm_watchdog(stop_timeout + WATCHDOG_MARGIN, code);
            // Up, not ready, for a quarter of the stop timeout: health
            // checks and `cluster status` see why before the node goes
            // away; the data plane keeps routing by its last state
            // meanwhile (C4).
            let grace = stop_timeout / 4;
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = signals.recv() => info!("stopping at once on request"),
            }
            stop_timeout - grace
        }
        Stop::Failed(_) | Stop::AdminEnded(_) => {
            arm_watchdog(stop_timeout + WATCHDOG_MARGIN, code.max(1));
            stop_timeout
        }
    };
    let still_running = stop_within(
        limit,
        StopParts {
            stop_admin,
            admin_server,
            raft,
            data_plane,
            dp_stopped,
        },
    )
    .await;
    if let Some(log) = &access_log {
        log.close(ACCESS_LOG_CLOSE);
    }
    if !still_running.is_empty() {
        error!(
            waited = %humantime::format_duration(limit),
            still_running = %still_running.join(", "),
            "the node did not stop in time; exiting anyway"
        );
        std::process::exit(code.max(1));
    }
    info!(exit_code = code, "node stopped");
    match cause {
        Stop::Signal => Ok(()),
        Stop::RaftStopped(_) => std::process::exit(EXIT_RAFT_STOPPED),
        Stop::Failed(why) | Stop::AdminEnded(why) => anyhow::bail!(why),
    }
}

/// How long a stopping node waits for its access log's last lines to be
/// written.
const ACCESS_LOG_CLOSE: Duration = Duration::from_secs(1);

/// Starts the access log `[access_log]` asks for (none when disabled): in
/// its own format or the node's log format, to standard output or its file.
fn start_access_log(config: &NodeConfig) -> anyhow::Result<Option<Arc<AccessLog>>> {
    let Some(c) = &config.access_log else {
        return Ok(None);
    };
    let format = match c.format.unwrap_or(config.log_format) {
        LogFormat::Json => AccessLogFormat::Json,
        LogFormat::Text => AccessLogFormat::Text,
    };
    let output = c
        .path
        .clone()
        .map_or(AccessLogOutput::Stdout, AccessLogOutput::File);
    let log = AccessLog::start(AccessLogSettings {
        node: config.node_id,
        format,
        output,
        query: c.query,
    })
    .with_context(|| match &c.path {
        Some(p) => format!("access_log.path = {}: cannot open it", p.display()),
        None => "cannot start the access log".to_owned(),
    })?;
    Ok(Some(log))
}

/// Exit code of a node whose Raft core stopped (a storage failure such as
/// a full disk): restart it (EX_TEMPFAIL).
pub const EXIT_RAFT_STOPPED: i32 = 75;

/// How long after its bounds the watchdog ends the process when the stop
/// sequence itself is wedged.
const WATCHDOG_MARGIN: Duration = Duration::from_secs(1);

/// After a stopping node's drain: the bound on stopping the admin API, Raft
/// (which flushes its store) and the data plane.
pub const STOP_REST: Duration = Duration::from_secs(5);

/// Past the drain deadline: the listeners' time to send their 500s and
/// Close frames before the node goes on stopping.
const DRAIN_CLOSE: Duration = Duration::from_secs(2);

/// Longest a stopping node waits for the cluster to record its stop before
/// it drains on its own word alone (it drains from the start either way).
const RECORD_STOP_WITHIN: Duration = Duration::from_secs(3);

/// Longest a drained, stopping node waits for the cluster to show it
/// drained.
const REPORT_DRAINED_WITHIN: Duration = Duration::from_secs(1);

/// A number that tells this process from the node's earlier and later ones:
/// a stop recorded by one of them does not drain this one.
fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Seeded from the OS's randomness per process.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(sluice_clock::now_ms());
    h.write_u32(std::process::id());
    h.finish()
}

/// A stopping node's drain (N1): drains the data plane at once with the
/// deadline `timeout` away, has the cluster record it as this process's
/// stop (in the background: without an answer the node drains alone, C4),
/// and returns when the node holds nothing after its accept grace, when the
/// deadline passed (plus [`DRAIN_CLOSE`]), or at once after a second signal
/// (which moves the deadline to now first).
async fn drain_to_stop(
    store: &Arc<CommandStore>,
    data_plane: &Arc<DataPlane>,
    incarnation: u64,
    timeout: Duration,
    signals: &mut StopSignals,
) {
    let timeout_ms = timeout.as_millis() as u64;
    let deadline = sluice_clock::now_ms() + timeout_ms;
    info!(
        stop_timeout = %humantime::format_duration(timeout),
        "stopping: draining this node (not ready, accepting for the grace, closing what is left at the deadline)"
    );
    if let Err(e) = data_plane.drain_locally(deadline).await {
        warn!(error = %e, "could not drain the data plane; stopping without a drain");
        return;
    }
    let record = store.clone();
    let node = store.node().id();
    let recording = tokio::spawn(async move {
        let proposed = record.submit(Command::DrainNode {
            node,
            timeout_ms,
            reason: NodeDrainReason::Stopping,
            incarnation: Some(incarnation),
            at: 0,
        });
        match tokio::time::timeout(RECORD_STOP_WITHIN, proposed).await {
            Ok(Ok(s)) => match s.applied {
                Applied::Draining {
                    drain,
                    deadline,
                    started,
                } => info!(
                    %drain,
                    deadline_ms = deadline,
                    started,
                    "the cluster recorded this node's stop (or the drain it was in)"
                ),
                other => info!(applied = ?other, "the cluster recorded this node's stop"),
            },
            Ok(Err(e)) => {
                warn!(error = %e, "the cluster did not record this node's stop; draining on its own")
            }
            Err(_) => warn!(
                waited = ?RECORD_STOP_WITHIN,
                "the cluster did not record this node's stop in time; draining on its own"
            ),
        }
    });
    let mut drain = data_plane.watch_node_drain();
    let finished = drain.wait_for(|d| d.is_some_and(|d| d.finished));
    let hard_stop = tokio::time::sleep(timeout + DRAIN_CLOSE);
    tokio::select! {
        _ = finished => {
            info!("drained: no client connection left");
            // The other members show "drained" before the node goes (its
            // report is on its way); a short wait, skipped without a
            // cluster.
            let me = store.node().id();
            let recorded = async {
                let mut applied = store.bridge().applied();
                loop {
                    let state = store.current();
                    match state.node_drains.get(&me) {
                        Some(d) if d.finished => return,
                        Some(_) => {}
                        None => return,
                    }
                    if applied.changed().await.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(REPORT_DRAINED_WITHIN, recorded).await;
        }
        _ = hard_stop => info!("drain deadline passed; stopping with what is left closed"),
        _ = signals.recv() => {
            info!("second stop signal: closing what is left now");
            if data_plane.drain_locally(sluice_clock::now_ms()).await.is_ok() {
                let mut drain = data_plane.watch_node_drain();
                let _ = tokio::time::timeout(
                    DRAIN_CLOSE,
                    drain.wait_for(|d| d.is_some_and(|d| d.finished)),
                )
                .await;
            }
        }
    }
    if !recording.is_finished() {
        recording.abort();
        warn!(
            "the cluster did not record this node's stop before it drained; it drained on its own"
        );
    }
}

/// Reloads the config file on each SIGHUP: the log level and format and
/// the stop timeout take effect at once; other changes are named as
/// needing a restart. A file that fails validation changes nothing.
async fn reload_on_sighup(reload: Reload, mut current: NodeConfig, stop_timeout: Arc<AtomicU64>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            warn!("cannot listen for SIGHUP; reloading is off");
            return;
        };
        while hup.recv().await.is_some() {
            let Some(path) = &reload.file else {
                info!("SIGHUP: this node runs the embedded default config; nothing to reload");
                continue;
            };
            let env_format = std::env::var(crate::config::LOG_FORMAT_ENV).ok();
            let loaded = NodeConfig::load(path).and_then(|mut c| {
                c.override_log_format(env_format.as_deref())?;
                Ok(c)
            });
            let new = match loaded {
                Ok(c) => c,
                Err(e) => {
                    error!(error = %e, "SIGHUP: config not reloaded; the node runs as before");
                    continue;
                }
            };
            if let Err(e) = reload.log.set(&new.log_level, new.log_format) {
                error!(error = %e, "SIGHUP: could not change the log settings");
                continue;
            }
            stop_timeout.store(new.stop_timeout.as_millis() as u64, Ordering::Relaxed);
            let changes = current.reload_changes(&new);
            info!(
                file = %path.display(),
                log_level = %new.log_level,
                log_format = ?new.log_format,
                stop_timeout = %humantime::format_duration(new.stop_timeout),
                applied = %changes.applied.join(", "),
                need_restart = %changes.need_restart.join(", "),
                "SIGHUP: config reloaded"
            );
            current = new;
        }
    }
    #[cfg(not(unix))]
    let _ = (reload, current, stop_timeout);
}

/// Why a node stops.
enum Stop {
    /// SIGTERM or Ctrl-C.
    Signal,
    /// Its Raft core stopped, for this reason.
    RaftStopped(String),
    /// The data plane ended on its own.
    Failed(String),
    /// The admin server ended on its own.
    AdminEnded(String),
}

/// What the stop sequence stops.
struct StopParts {
    stop_admin: oneshot::Sender<()>,
    /// `None` when it ended already.
    admin_server: Option<JoinHandle<std::io::Result<()>>>,
    raft: Arc<RaftNode>,
    data_plane: Arc<DataPlane>,
    dp_stopped: watch::Receiver<bool>,
}

/// Stops the admin API (no new connections; open requests get up to half
/// of `limit`, the data plane serving meanwhile, then they are cut), then
/// Raft and the data plane together, all within `limit`. Returns what was
/// still running when `limit` ran out (empty when everything stopped).
async fn stop_within(limit: Duration, parts: StopParts) -> Vec<&'static str> {
    let StopParts {
        stop_admin,
        admin_server,
        raft,
        data_plane,
        mut dp_stopped,
    } = parts;
    let start = Instant::now();
    let deadline = start + limit;
    let _ = stop_admin.send(());
    if let Some(mut admin_server) = admin_server {
        let drained = tokio::time::timeout_at((start + limit / 2).into(), &mut admin_server).await;
        if drained.is_err() {
            // E.g. a client that stalled mid-request, or a request into a
            // wedged Raft core: their connections end with the process.
            warn!(
                waited = %humantime::format_duration(limit / 2),
                "admin API requests still open; closing them"
            );
            admin_server.abort();
        }
    }
    let raft_stop = tokio::time::timeout_at(deadline.into(), raft.shutdown());
    let dp_stop = tokio::time::timeout_at(deadline.into(), async {
        data_plane.stop().await;
        let _ = dp_stopped.wait_for(|s| *s).await;
    });
    let (raft_done, dp_done) = tokio::join!(raft_stop, dp_stop);
    let mut still_running = Vec::new();
    if raft_done.is_err() {
        still_running.push("the Raft core");
    }
    if dp_done.is_err() {
        still_running.push("the data plane");
    }
    still_running
}

/// Ends the process with `code` after `after` unless it ended before: the
/// bound that holds even when the async runtime is wedged.
fn arm_watchdog(after: Duration, code: i32) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        error!(
            waited = %humantime::format_duration(after),
            "the node is still running after its stop timeout; exiting"
        );
        std::process::exit(code);
    });
}

/// SIGTERM and SIGINT (Ctrl-C), heard from the moment this is made: a
/// second signal that comes while the first is handled is not lost.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The next stop signal.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => {}
                _ = next(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Creates the data dir for this user only (mode 0700), or tightens an
/// existing one that others could enter (with a warning): it holds the
/// certificates' private keys (in the Raft log and snapshots) and the
/// admin token.
fn private_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("cannot read data dir {}", dir.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make data dir {} private", dir.display()))?;
        warn!(
            "data dir {} had mode {mode:o}, open to other users; set it to 700: it holds certificate keys and the admin token",
            dir.display()
        );
    }
    Ok(())
}
