//! An upstream connection handed over after `101 Switching Protocols`: the
//! socket, and the bytes the backend sent right after its answer's head
//! (they go to the client first).

use bytes::Bytes;
use tokio::net::TcpStream;

/// The backend side of a tunnel.
pub(crate) struct UpstreamIo {
    io: TcpStream,
    leftover: Bytes,
}

impl UpstreamIo {
    pub(super) fn new(io: TcpStream, leftover: Bytes) -> UpstreamIo {
        UpstreamIo { io, leftover }
    }

    /// The socket and the bytes the backend sent after its answer's head.
    pub fn into_parts(self) -> (TcpStream, Bytes) {
        (self.io, self.leftover)
    }
}
