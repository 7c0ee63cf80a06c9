//! A client connection's socket: plain TCP, or TLS over TCP
//! ([`TlsIo`]). The HTTP/1 server, the request body reader, the
//! interim-answer writer and the tunnel use it through `&self` by readiness
//! ([`ReadyIo`]). The plain side is the socket itself behind one match: no
//! allocation, no lock, no buffer.

use std::io;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::ready_io::ReadyIo;
use crate::tls_io::TlsIo;

/// A client's socket.
pub(crate) enum ClientIo {
    Plain(TcpStream),
    /// Boxed: a plain connection's task does not carry its size.
    Tls(Box<TlsIo>),
}

impl From<TcpStream> for ClientIo {
    fn from(tcp: TcpStream) -> ClientIo {
        ClientIo::Plain(tcp)
    }
}

impl From<TlsIo> for ClientIo {
    fn from(tls: TlsIo) -> ClientIo {
        ClientIo::Tls(Box::new(tls))
    }
}

// === impl ClientIo ===

impl ClientIo {
    /// Reads into `buf`'s spare capacity (the caller reserves it).
    pub fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ClientIo::Plain(tcp) => read_draining(tcp, buf),
            ClientIo::Tls(tls) => {
                let start = buf.len();
                buf.resize(buf.capacity(), 0);
                let read = tls.try_read(&mut buf[start..]);
                buf.truncate(start + *read.as_ref().unwrap_or(&0));
                read
            }
        }
    }

    /// Ends the write side: TLS sends `close_notify` (and what is queued)
    /// first.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ClientIo::Plain(tcp) => tcp.shutdown().await,
            ClientIo::Tls(tls) => tls.shutdown().await,
        }
    }

    /// Whether this connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientIo::Tls(_))
    }
}

/// Reads what `tcp` holds into `buf`'s spare capacity (not zeroed first:
/// a memset of the whole spare room per read shows in the profile). A read
/// that leaves room in `buf` drained the socket: its readiness is cleared
/// then, as tokio's own `poll_read` does, so the wait for the next request
/// starts by waiting instead of with a read that finds nothing (one system
/// call less per request).
fn read_draining(tcp: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut got = 0;
    let read = tcp.try_io(Interest::READABLE, || {
        got = tcp.try_read_buf(buf)?;
        if got > 0 && got < room {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(got)
    });
    match read {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

impl ReadyIo for ClientIo {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ClientIo::Plain(tcp) => tcp.poll_read_ready(cx),
            ClientIo::Tls(tls) => tls.poll_read_ready(cx),
        }
    }

    #[inline]
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientIo::Plain(tcp) => tcp.try_read(buf),
            ClientIo::Tls(tls) => tls.try_read(buf),
        }
    }

    #[inline]
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ClientIo::Plain(tcp) => tcp.poll_write_ready(cx),
            ClientIo::Tls(tls) => tls.poll_write_ready(cx),
        }
    }

    #[inline]
    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            ClientIo::Plain(tcp) => tcp.try_write(data),
            ClientIo::Tls(tls) => tls.try_write(data),
        }
    }

    #[inline]
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ClientIo::Plain(_) => Poll::Ready(Ok(())),
            ClientIo::Tls(tls) => tls.poll_flush(cx),
        }
    }
}
