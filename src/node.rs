//! Assembles one node: the admin token, the data plane, Raft and its sled
//! store (restored from the data dir), the bridge between them
//! ([`sluice_bridge`]: the restored state applied to the data plane before
//! any listener accepts traffic, C5, and the data plane's drain, health and
//! bind reports fed back as commands), and the admin API (which also serves
//! the Raft RPCs).
//!
//! Stopping is bounded by `node.stop_timeout`: the admin API stops taking
//! connections and its open requests get half of it, then Raft and the data
//! plane stop; what is still running when it runs out is logged and the
//! process exits anyway (a watchdog thread makes sure of it). A node whose
//! Raft core stopped (openraft stops it for good on a storage error such as
//! a full disk) reports not ready, logs the cause once and stops the same
//! way, exiting with [`EXIT_RAFT_STOPPED`] (75) so that its supervisor
//! restarts it: a new process reopens the store and replays it (C5).

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sluice_admin::auth::{self, TokenSource};
use sluice_admin::{router, AdminContext, CommandStore};
use sluice_bridge::Bridge;
use sluice_proxy::{DataPlane, ProxySettings};
use sluice_raft::{ClusterConfig, RaftNode};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::NodeConfig;

/// Runs a node until Ctrl-C or SIGTERM (then returns), or until its Raft
/// core stops (then the process exits with [`EXIT_RAFT_STOPPED`]); either
/// way the stop takes at most `node.stop_timeout`.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let node = config.node_id;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
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
    // The admin port first: a node that cannot be administered does not start.
    let admin = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on admin address {}", config.admin_listen))?;

    let settings = ProxySettings {
        node_id: node,
        data_address: config.data_address,
        header_read_timeout: config.header_read_timeout,
        max_header_bytes: config.max_header_bytes,
        upstream_connect_timeout: config.upstream_connect_timeout,
        upstream_idle_timeout: config.upstream_idle_timeout,
        upstream_max_idle_per_backend: config.upstream_max_idle_per_backend,
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
        store,
    }));
    let (stop_admin, admin_stopping) = oneshot::channel::<()>();
    let mut admin_server = tokio::spawn(
        axum::serve(admin, app)
            .with_graceful_shutdown(async {
                let _ = admin_stopping.await;
            })
            .into_future(),
    );
    // The data plane's own stop is awaited once, here; `dp_stopped` tells
    // everyone else.
    let (dp_stopped_tx, mut dp_stopped) = watch::channel(false);
    let dp = data_plane.clone();
    tokio::spawn(async move {
        dp.stopped().await;
        let _ = dp_stopped_tx.send(true);
    });
    info!(admin = %config.admin_listen, advertise = %config.advertise, data_address = %config.data_address, "sluice node ready");

    let cause = tokio::select! {
        _ = shutdown_signal() => Stop::Signal,
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
    let code = match &cause {
        Stop::Signal => {
            info!(stop_timeout = %humantime::format_duration(config.stop_timeout), "shutting down");
            0
        }
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
    // Whatever hangs below (or dropping the runtime after it), the process
    // ends shortly after its stop timeout.
    arm_watchdog(config.stop_timeout + WATCHDOG_MARGIN, code.max(1));
    let mut limit = config.stop_timeout;
    if matches!(cause, Stop::RaftStopped(_)) {
        // Up, not ready, for a quarter of the stop timeout: health checks
        // and `cluster status` see why before the node goes away; the data
        // plane keeps routing by its last state meanwhile (C4).
        let grace = config.stop_timeout / 4;
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = shutdown_signal() => info!("stopping at once on request"),
        }
        limit -= grace;
    }
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
    if !still_running.is_empty() {
        error!(
            stop_timeout = %humantime::format_duration(config.stop_timeout),
            still_running = %still_running.join(", "),
            "the node did not stop within its stop timeout; exiting anyway"
        );
        std::process::exit(code.max(1));
    }
    match cause {
        Stop::Signal => Ok(()),
        Stop::RaftStopped(_) => std::process::exit(EXIT_RAFT_STOPPED),
        Stop::Failed(why) | Stop::AdminEnded(why) => anyhow::bail!(why),
    }
}

/// Exit code of a node whose Raft core stopped (a storage failure such as
/// a full disk): restart it (EX_TEMPFAIL).
pub const EXIT_RAFT_STOPPED: i32 = 75;

/// How long after the stop timeout the watchdog ends the process when the
/// stop sequence itself is wedged.
const WATCHDOG_MARGIN: Duration = Duration::from_secs(1);

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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
