//! A TLS listener's handshake with one client, run in the connection's own
//! task (never the accept loop) and bounded by the header read timeout:
//! what follows it is a [`TlsIo`] for HTTP/1.1, or the TLS stream itself for
//! a client that agreed on `h2` by ALPN (hyper's HTTP/2 server reads it). A handshake that fails is counted
//! (`tls_handshake_failures`, node-wide and per listener) and logged with its reason, at most once per
//! [`LOG_EVERY`] (a scanner's flood costs a few lines).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tracing::warn;

use crate::log_limit::{LogLimit, LOG_EVERY};
use crate::metrics::Metrics;
use crate::tls_io::TlsIo;

/// Why a client's TLS handshake did not finish.
#[derive(Debug, Error)]
pub(crate) enum HandshakeError {
    /// The client sent something that is not a TLS handshake sluice
    /// accepts (plain HTTP, no common version or cipher, an alert), or
    /// closed.
    #[error("TLS handshake failed: {source}")]
    Failed { source: io::Error },
    /// The handshake took longer than the header read timeout.
    #[error("TLS handshake not finished within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
}

/// A finished handshake, by the protocol ALPN agreed on.
pub(crate) enum Handshaken {
    /// `http/1.1`, or no ALPN.
    Http1(TlsIo),
    /// `h2`.
    Http2(TlsStream<TcpStream>),
}

/// Runs the server side of a handshake on `tcp` with `config`, within
/// `within`.
pub(crate) async fn accept(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    within: Duration,
) -> Result<Handshaken, HandshakeError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(within, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                return Ok(Handshaken::Http2(stream));
            }
            let (tcp, conn) = stream.into_inner();
            Ok(Handshaken::Http1(TlsIo::new(tcp, conn)))
        }
        Ok(Err(source)) => Err(HandshakeError::Failed { source }),
        Err(_) => Err(HandshakeError::Timeout {
            timeout_ms: within.as_millis() as u64,
        }),
    }
}

/// Counts a failed handshake on the listener of `port` and logs it (rate
/// limited).
pub(crate) fn failed(metrics: &Metrics, port: u16, peer: &http::HeaderValue, e: &HandshakeError) {
    Metrics::inc(&metrics.tls_handshake_failures);
    metrics.listeners.tls_handshake_failed(port);
    static LIMIT: LogLimit = LogLimit::new(LOG_EVERY);
    if let Some(left_out) = LIMIT.admit() {
        let peer = peer.to_str().unwrap_or("unknown");
        warn!(port, peer, error = %e, left_out, "TLS handshake failed; connection closed");
    }
}
