//! Data-plane errors: whether they came from upstream (a backend) or
//! downstream (a client), and whether retrying may help.

use std::net::SocketAddr;

use thiserror::Error;

/// What drained, when a drain deadline cut a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainCause {
    /// The backend was removed (or failed its health checks).
    Backend,
    /// The listener was removed.
    Listener,
    /// This node drains itself (N1).
    Node,
}

impl std::fmt::Display for DrainCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DrainCause::Backend => "backend drained",
            DrainCause::Listener => "listener drained",
            DrainCause::Node => "node drained",
        })
    }
}

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
    /// This node ran out of resources (descriptors, memory, source ports)
    /// before it could reach the backend: the backend was not tried and is
    /// not at fault (503, N3).
    #[error("this node is out of resources ({trouble}) and could not connect to backend {backend}; the backend was not tried")]
    NodeOutOfResources {
        backend: String,
        trouble: crate::local_trouble::LocalTrouble,
    },
    /// The backend did not answer within the listener's request timeout
    /// (upstream; 504, R9).
    #[error("backend {backend} did not answer within {timeout_ms} ms")]
    Timeout { backend: String, timeout_ms: u64 },
    /// A drain deadline came before the answer (500, R3): the backend's,
    /// the listener's or this node's own (`cause`).
    #[error("backend {backend} closed by a drain deadline ({cause})")]
    DrainDeadline { backend: String, cause: DrainCause },
    /// The request breaks HTTP/1.1 in a way sluice must refuse (downstream;
    /// 400).
    #[error("bad request: {reason}")]
    BadRequest { reason: &'static str },
    /// The client's request body was malformed, e.g. a bad chunk
    /// (downstream; 400, not the backend's fault).
    #[error("bad request body: {source}")]
    BadRequestBody {
        source: crate::http1::RequestBodyError,
    },
    /// The client stopped sending its request body for the whole request
    /// timeout (downstream; 408).
    #[error("request body not received within {timeout_ms} ms")]
    ClientTimeout { timeout_ms: u64 },
    /// A method sluice does not proxy (downstream; 405).
    #[error("method {method} is not supported by this proxy")]
    MethodNotAllowed { method: &'static str },
    /// The request target is too long (downstream; 414).
    #[error("request target of {len} bytes is longer than {max}")]
    UriTooLong { len: usize, max: usize },
    /// A request transfer coding other than chunked (downstream; 501).
    #[error("transfer coding {coding:?} is not supported")]
    UnsupportedTransferCoding { coding: String },
}

impl ForwardError {
    /// A failed exchange with `backend`: the backend's failure, or this
    /// node's own trouble.
    pub(crate) fn upstream(backend: String, source: crate::upstream::UpstreamError) -> Self {
        match source {
            crate::upstream::UpstreamError::LocalTrouble { trouble, .. } => {
                ForwardError::NodeOutOfResources { backend, trouble }
            }
            source => ForwardError::Upstream { backend, source },
        }
    }

    pub(crate) fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            ForwardError::NoRoute
            | ForwardError::NoBackend { .. }
            | ForwardError::NodeOutOfResources { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ForwardError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ForwardError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ForwardError::DrainDeadline { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ForwardError::BadRequest { .. } | ForwardError::BadRequestBody { .. } => {
                StatusCode::BAD_REQUEST
            }
            ForwardError::ClientTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ForwardError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ForwardError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ForwardError::UnsupportedTransferCoding { .. } => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// Whether the client caused it (counted as a rejected request, not as
    /// a failure): its connection closes after the answer, since what it
    /// sends next may not be where a request starts.
    pub(crate) fn is_client_error(&self) -> bool {
        matches!(
            self,
            ForwardError::BadRequest { .. }
                | ForwardError::BadRequestBody { .. }
                | ForwardError::ClientTimeout { .. }
                | ForwardError::MethodNotAllowed { .. }
                | ForwardError::UriTooLong { .. }
                | ForwardError::UnsupportedTransferCoding { .. }
        )
    }

    /// Stable short code, also sent in `x-sluice-error`.
    pub(crate) fn code(&self) -> &'static str {
        FORWARD_ERROR_CODES[self.code_index()]
    }

    /// This error's place in [`FORWARD_ERROR_CODES`]: per-backend counters
    /// are a fixed array indexed by it, no map on the request path.
    pub(crate) fn code_index(&self) -> usize {
        match self {
            ForwardError::NoRoute => 0,
            ForwardError::NoBackend { .. } => 1,
            ForwardError::Upstream { .. } => 2,
            ForwardError::NodeOutOfResources { .. } => 3,
            ForwardError::Timeout { .. } => 4,
            ForwardError::DrainDeadline { .. } => 5,
            ForwardError::BadRequest { .. } => 6,
            ForwardError::BadRequestBody { .. } => 7,
            ForwardError::ClientTimeout { .. } => 8,
            ForwardError::MethodNotAllowed { .. } => 9,
            ForwardError::UriTooLong { .. } => 10,
            ForwardError::UnsupportedTransferCoding { .. } => 11,
        }
    }
}

/// Every `x-sluice-error` code of a [`ForwardError`], in the order of
/// [`ForwardError::code_index`].
pub(crate) const FORWARD_ERROR_CODES: [&str; 12] = [
    "no_route",
    "no_backend",
    "backend_failed",
    "node_out_of_resources",
    "backend_timeout",
    "drain_deadline",
    "bad_request",
    "bad_request_body",
    "request_body_timeout",
    "method_not_allowed",
    "uri_too_long",
    "unsupported_transfer_coding",
];
