//! A TLS connection after its handshake, driven over its TCP socket by
//! readiness through `&self`: the request body reader, the interim-answer
//! writer and the serving loop share it as they share a plain socket.
//!
//! The `rustls::ServerConnection` sits behind a mutex that is never
//! contended (one of them uses the connection at a time); it is held only
//! within a call, never across an await.
//!
//! Nothing is stranded in rustls: a read returns the plaintext it already
//! holds before it reads the socket, and read readiness says Ready while
//! there is some; a write first sends the records still queued and refuses
//! (`WouldBlock`) while they cannot go, and [`ReadyIo::poll_flush`] is
//! Ready only once every encrypted byte is on the socket. A peer's TCP end
//! without `close_notify` reads as an end (`Ok(0)`), as on plain TCP: most
//! HTTP clients close that way.

use std::io::{self, Read, Write};
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use rustls::ServerConnection;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::ready_io::ReadyIo;

/// Plaintext taken into rustls per write at most: about four records.
const WRITE_CHUNK: usize = 64 * 1024;

/// A TLS server connection whose handshake is done, over its socket.
pub(crate) struct TlsIo {
    tcp: TcpStream,
    conn: Mutex<ServerConnection>,
}

/// The socket as rustls reads it: non-blocking, `WouldBlock` when empty.
struct SocketReader<'a>(&'a TcpStream);

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

/// The socket as rustls writes it: non-blocking, `WouldBlock` when full.
struct SocketWriter<'a>(&'a TcpStream);

impl Write for SocketWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.try_write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// === impl TlsIo ===

impl TlsIo {
    /// Takes over a connection whose handshake finished on `tcp`.
    pub fn new(tcp: TcpStream, conn: ServerConnection) -> TlsIo {
        TlsIo {
            tcp,
            conn: Mutex::new(conn),
        }
    }

    fn conn(&self) -> MutexGuard<'_, ServerConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends queued records until none is left (`Ok`) or the socket is
    /// full (`WouldBlock`).
    fn send_queued(&self, conn: &mut ServerConnection) -> io::Result<()> {
        while conn.wants_write() {
            if conn.write_tls(&mut SocketWriter(&self.tcp))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Sends queued records if the socket takes them now; they stay queued
    /// otherwise (the next write or flush sends them).
    fn send_queued_if_possible(&self, conn: &mut ServerConnection) -> io::Result<()> {
        match self.send_queued(conn) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    /// Sends `close_notify` and every queued record, then ends the write
    /// side of the socket.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.conn().send_close_notify();
        std::future::poll_fn(|cx| self.poll_flush(cx)).await?;
        self.tcp.shutdown().await
    }
}

impl ReadyIo for TlsIo {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        {
            let mut conn = self.conn();
            match conn.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
                // Plaintext, the peer's close, or an error: a read says.
                _ => return Poll::Ready(Ok(())),
            }
        }
        self.tcp.poll_read_ready(cx)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut conn = self.conn();
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The TCP end without close_notify: an end, as on plain TCP.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // No plaintext held: read records from the socket (WouldBlock
            // when it has none, which clears its read readiness).
            conn.read_tls(&mut SocketReader(&self.tcp))?;
            let processed = conn.process_new_packets();
            // An alert on an error, a key update's answer: sent if the
            // socket takes it now.
            let sent = self.send_queued_if_possible(&mut conn);
            if let Err(e) = processed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            sent?;
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A write is taken once the queued records are out.
        self.poll_flush(cx)
    }

    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        let mut conn = self.conn();
        self.send_queued(&mut conn)?;
        let take = data.len().min(WRITE_CHUNK);
        let n = conn.writer().write(&data[..take])?;
        self.send_queued_if_possible(&mut conn)?;
        Ok(n)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.send_queued(&mut self.conn()) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            ready!(self.tcp.poll_write_ready(cx))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::client::TlsStream;

    use super::*;
    use crate::client_io::ClientIo;
    use crate::http1::write_all;

    /// A TLS connection: sluice's side (after the handshake) and a rustls
    /// client's.
    async fn tls_pair() -> (ClientIo, TlsStream<TcpStream>) {
        let leaf = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_pair.serialize_der()));
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(leaf.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = l.accept().await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(
            crate::tls_handshake::accept(accepted, Arc::new(server), Duration::from_secs(5)),
            connector.connect(name, tcp)
        );
        let crate::tls_handshake::Handshaken::Http1(server) = server.unwrap() else {
            panic!("no ALPN was offered: HTTP/1.1");
        };
        (ClientIo::from(server), client.unwrap())
    }

    /// Reads from sluice's side until `want` bytes came (or the end).
    async fn read_n(io: &ClientIo, want: usize, chunk: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; chunk];
        while got.len() < want {
            poll_fn(|cx| io.poll_read_ready(cx)).await.unwrap();
            match io.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn split_writes_arrive_whole_both_ways() {
        let (server, mut client) = tls_pair().await;
        for piece in [&b"GET / HT"[..], b"TP/1.1\r\n", b"Host: a\r\n\r\n"] {
            client.write_all(piece).await.unwrap();
            client.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = read_n(&server, 27, 1024).await;
        assert_eq!(got, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        for piece in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"content-length: 2\r\n\r\n",
            b"ok",
        ] {
            write_all(&server, piece).await.unwrap();
        }
        let mut answer = vec![0u8; 40];
        client.read_exact(&mut answer).await.unwrap();
        assert!(answer.ends_with(b"\r\n\r\nok"), "{answer:?}");
    }

    #[tokio::test]
    async fn plaintext_held_by_rustls_reports_ready() {
        let (server, mut client) = tls_pair().await;
        client.write_all(b"first second").await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(read_n(&server, 5, 5).await, b"first");
        // The rest was decrypted with the first bytes: nothing more comes
        // on the socket, yet a reader is told to read now.
        let ready = tokio::time::timeout(
            Duration::from_millis(500),
            poll_fn(|cx| server.poll_read_ready(cx)),
        )
        .await;
        assert!(
            ready.is_ok(),
            "readiness must see the plaintext rustls holds"
        );
        assert_eq!(read_n(&server, 7, 64).await, b" second");
    }

    #[tokio::test]
    async fn a_large_body_passes_to_a_slow_reader_and_back() {
        let (server, mut client) = tls_pair().await;
        let body = pattern(8 * 1024 * 1024);
        let server = Arc::new(server);
        let writer = {
            let server = server.clone();
            let body = body.clone();
            tokio::spawn(async move { write_all(&server, &body).await })
        };
        // The client reads nothing for a while: the socket fills and the
        // write waits.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!writer.is_finished(), "8 MiB cannot fit in socket buffers");
        let mut got = vec![0u8; body.len()];
        client.read_exact(&mut got).await.unwrap();
        assert!(got == body, "the body arrived altered");
        writer.await.unwrap().unwrap();

        let upload = tokio::spawn(async move {
            client.write_all(&pattern(3 * 1024 * 1024)).await.unwrap();
            client.flush().await.unwrap();
            client
        });
        let got = read_n(&server, 3 * 1024 * 1024, 16 * 1024).await;
        assert!(
            got == pattern(3 * 1024 * 1024),
            "the upload arrived altered"
        );
        upload.await.unwrap();
    }

    #[tokio::test]
    async fn a_write_is_flushed_before_it_reports_done() {
        let (server, mut client) = tls_pair().await;
        // Fill the socket with a client that does not read.
        let mut taken = 0;
        let data = pattern(64 * 1024);
        loop {
            match server.try_write(&data) {
                Ok(n) => taken += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        // Records are queued in rustls: not flushed until the client reads.
        let flushed = tokio::time::timeout(
            Duration::from_millis(200),
            poll_fn(|cx| server.poll_flush(cx)),
        )
        .await;
        assert!(flushed.is_err(), "a flush waits for the full socket");
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; taken];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| server.poll_flush(cx)))
            .await
            .expect("flushed once the client reads")
            .unwrap();
        let got = reader.await.unwrap();
        assert_eq!(got.len(), taken);
        assert!(got.chunks(data.len()).all(|c| c == &data[..c.len()]));
    }

    #[tokio::test]
    async fn shutdown_sends_close_notify_and_a_tcp_end_reads_as_an_end() {
        let (mut server, mut client) = tls_pair().await;
        write_all(&server, b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        let state = client.get_mut().1.process_new_packets().unwrap();
        assert!(state.peer_has_closed(), "the end came with close_notify");

        // The client's TCP end without close_notify: an end, as on plain TCP.
        let (server, client) = tls_pair().await;
        let (mut tcp, _) = client.into_inner();
        tcp.shutdown().await.unwrap();
        let mut buf = [0u8; 16];
        poll_fn(|cx| server.poll_read_ready(cx)).await.unwrap();
        let n = loop {
            match server.try_read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll_fn(|cx| server.poll_read_ready(cx)).await.unwrap()
                }
                r => break r.unwrap(),
            }
        };
        assert_eq!(n, 0);
    }
}
