//! A member's TLS identity (the node config's `[admin.tls]`): its
//! certificate chain and key, and the CA that signs every member. From it
//! come the admin server's rustls config (TLS only, ALPN `http/1.1`, a
//! client certificate requested and verified against the CA but not
//! required: operators have only the token) and the member client's (the
//! server verified against the CA with the host of its URL, this node's
//! certificate presented). ring is the only crypto provider.
//!
//! [`MemberTls::load`] checks everything it can before a node serves: each
//! file readable and PEM, the key matching the certificate, and the
//! certificate accepted by the CA as a member's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The one ALPN protocol the admin port speaks.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Which file of `[admin.tls]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// `cert`: the node's certificate (a chain: leaf first).
    Cert,
    /// `key`: the node's private key.
    Key,
    /// `ca`: the CA that signs every member.
    Ca,
}

impl TlsFile {
    /// The field's name in `[admin.tls]`.
    pub fn field(self) -> &'static str {
        match self {
            TlsFile::Cert => "cert",
            TlsFile::Key => "key",
            TlsFile::Ca => "ca",
        }
    }
}

/// Why `[admin.tls]` cannot be used; [`MemberTlsError::file`] and
/// [`MemberTlsError::path`] say which file.
#[derive(Debug, thiserror::Error)]
pub enum MemberTlsError {
    /// The file cannot be read.
    #[error("cannot read it: {source}")]
    Read {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds nothing of the expected kind.
    #[error("{reason}")]
    Pem {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("this key does not match the certificate in {}", cert.display())]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// Parsed, but rustls refuses it (an unsupported key, a CA certificate
    /// that is not a trust anchor, a certificate the CA did not sign).
    #[error("{reason}")]
    Refused {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

// === impl MemberTlsError ===

impl MemberTlsError {
    /// The file at fault.
    pub fn file(&self) -> TlsFile {
        match self {
            MemberTlsError::Read { file, .. }
            | MemberTlsError::Pem { file, .. }
            | MemberTlsError::Refused { file, .. } => *file,
            MemberTlsError::KeyMismatch { .. } => TlsFile::Key,
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        match self {
            MemberTlsError::Read { path, .. }
            | MemberTlsError::Pem { path, .. }
            | MemberTlsError::KeyMismatch { path, .. }
            | MemberTlsError::Refused { path, .. } => path,
        }
    }
}

/// Where a member's certificate, key and CA are (`[admin.tls]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM certificate(s) of the CA that signs every member.
    pub ca: PathBuf,
}

/// A member's TLS configs, server and client side (cheap to clone).
#[derive(Debug, Clone)]
pub struct MemberTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

// === impl MemberTls ===

impl MemberTls {
    /// Reads and checks `files`; see the module docs.
    pub fn load(files: &MemberTlsFiles) -> Result<MemberTls, MemberTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = read_certs(TlsFile::Cert, &files.cert)?;
        let key = read_key(&files.key)?;
        let roots = Arc::new(read_roots(&files.ca)?);

        let refused = |file: TlsFile, path: &Path| {
            let path = path.to_path_buf();
            move |e: rustls::Error| MemberTlsError::Refused {
                file,
                path,
                reason: e.to_string(),
            }
        };
        let signing_key = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(refused(TlsFile::Key, &files.key))?;
        match CertifiedKey::new(chain.clone(), signing_key).keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(MemberTlsError::KeyMismatch {
                    path: files.key.clone(),
                    cert: files.cert.clone(),
                })
            }
            // The key type cannot tell its public key: the handshake
            // itself will show whether it signs for the certificate.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => return Err(refused(TlsFile::Key, &files.key)(e)),
        }

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| MemberTlsError::Refused {
                    file: TlsFile::Ca,
                    path: files.ca.clone(),
                    reason: e.to_string(),
                })?;
        // The certificate must be one the other members accept.
        let now = UnixTime::since_unix_epoch(Duration::from_millis(sluice_clock::now_ms()));
        if let Some((leaf, intermediates)) = chain.split_first() {
            client_verifier
                .verify_client_cert(leaf, intermediates, now)
                .map_err(|e| MemberTlsError::Refused {
                    file: TlsFile::Cert,
                    path: files.cert.clone(),
                    reason: format!(
                        "the CA in {} does not accept this certificate: {e}",
                        files.ca.display()
                    ),
                })?;
        }

        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(refused(TlsFile::Cert, &files.cert))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(refused(TlsFile::Cert, &files.cert))?;
        server.alpn_protocols = vec![ALPN_HTTP1.to_vec()];

        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(refused(TlsFile::Cert, &files.cert))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(refused(TlsFile::Cert, &files.cert))?;
        Ok(MemberTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The admin server's config.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The member client's config (without ALPN: the connector sets it).
    pub fn client_config(&self) -> ClientConfig {
        (*self.client).clone()
    }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, MemberTlsError> {
    std::fs::read(path).map_err(|source| MemberTlsError::Read {
        file,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(file: TlsFile, path: &Path, reason: String) -> MemberTlsError {
    MemberTlsError::Pem {
        file,
        path: path.to_path_buf(),
        reason,
    }
}

/// Every `CERTIFICATE` block of the file, in order; at least one.
fn read_certs(file: TlsFile, path: &Path) -> Result<Vec<CertificateDer<'static>>, MemberTlsError> {
    let bytes = read(file, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(file, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(
            file,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The file's private key.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, MemberTlsError> {
    let bytes = read(TlsFile::Key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let reason = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)".to_owned()
            }
            e => format!("not a PEM private key file: {e}"),
        };
        pem_error(TlsFile::Key, path, reason)
    })
}

/// The CA file's certificates as trust roots.
fn read_roots(path: &Path) -> Result<RootCertStore, MemberTlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(TlsFile::Ca, path)? {
        roots.add(cert).map_err(|e| MemberTlsError::Refused {
            file: TlsFile::Ca,
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// Installs ring as this process's default rustls provider (for libraries,
/// such as reqwest, that take the process default); a no-op when one is
/// installed already.
pub fn install_default_provider() {
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
}
