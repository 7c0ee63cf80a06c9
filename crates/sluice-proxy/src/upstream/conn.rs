//! [`Conn`]: one open connection to a backend, as the pool keeps it idle
//! and an exchange and a response body use it in turn. It counts itself in
//! its pool's open connections while it lives ([`OpenCount`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Read buffer growth step.
pub(super) const READ_CHUNK: usize = 8 * 1024;

/// An open connection to a backend and the bytes read from it that nobody
/// consumed yet (empty while idle).
pub(super) struct Conn {
    pub io: TcpStream,
    pub buf: BytesMut,
    /// Counts the connection as open until it is dropped; a socket handed
    /// to a tunnel leaves the count (tunnels are counted on their own).
    pub _counted: OpenCount,
}

/// One open upstream connection in its pool's count (in use or idle).
pub(super) struct OpenCount(Arc<AtomicU64>);

impl OpenCount {
    pub fn new(count: &Arc<AtomicU64>) -> OpenCount {
        count.fetch_add(1, Ordering::Relaxed);
        OpenCount(count.clone())
    }
}

impl Drop for OpenCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
