//! The demo/test backend: a slow HTTP server and a WebSocket echo server on
//! one port, like the two servers of the cloud-ALB connection-draining guide.
//!
//! Why: draining is only observable from the backend's side — which requests
//! it started, which it answered, which were cut off, which tunnels were
//! closed and with what code. [`DemoBackend`] therefore logs every event
//! (with a UTC timestamp, through `tracing`) and also records it in memory,
//! so end-to-end tests can assert on it and wait for it without sleeping.
//!
//! How: one accept loop hands each TCP connection to hyper's HTTP/1.1 server
//! (keep-alive on, upgrades on). Plain requests sleep for the configured
//! delay (or `?delay=250ms`) and answer `Hello from <name>`; `/health`
//! answers `ok` at once, or `503` once told to fail
//! ([`DemoBackend::fail_health`], `POST /admin/fail-health[?from=ip,ip]`,
//! undone by `POST /admin/pass-health`); `/status/<code>` answers that
//! code; a request with `Upgrade: websocket` is upgraded and
//! served by an echo loop. Every task lives in one [`tokio::task::JoinSet`],
//! so [`DemoBackend::shutdown`] (or dropping the backend) aborts them all;
//! drop guards turn "the future was dropped" into `RequestAborted`,
//! `WebSocketClosed` and `ConnectionClosed` events.
//!
//! The parts, which this file puts together (none of them imports it):
//! `event` (what is recorded), `state` (what the handle and the tasks
//! share, and the guard that records a connection's end), `http` (the slow
//! HTTP side, `/health`, `/admin/*`), `ws` (the echo loop), `response`
//! (plain-text answers) and `log` (how log lines word close codes and
//! durations).

mod event;
mod http;
mod log;
mod response;
mod state;
mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use event::{BackendEvent, Recorded};
use state::{describe, lock, BackendState, HealthMode};

/// How to run a [`DemoBackend`].
#[derive(Clone, Debug)]
pub struct DemoBackendConfig {
    /// Address to listen on; port 0 picks a free port (see
    /// [`DemoBackend::addr`]).
    pub listen: SocketAddr,
    /// Name used in the `Hello from <name>` body, the `x-backend` header and
    /// the log lines.
    pub name: String,
    /// How long a plain request waits before it is answered, unless the
    /// request carries `?delay=<humantime>`.
    pub delay: Duration,
}

impl DemoBackendConfig {
    /// A backend on `127.0.0.1:0` with no delay.
    pub fn local(name: impl Into<String>) -> DemoBackendConfig {
        DemoBackendConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            name: name.into(),
            delay: Duration::ZERO,
        }
    }
}

/// A running demo backend. Dropping it stops it, like [`DemoBackend::shutdown`]
/// but without waiting for the tasks to end.
pub struct DemoBackend {
    shared: Arc<BackendState>,
    addr: SocketAddr,
}

impl DemoBackend {
    /// Binds `config.listen` and starts serving.
    pub async fn start(config: DemoBackendConfig) -> std::io::Result<DemoBackend> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(BackendState {
            name: config.name,
            delay: config.delay,
            events: Mutex::new(Vec::new()),
            changed: Notify::new(),
            requests_started: AtomicU64::new(0),
            tasks: Mutex::new(Some(JoinSet::new())),
            shutting_down: AtomicBool::new(false),
            health: Mutex::new(HealthMode::Passing),
        });
        info!(
            "{} listening on {} (delay {})",
            shared.name,
            addr,
            humantime::format_duration(shared.delay)
        );
        shared.spawn(accept_loop(shared.clone(), listener));
        Ok(DemoBackend { shared, addr })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Makes `/health` answer `503` — to every prober (`from` empty) or only
    /// to probes from the given source addresses.
    pub fn fail_health(&self, from: &[IpAddr]) {
        *lock(&self.shared.health) = HealthMode::Failing(from.to_vec());
        info!("{} health fails for {}", self.shared.name, describe(from));
    }

    /// Makes `/health` answer `200 ok` again.
    pub fn pass_health(&self) {
        *lock(&self.shared.health) = HealthMode::Passing;
        info!("{} health passes", self.shared.name);
    }

    /// Every event recorded so far, oldest first.
    pub fn events(&self) -> Vec<Recorded> {
        lock(&self.shared.events).clone()
    }

    /// How many plain requests (not `/health`, not WebSocket upgrades) have
    /// started.
    pub fn requests_started(&self) -> u64 {
        self.shared.requests_started.load(Ordering::SeqCst)
    }

    /// Waits until an event matching `pred` has been recorded — including
    /// events recorded before the call — and returns the first such event,
    /// or `None` after `timeout`.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&BackendEvent) -> bool,
        timeout: Duration,
    ) -> Option<Recorded> {
        self.wait_for_matching(|r| pred(&r.event), timeout).await
    }

    /// Like [`DemoBackend::wait_for`], but only considers events recorded at
    /// or after `since` (e.g. an `Instant` taken just before an action).
    pub async fn wait_for_after(
        &self,
        since: Instant,
        pred: impl Fn(&BackendEvent) -> bool,
        timeout: Duration,
    ) -> Option<Recorded> {
        self.wait_for_matching(|r| r.at >= since && pred(&r.event), timeout)
            .await
    }

    async fn wait_for_matching(
        &self,
        pred: impl Fn(&Recorded) -> bool,
        timeout: Duration,
    ) -> Option<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = 0;
        loop {
            // Register interest before looking, so an event recorded between
            // the look and the wait still wakes us.
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let events = lock(&self.shared.events);
                if let Some(found) = events[seen..].iter().find(|r| pred(r)) {
                    return Some(found.clone());
                }
                seen = events.len();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Stops accepting, drops every open connection (in-flight requests are
    /// recorded as aborted, WebSockets and connections as closed) and waits
    /// until all of that is done. Returns every event recorded, including
    /// those the shutdown itself caused.
    pub async fn shutdown(self) -> Vec<Recorded> {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        let tasks = lock(&self.shared.tasks).take();
        if let Some(mut tasks) = tasks {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        info!("{} stopped", self.shared.name);
        self.events()
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        // Dropping a JoinSet aborts its tasks; this also breaks the
        // state -> JoinSet -> task -> state reference cycle.
        let tasks = lock(&self.shared.tasks).take();
        drop(tasks);
    }
}

impl std::fmt::Debug for DemoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoBackend")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(shared: Arc<BackendState>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                shared.spawn(http::serve_connection(shared.clone(), stream, peer));
            }
            Err(e) => {
                // Typically EMFILE; back off briefly instead of spinning.
                warn!("{} accept failed: {}", shared.name, e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
