//! A rustls server configuration for a TLS listener.

use std::sync::Arc;

use rustls::server::ResolvesServerCert;
use rustls::ServerConfig;

/// TLS 1.3 and 1.2 with the ring provider's suites, no client
/// certificates, certificates from `resolver`, `alpn` offered in order
/// (e.g. `h2`, `http/1.1`).
///
/// The configuration is built on the process's default provider. ring is
/// the only one this tree builds; it is installed as the default here when
/// no default is set yet, so this never fails.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: Vec<Vec<u8>>,
) -> Arc<ServerConfig> {
    // Err: a default was installed already, which is then the one used.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    Arc::new(config)
}
