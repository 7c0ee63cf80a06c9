//! Serves the admin router on the admin port, in plain HTTP or, with the
//! node's `[admin.tls]`, in TLS only. Over TLS each accepted connection is
//! served on its own (hyper's HTTP/1.1 server) so that every request on it
//! carries a [`PeerCertificate`] saying whether the connection presented a
//! certificate the members' CA verified; the member-only routes check it
//! (`member_only.rs`). Either way, `shutdown` stops the accepting and lets
//! open requests finish: idle keep-alive connections close, the call
//! returns once every connection has.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use tracing::{debug, warn};

use crate::member_only::{require_member_certificate, PeerCertificate};

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves and the open
/// connections have ended: over TLS with `tls`, else in plain HTTP.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => serve_tls(listener, app, config, shutdown).await,
    }
}

async fn serve_tls(
    listener: TcpListener,
    app: Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn(require_member_certificate));
    let acceptor = TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of
                    // spinning (what axum::serve does too).
                    warn!(error = %e, "admin port: accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    log_refused(peer, &e);
                    return;
                }
                Err(_) => {
                    debug!(%peer, "admin port: TLS handshake not finished in time");
                    return;
                }
            };
            let verified = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|chain| !chain.is_empty());
            let certificate = PeerCertificate { verified };
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(certificate);
                let mut app = app.clone();
                async move { app.call(req.map(axum::body::Body::new)).await }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            let conn = http.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A refused handshake: a certificate problem is worth a warning (a
/// member with the wrong CA, or none); anything else (plain HTTP on the
/// TLS port, a scanner) is debug.
fn log_refused(peer: std::net::SocketAddr, e: &std::io::Error) {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    if certificate {
        warn!(%peer, error = %e, "admin port: TLS handshake refused: the client's certificate is not one of the members'");
    } else {
        debug!(%peer, error = %e, "admin port: TLS handshake failed");
    }
}
