//! [`UpstreamError`]: why a backend could not be asked or did not answer.

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
    /// A drain deadline came while the response body streamed: the
    /// client's connection ends after what arrived (R3).
    #[error("drain deadline reached mid-response")]
    DrainDeadline,
    /// The client's request body failed while it was being sent on
    /// (downstream cause: the client gets 400; never retried).
    #[error("client request body failed: {source}")]
    ClientBody {
        source: crate::http1::RequestBodyError,
    },
}
