//! Certificates for tests of encrypted cluster traffic: a CA made on the
//! spot ([`MemberCa`], rcgen with ring) and node certificates it signs, all
//! written as PEM files into a directory the test owns, in the shape a
//! node's `[admin.tls]` takes ([`NodeTls`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A node's `[admin.tls]` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTls {
    /// PEM certificate (leaf).
    pub cert: PathBuf,
    /// PEM private key (PKCS#8).
    pub key: PathBuf,
    /// PEM certificate of the CA that signs the members.
    pub ca: PathBuf,
}

/// A CA whose certificate and signed certificates live in `dir`.
pub struct MemberCa {
    name: String,
    dir: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

// === impl MemberCa ===

impl MemberCa {
    /// A new CA named `name`; its certificate is written to
    /// `<dir>/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<MemberCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca = MemberCa {
            name: name.to_owned(),
            dir: dir.to_path_buf(),
            cert,
            key,
        };
        write(&ca.ca_file(), &ca.cert.pem())?;
        Ok(ca)
    }

    /// The CA's certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A certificate for `hosts` (DNS names or IP addresses, as SANs),
    /// usable as server and client certificate, signed by this CA:
    /// `<dir>/<name>.pem` and `<dir>/<name>-key.pem`.
    pub fn issue(&self, name: &str, hosts: &[&str]) -> anyhow::Result<NodeTls> {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, name.to_owned());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let files = NodeTls {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
            ca: self.ca_file(),
        };
        write(&files.cert, &cert.pem())?;
        write(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A rustls client config that trusts only the CA in `ca` and presents no
/// certificate (an operator's view of the admin port).
pub fn client_config(ca: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Installs ring as the process's default rustls provider (reqwest takes
/// it); a no-op when one is installed.
pub fn install_crypto_provider() {
    let _ =
        rustls::crypto::CryptoProvider::install_default(rustls::crypto::ring::default_provider());
}
