//! Picks a listener's certificate by the server name a client sends (SNI).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sluice_model::Cert;

use crate::{certified_key, CertError};

/// A listener's certificates, in the order it names them.
///
/// A client's server name is looked up among each certificate's DNS names:
/// an exact match first (case-insensitive), then a wildcard `*.example.com`
/// standing for exactly one label (`a.example.com`, not
/// `a.b.example.com` nor `example.com`). A client that sends no name, or
/// one that no certificate covers, gets the first certificate: the default
/// certificate of a cloud ALB's HTTPS listener or HAProxy's first `crt`.
/// Where two certificates cover a name, the earlier one wins.
///
/// The lookups are two hash maps built once, so a handshake costs a
/// lowercase copy of the name and at most two lookups.
pub struct SniResolver {
    /// (name, key) in order; the first is the default.
    certs: Vec<(String, Arc<CertifiedKey>)>,
    /// Lowercase DNS name → index into `certs`.
    exact: HashMap<String, usize>,
    /// Lowercase parent of a `*.` wildcard ("example.com") → index.
    wildcard: HashMap<String, usize>,
}

// === impl SniResolver ===

impl SniResolver {
    /// From `(certificate name, key, subject alternative names)` in the
    /// listener's order.
    pub fn new(
        entries: impl IntoIterator<Item = (String, Arc<CertifiedKey>, Vec<String>)>,
    ) -> Self {
        let mut resolver = SniResolver {
            certs: Vec::new(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        for (index, (name, key, sans)) in entries.into_iter().enumerate() {
            for san in sans {
                let san = normalise(&san);
                match san.strip_prefix("*.") {
                    Some(parent) if !parent.is_empty() => {
                        resolver.wildcard.entry(parent.to_string()).or_insert(index);
                    }
                    _ => {
                        resolver.exact.entry(san).or_insert(index);
                    }
                }
            }
            resolver.certs.push((name, key));
        }
        resolver
    }

    /// From stored certificates in the listener's order, each loaded with
    /// [`certified_key`] and picked by its SANs.
    pub fn from_certs<'a>(certs: impl IntoIterator<Item = &'a Cert>) -> Result<Self, CertError> {
        let mut entries = Vec::new();
        for cert in certs {
            entries.push((
                cert.name.clone(),
                certified_key(cert)?,
                cert.info.sans.clone(),
            ));
        }
        Ok(SniResolver::new(entries))
    }

    /// The certificate for `server_name` (None: the client sent none), by
    /// name with its key; None only when the resolver holds no certificate.
    pub fn pick(&self, server_name: Option<&str>) -> Option<(&str, &Arc<CertifiedKey>)> {
        let index = server_name.and_then(|n| self.index_of(n)).unwrap_or(0);
        self.certs
            .get(index)
            .map(|(name, key)| (name.as_str(), key))
    }

    /// The certificates' names, the default first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.certs.iter().map(|(name, _)| name.as_str())
    }

    fn index_of(&self, server_name: &str) -> Option<usize> {
        let name = normalise(server_name);
        if let Some(&i) = self.exact.get(&name) {
            return Some(i);
        }
        let (first, parent) = name.split_once('.')?;
        if first.is_empty() {
            return None;
        }
        self.wildcard.get(parent).copied()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(client_hello.server_name())
            .map(|(_, key)| Arc::clone(key))
    }
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver")
            .field("certs", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

/// Lowercase, without a trailing dot.
fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}
