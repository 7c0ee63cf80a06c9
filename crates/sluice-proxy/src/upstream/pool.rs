//! A backend's idle connections: a LIFO stack (the most recently used goes
//! out first, so the oldest reach the idle timeout and are closed), opened
//! on demand with a connect timeout.
//!
//! The stack sits behind a mutex taken twice per request (pop, push), held
//! for a `Vec` push or pop; the request's task is the only one touching its
//! connection in between.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::{HeaderValue, Request};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tracing::debug;

use super::exchange::{exchange, Conn, Outgoing};
use super::{Answer, UpstreamError};

/// The idle connections of one backend and how to open new ones.
pub(crate) struct UpstreamPool {
    addr: Arc<str>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
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
        let pool = Arc::new(UpstreamPool {
            addr,
            connect_timeout,
            idle_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
        });
        // Idle connections past the idle timeout are closed even when no
        // request comes to take them; the sweeper ends with the pool.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&pool), idle_timeout));
        }
        pool
    }

    /// Sends `req` (from the client at `client_ip`) on an idle connection,
    /// or a new one. When an idle
    /// connection turns out closed before the backend got the request, the
    /// request goes out again on the next one (while its body was not
    /// touched), as nginx and HAProxy retry.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client_ip: &HeaderValue,
    ) -> Result<Answer, UpstreamError> {
        let mut out = Outgoing::new(req, client_ip);
        while let Some(conn) = self.pop_idle() {
            match exchange(conn, &mut out, self).await {
                Ok(answer) => return Ok(answer),
                Err(f) if f.retryable => {
                    debug!(backend = %self.addr, error = %f.error, "idle upstream connection failed; trying another");
                }
                Err(f) => return Err(f.error),
            }
        }
        let conn = self.connect().await?;
        exchange(conn, &mut out, self).await.map_err(|f| f.error)
    }

    fn pop_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < self.idle_timeout && still_open(&entry.conn.io) {
                return Some(entry.conn);
            }
        }
        None
    }

    pub(super) fn push_idle(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let io = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&*self.addr))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(UpstreamError::Connect { source }),
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
        })
    }

    /// Closes idle connections past the idle timeout or closed by the
    /// backend.
    fn expire(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|e| e.since.elapsed() < self.idle_timeout && still_open(&e.conn.io));
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
