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
//! - [`pool`]: idle connections (a LIFO stack per backend), connecting, the
//!   retry of a request a stale idle connection never answered.
//! - [`exchange`]: one request/response head exchange on one connection.
//! - [`body`]: the response body, framed by length, chunks or close.

mod body;
mod exchange;
mod pool;

pub(crate) use body::UpstreamBody;
pub(crate) use pool::UpstreamPool;

use thiserror::Error;

/// Why a backend could not be asked or did not answer properly (upstream
/// side; the client gets 502).
#[derive(Debug, Error)]
pub(crate) enum UpstreamError {
    /// The TCP connection was refused or failed.
    #[error("cannot connect: {source}")]
    Connect { source: std::io::Error },
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
    /// The client's request body failed while it was being sent on
    /// (downstream cause; not retryable).
    #[error("client request body failed: {source}")]
    ClientBody { source: hyper::Error },
}

/// What a backend answered.
pub(crate) enum Answer {
    /// A response; its body reads the rest from the connection.
    Response(http::Response<UpstreamBody>),
    /// `101 Switching Protocols`: the socket now belongs to a tunnel, with
    /// the bytes the backend sent after the head (they go first).
    Switching(http::Response<()>, tokio::net::TcpStream, bytes::Bytes),
}
