//! A backend's upstream connections: HTTP/1.1 client connections (hyper's
//! `client::conn::http1`), kept idle in a per-backend pool between requests.
//!
//! Why not hyper-util's pooled client: it keys its pool by scheme and
//! authority (a SipHash and a map lookup per request), boxes every response
//! future, races a checkout against a connect and needs absolute URIs. One
//! backend is one address, so the pool here is a LIFO stack of idle senders:
//! a request pops one (the most recently used, so the oldest expire), and its
//! response body puts it back when it ends.
//!
//! A request sent on a reused connection that turns out to be closed before
//! the request went out is sent again on a new connection; hyper hands such a
//! request back untouched.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;
use tracing::debug;

/// Why a backend could not be asked (upstream side; the client gets 502).
#[derive(Debug, Error)]
pub(crate) enum UpstreamError {
    /// The TCP connection was refused or failed.
    #[error("cannot connect: {source}")]
    Connect { source: std::io::Error },
    /// The TCP connection did not open in time.
    #[error("connect timed out after {timeout_ms} ms")]
    ConnectTimeout { timeout_ms: u64 },
    /// The backend broke the exchange (reset, closed early, bad response).
    #[error("{source}")]
    Exchange { source: hyper::Error },
}

/// The idle connections of one backend and how to open new ones.
pub(crate) struct UpstreamPool {
    addr: Arc<str>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: http1::SendRequest<Incoming>,
    since: Instant,
}

/// A connection lent to one request; dropping it without [`release`]
/// closes it (the response did not end cleanly).
///
/// [`release`]: UpstreamConn::release
pub(crate) struct UpstreamConn {
    sender: http1::SendRequest<Incoming>,
    pool: Weak<UpstreamPool>,
}

// === impl UpstreamPool ===

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
        // Idle connections older than the idle timeout are closed even when
        // no request comes to take them; the sweeper ends with the pool.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&pool), idle_timeout));
        }
        pool
    }

    /// Sends `req` on an idle connection, or a new one. A request a closed
    /// idle connection handed back is sent once more, on a new connection.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, UpstreamConn), UpstreamError> {
        while let Some(mut sender) = self.pop_idle() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lend(sender))),
                Err(mut e) => match e.take_message() {
                    Some(back) => {
                        debug!(backend = %self.addr, error = %e.error(), "idle upstream connection was closed; trying another");
                        req = back;
                    }
                    None => {
                        return Err(UpstreamError::Exchange {
                            source: e.into_error(),
                        })
                    }
                },
            }
        }
        let mut sender = self.connect().await?;
        sender
            .send_request(req)
            .await
            .map(|resp| (resp, self.lend(sender)))
            .map_err(|source| UpstreamError::Exchange { source })
    }

    fn lend(self: &Arc<Self>, sender: http1::SendRequest<Incoming>) -> UpstreamConn {
        UpstreamConn {
            sender,
            pool: Arc::downgrade(self),
        }
    }

    fn pop_idle(&self) -> Option<http1::SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(entry) = idle.pop() {
            if !entry.sender.is_closed() && entry.since.elapsed() < self.idle_timeout {
                return Some(entry.sender);
            }
        }
        None
    }

    fn push_idle(&self, sender: http1::SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<http1::SendRequest<Incoming>, UpstreamError> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&*self.addr)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => return Err(UpstreamError::Connect { source }),
                Err(_) => {
                    return Err(UpstreamError::ConnectTimeout {
                        timeout_ms: self.connect_timeout.as_millis() as u64,
                    })
                }
            };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| UpstreamError::Exchange { source })?;
        let addr = self.addr.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                debug!(backend = %addr, error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Closes idle connections past the idle timeout.
    fn expire(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|e| !e.sender.is_closed() && e.since.elapsed() < self.idle_timeout);
    }
}

async fn sweep(pool: Weak<UpstreamPool>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => p.expire(),
            None => return,
        }
    }
}

// === impl UpstreamConn ===

impl UpstreamConn {
    /// The response this connection carried has ended: it may serve the
    /// next request.
    pub fn release(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.push_idle(self.sender);
        }
    }
}
