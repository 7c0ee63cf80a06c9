//! [`Conn`]: one open connection to a backend, as the pool keeps it idle
//! and an exchange and a response body use it in turn.

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Read buffer growth step.
pub(super) const READ_CHUNK: usize = 8 * 1024;

/// An open connection to a backend and the bytes read from it that nobody
/// consumed yet (empty while idle).
pub(super) struct Conn {
    pub io: TcpStream,
    pub buf: BytesMut,
}
