//! What a [`DemoBackend`](super::DemoBackend) records: every connection,
//! request and WebSocket event, with when it happened.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// Something that happened on a [`DemoBackend`].
///
/// `/health` probes are not recorded (they would drown the interesting
/// events), but the connections they arrive on are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendEvent {
    /// A TCP connection was accepted.
    ConnectionOpened { peer: SocketAddr },
    /// A TCP connection ended (including an upgraded one, once its
    /// WebSocket has ended).
    ConnectionClosed { peer: SocketAddr },
    /// A plain HTTP request (not `/health`, not a WebSocket upgrade) began;
    /// `path` is the path and query as received, e.g. `/?delay=3s`.
    RequestStarted { path: String },
    /// The request was answered with `status`.
    RequestAnswered { path: String, status: u16 },
    /// The proxy/client went away (or the backend shut down) before the
    /// answer was ready.
    RequestAborted { path: String },
    /// A WebSocket upgrade completed.
    WebSocketOpened { peer: SocketAddr },
    /// A text message arrived on a WebSocket.
    WebSocketMessage { text: String },
    /// The peer sent a Close frame; `code` is `None` when the frame had no
    /// status code.
    WebSocketCloseReceived { code: Option<u16> },
    /// A WebSocket ended, for whatever reason.
    WebSocketClosed { peer: SocketAddr },
}

/// One recorded [`BackendEvent`] with the monotonic and the wall-clock time
/// at which it happened.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub at: Instant,
    pub wall: SystemTime,
    pub event: BackendEvent,
}
