//! Data-plane errors: whether they came from upstream (a backend) or
//! downstream (a client), and whether retrying may help.

use std::net::SocketAddr;

use thiserror::Error;

/// Why the data plane could not do something.
#[derive(Debug, Error)]
pub enum ProxyError {
    /// A listener could not bind its port (downstream side; retry after the
    /// port is freed).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address it tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// An actor could not be spawned or answered nothing (internal; not
    /// retryable).
    #[error("data-plane actor {actor} failed: {reason}")]
    Actor {
        /// Which actor.
        actor: &'static str,
        /// What happened.
        reason: String,
    },
}

impl ProxyError {
    pub(crate) fn actor(actor: &'static str, reason: impl std::fmt::Display) -> Self {
        ProxyError::Actor {
            actor,
            reason: reason.to_string(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProxyError::Bind { .. })
    }
}

/// Why a forwarded request failed; decides the status the client gets.
#[derive(Debug, Error)]
pub(crate) enum ForwardError {
    /// No listener config for the port (should not happen once bound).
    #[error("no route for this listener")]
    NoRoute,
    /// The group has no backend that may take new work (downstream answer 503).
    #[error("no usable backend in group {group}")]
    NoBackend { group: String },
    /// The backend refused or reset the connection (upstream; 502).
    #[error("backend {backend} failed: {source}")]
    Upstream {
        backend: String,
        source: crate::upstream::UpstreamError,
    },
    /// The backend did not answer within the listener's request timeout
    /// (upstream; 504, R9).
    #[error("backend {backend} did not answer within {timeout_ms} ms")]
    Timeout { backend: String, timeout_ms: u64 },
    /// The backend's drain deadline came before the answer (500, R3).
    #[error("backend {backend} closed by drain deadline")]
    DrainDeadline { backend: String },
}

impl ForwardError {
    pub(crate) fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            ForwardError::NoRoute | ForwardError::NoBackend { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ForwardError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ForwardError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ForwardError::DrainDeadline { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable short code, also sent in `x-sluice-error`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ForwardError::NoRoute => "no_route",
            ForwardError::NoBackend { .. } => "no_backend",
            ForwardError::Upstream { .. } => "backend_failed",
            ForwardError::Timeout { .. } => "backend_timeout",
            ForwardError::DrainDeadline { .. } => "drain_deadline",
        }
    }
}
