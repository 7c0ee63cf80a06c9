//! A backend's idle connections: a LIFO stack (the most recently used goes
//! out first, so the oldest reach the idle timeout and are closed), opened
//! on demand with a connect timeout. An idle connection the backend closed
//! is seen (and skipped) before a request is written to it.
//!
//! The stack sits behind a mutex taken twice per request (pop, push), held
//! for a `Vec` push or pop; the request's task is the only one touching its
//! connection in between.
//!
//! A connect that fails for a reason of this node's own (no descriptor,
//! memory or source port) is [`UpstreamError::LocalTrouble`]: not the
//! backend's failure, and logged rate-limited as this node's problem.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;
use tracing::warn;

use crate::local_trouble::LocalTrouble;
use crate::log_limit::{LogLimit, LOG_EVERY};

use super::conn::{Conn, OpenCount};
use super::error::UpstreamError;

/// The idle connections of one backend and how to open new ones.
pub(crate) struct UpstreamPool {
    pub(super) addr: Arc<str>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
    /// Connections open now, in use or idle (each [`Conn`] counts itself).
    open: Arc<AtomicU64>,
    /// Whether the sweeper runs: it starts with the first idle connection,
    /// so a backend that never had one costs no task.
    sweeping: AtomicBool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl UpstreamPool {
    pub fn new(
        addr: Arc<str>,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Arc<Self> {
        Arc::new(UpstreamPool {
            addr,
            connect_timeout,
            idle_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
            open: Arc::new(AtomicU64::new(0)),
            sweeping: AtomicBool::new(false),
        })
    }

    /// Connections to the backend open now, in use or idle.
    pub fn open_connections(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub(super) fn pop_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < self.idle_timeout && still_open(&entry.conn.io) {
                return Some(entry.conn);
            }
        }
        None
    }

    pub(super) fn push_idle(self: &Arc<Self>, mut conn: Conn) {
        // Idle connections past the idle timeout are closed even when no
        // request comes to take them; the sweeper ends with the pool.
        if !self.sweeping.load(Ordering::Relaxed) && !self.sweeping.swap(true, Ordering::Relaxed) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(sweep(Arc::downgrade(self), self.idle_timeout));
            }
        }
        // A waiting connection keeps no read buffer: the one it read its
        // last answer with (8 KiB) would stay allocated as long as it
        // waits, up to `max_idle` of them per backend after a burst. The
        // next exchange takes a fresh one.
        conn.buf = BytesMut::new();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    pub(super) async fn connect(&self) -> Result<Conn, UpstreamError> {
        let io = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&*self.addr))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(match LocalTrouble::of(&source) {
                    Some(trouble) => {
                        note_local_trouble(&self.addr, trouble, &source);
                        UpstreamError::LocalTrouble { trouble, source }
                    }
                    None => UpstreamError::Connect { source },
                })
            }
            Err(_) => {
                return Err(UpstreamError::ConnectTimeout {
                    timeout_ms: self.connect_timeout.as_millis() as u64,
                })
            }
        };
        let _ = io.set_nodelay(true);
        Ok(Conn {
            io,
            buf: BytesMut::new(),
            _counted: OpenCount::new(&self.open),
        })
    }

    /// Closes idle connections past the idle timeout or closed by the
    /// backend.
    fn expire(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|e| e.since.elapsed() < self.idle_timeout && still_open(&e.conn.io));
    }
}

/// Logs a connect this node could not make, at most once per
/// [`LOG_EVERY`] for all backends together (they share the node's
/// descriptors and ports).
fn note_local_trouble(backend: &str, trouble: LocalTrouble, error: &std::io::Error) {
    static LIMIT: LogLimit = LogLimit::new(LOG_EVERY);
    if let Some(left_out) = LIMIT.admit() {
        warn!(
            backend,
            %trouble,
            %error,
            left_out,
            "cannot connect to a backend: this node is out of resources; the backend is not at fault"
        );
    }
}

/// Whether an idle connection is still open: the backend neither closed it
/// nor sent anything unasked. Costs no system call while the runtime has
/// seen no event on the socket.
fn still_open(io: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

async fn sweep(pool: Weak<UpstreamPool>, every: Duration) {
    let mut tick = tokio::time::interval((every / 2).max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => p.expire(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    // The sweeper starts with the first idle connection (none for a pool
    // that never had one) and closes it once past the idle timeout,
    // though no request comes to take it.
    #[tokio::test]
    async fn the_first_idle_connection_starts_the_sweeper_that_closes_it() {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: Arc<str> = backend.local_addr().unwrap().to_string().into();
        let held = tokio::spawn(async move {
            let (s, _) = backend.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let pool = UpstreamPool::new(addr, Duration::from_secs(1), Duration::from_millis(200), 8);
        assert!(!pool.sweeping.load(Ordering::Relaxed), "no task before");
        let conn = pool.connect().await.unwrap();
        assert_eq!(pool.open_connections(), 1);
        pool.push_idle(conn);
        assert!(pool.sweeping.load(Ordering::Relaxed));
        // The sweeper ticks every second at the least.
        let until = Instant::now() + Duration::from_secs(5);
        while pool.open_connections() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pool.open_connections(), 0, "closed by the sweeper");
        held.abort();
    }
}
