//! The readiness-style socket calls the HTTP/1 server and the tunnel make,
//! through a shared reference: wait for readiness, then try a non-blocking
//! read or write. [`TcpStream`] has them natively; a client's socket
//! ([`crate::client_io::ClientIo`]) may be TLS, which adds
//! [`ReadyIo::poll_flush`] for the records it encrypted but could not send
//! yet.

use std::io;
use std::task::{Context, Poll};

use tokio::net::TcpStream;

/// A socket read and written by readiness through `&self`.
pub(crate) trait ReadyIo {
    /// Ready when a read may make progress (it may still find nothing).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Reads what is there; `Ok(0)` at the end, `WouldBlock` when nothing.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Ready when a write may make progress.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Writes what the socket takes now; `WouldBlock` when nothing.
    fn try_write(&self, data: &[u8]) -> io::Result<usize>;

    /// Ready once nothing written is held back from the socket. Plain TCP
    /// holds nothing back.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }
}

impl ReadyIo for TcpStream {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    #[inline]
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }

    #[inline]
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }

    #[inline]
    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, data)
    }
}
