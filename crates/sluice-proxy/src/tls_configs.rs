//! The applier's TLS side: each TLS listener's rustls configuration, built
//! from the certificates of the state it names (SNI among them, the first
//! the default; ALPN `h2`, then `http/1.1`). Loaded keys are cached by certificate
//! name and version, so an apply that touched no certificate loads none and
//! builds no configuration; a replaced certificate (a new version) is
//! loaded once for every listener that names it.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use sluice_model::{Listener, State};
use sluice_tls::{CertError, SniResolver};

/// Protocols offered by ALPN, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What a listener's configuration was built from: its certificates'
/// names and versions, in its order (empty: plain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BuiltFrom(Vec<(String, u64)>);

impl BuiltFrom {
    /// Whether `listener` in `state` still names these certificates at
    /// these versions (no allocation: asked on every apply).
    pub fn matches(&self, listener: &Listener, state: &State) -> bool {
        self.0.len() == listener.tls.len()
            && self
                .0
                .iter()
                .zip(&listener.tls)
                .all(|((name, version), want)| {
                    name == want && state.certs.get(want).map(|c| c.version) == Some(*version)
                })
    }

    /// What `listener` in `state` names now.
    pub fn of(listener: &Listener, state: &State) -> BuiltFrom {
        BuiltFrom(
            listener
                .tls
                .iter()
                .map(|n| (n.clone(), state.certs.get(n).map_or(0, |c| c.version)))
                .collect(),
        )
    }
}

/// A certificate that could not be loaded for a listener.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsConfigError {
    /// The listener names a certificate the state does not hold.
    #[error("certificate {cert} is not in the state")]
    Missing { cert: String },
    /// The stored chain or key did not load.
    #[error("certificate {cert} did not load: {source}")]
    Load { cert: String, source: CertError },
}

/// Loaded certificate keys by name and version.
#[derive(Default)]
pub(crate) struct TlsConfigs {
    keys: HashMap<String, (u64, Arc<CertifiedKey>)>,
}

impl TlsConfigs {
    /// `listener`'s configuration from `state` (none when it is plain).
    pub fn build(
        &mut self,
        listener: &Listener,
        state: &State,
    ) -> Result<Option<Arc<rustls::ServerConfig>>, TlsConfigError> {
        if listener.tls.is_empty() {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(listener.tls.len());
        for name in &listener.tls {
            let cert = state
                .certs
                .get(name)
                .ok_or_else(|| TlsConfigError::Missing { cert: name.clone() })?;
            let key = match self.keys.get(name) {
                Some((version, key)) if *version == cert.version => key.clone(),
                _ => {
                    let key =
                        sluice_tls::certified_key(cert).map_err(|source| TlsConfigError::Load {
                            cert: name.clone(),
                            source,
                        })?;
                    self.keys.insert(name.clone(), (cert.version, key.clone()));
                    key
                }
            };
            entries.push((name.clone(), key, cert.info.sans.clone()));
        }
        let resolver = Arc::new(SniResolver::new(entries));
        let alpn = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Some(sluice_tls::server_config(resolver, alpn)))
    }

    /// A configuration no handshake succeeds with (no certificate): for a
    /// TLS listener whose certificates never loaded on this node, so it
    /// never serves plain HTTP instead.
    pub fn refusing() -> Arc<rustls::ServerConfig> {
        sluice_tls::server_config(Arc::new(SniResolver::new(Vec::new())), Vec::new())
    }

    /// Forgets keys of certificates that left the state or were replaced.
    pub fn retain(&mut self, state: &State) {
        self.keys.retain(|name, (version, _)| {
            state.certs.get(name).map(|c| c.version) == Some(*version)
        });
    }
}
