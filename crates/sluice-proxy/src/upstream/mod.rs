//! The upstream side of a forwarded request: HTTP/1.1 connections to one
//! backend, kept idle in a per-backend pool between requests.
//!
//! Why our own client: hyper's client runs each connection in a task of its
//! own and hands every request and response across channels; a proxy that
//! already runs one task per client connection pays two extra task wake-ups
//! and a few allocations per request for it. Here the request's own task
//! writes the request head and reads the response head on the upstream
//! socket, and the response body reads the rest as the client side pulls it.
//! A small answer read together with its head is complete before the client
//! sees it, and its connection is back in the pool at once.
//!
//! - [`pool`]: idle connections (a LIFO stack per backend), connecting, and
//!   the one resend a request may get ([`exchange::Failed::resend`] says
//!   when: never twice, never a non-idempotent request that went out).
//! - [`exchange`]: one exchange on one connection: the head out, the body
//!   out while the answer is read (early answers), the answer's head in.
//! - [`body`]: the response body, framed by length, chunks or close, with
//!   the backend's silence bounded.

mod body;
mod exchange;
#[cfg(test)]
mod head_properties;
mod pool;

pub(crate) use body::UpstreamBody;
pub(crate) use pool::UpstreamPool;

use std::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;

/// Why a backend could not be asked or did not answer properly (upstream
/// side; the client gets 502, or 503 when this node itself is out of
/// resources).
#[derive(Debug, Error)]
pub(crate) enum UpstreamError {
    /// The TCP connection was refused or failed.
    #[error("cannot connect: {source}")]
    Connect { source: std::io::Error },
    /// This node could not open a connection for a reason of its own (no
    /// descriptor, memory or source port, N3): the backend was not tried
    /// and is not at fault (the client gets 503).
    #[error("this node is out of resources ({trouble}); the backend was not tried")]
    LocalTrouble {
        trouble: crate::local_trouble::LocalTrouble,
        source: std::io::Error,
    },
    /// The TCP connection did not open in time.
    #[error("connect timed out after {timeout_ms} ms")]
    ConnectTimeout { timeout_ms: u64 },
    /// Reading or writing the connection failed.
    #[error("connection failed: {source}")]
    Io { source: std::io::Error },
    /// The backend closed the connection before a complete response head.
    #[error("connection closed before a response")]
    Closed,
    /// The response head is not valid HTTP/1.x.
    #[error("invalid response: {reason}")]
    Invalid { reason: &'static str },
    /// The backend stayed silent longer than the request timeout while it
    /// sent a response body.
    #[error("response body stalled for {idle_ms} ms")]
    BodyStalled { idle_ms: u64 },
    /// The client's request body failed while it was being sent on
    /// (downstream cause: the client gets 400; never retried).
    #[error("client request body failed: {source}")]
    ClientBody {
        source: crate::http1::RequestBodyError,
    },
}

/// Where a backend's interim answers (1xx other than `101`) go while the
/// final answer is awaited: the client (RFC 9110 §15.2: a proxy forwards
/// them).
pub(crate) trait InterimSink: Sync {
    /// Writes one interim answer's head (status line, headers, empty line)
    /// to the client, or leaves it out if the client cannot take it now.
    fn forward(&self, head: &[u8]) -> impl std::future::Future<Output = ()> + Send;
}

/// Where a request's exchange stands, for telling whose silence a request
/// timeout ended: the client's (its body) or the backend's (its answer).
/// Lives on the request's stack; only the request's own task touches it.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    waiting_for_client: AtomicBool,
}

impl Progress {
    /// Whether the exchange is waiting for more of the client's body.
    pub fn waiting_for_client(&self) -> bool {
        self.waiting_for_client.load(Ordering::Relaxed)
    }

    fn set_waiting_for_client(&self, waiting: bool) {
        self.waiting_for_client.store(waiting, Ordering::Relaxed);
    }
}

/// What a backend answered.
pub(crate) enum Answer {
    /// A response; its body reads the rest from the connection.
    Response(http::Response<UpstreamBody>),
    /// `101 Switching Protocols`: the socket now belongs to a tunnel, with
    /// the bytes the backend sent after the head (they go first).
    Switching(http::Response<()>, tokio::net::TcpStream, bytes::Bytes),
}
