//! Certificates for tests: a [`TestCa`] that issues leaf certificates
//! (valid, expired, not yet valid) as PEM, and writes them to files for
//! the CLI.

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate authority made up for one test run (ECDSA P-256 keys).
/// Its leaves carry the given names as SANs (an IP address string becomes
/// an IP SAN); the chain a leaf comes with holds the leaf and the
/// intermediates between it and the root, not the root itself.
pub struct TestCa {
    name: String,
    cert: Certificate,
    key: KeyPair,
    /// PEM of the intermediates above this CA's leaves (this CA first when
    /// it is an intermediate), empty for a root.
    chain_above: String,
}

// === impl TestCa ===

impl TestCa {
    /// A root CA whose subject is `CN=<name>`, valid from a day ago for ten
    /// years.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("generate a CA key");
        let cert = ca_params(name).self_signed(&key).expect("self-sign the CA");
        TestCa {
            name: name.to_string(),
            cert,
            key,
            chain_above: String::new(),
        }
    }

    /// An intermediate CA signed by this one: its leaves' chains hold the
    /// leaf and the intermediate.
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate an intermediate key");
        let cert = ca_params(name)
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign the intermediate");
        let chain_above = format!("{}{}", cert.pem(), self.chain_above);
        TestCa {
            name: name.to_string(),
            cert,
            key,
            chain_above,
        }
    }

    /// Its name (the subject's CN).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its certificate as PEM: what a client trusts.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Its certificate as DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// A leaf for `sans`, valid from a day ago for 90 days: (chain PEM,
    /// key PEM as PKCS#8). Its subject is `CN=<first SAN>`.
    pub fn leaf(&self, sans: &[&str]) -> (String, String) {
        let now = OffsetDateTime::now_utc();
        self.leaf_valid(sans, now - Duration::days(1), now + Duration::days(90))
    }

    /// A leaf whose validity ended a day ago (it began 30 days ago).
    pub fn expired_leaf(&self, sans: &[&str]) -> (String, String) {
        let now = OffsetDateTime::now_utc();
        self.leaf_valid(sans, now - Duration::days(30), now - Duration::days(1))
    }

    /// A leaf whose validity begins in a day (for 30 days).
    pub fn future_leaf(&self, sans: &[&str]) -> (String, String) {
        let now = OffsetDateTime::now_utc();
        self.leaf_valid(sans, now + Duration::days(1), now + Duration::days(31))
    }

    /// A leaf valid from `not_before` to `not_after`.
    pub fn leaf_valid(
        &self,
        sans: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> (String, String) {
        let key = KeyPair::generate().expect("generate a leaf key");
        let chain = self.sign_leaf(sans, &key, not_before, not_after);
        (chain, key.serialize_pem())
    }

    /// The chain of a leaf for `sans` whose key is `key_pkcs8_pem` (an RSA
    /// or ECDSA key as PKCS#8 PEM), valid from a day ago for 90 days.
    pub fn leaf_for_key(&self, sans: &[&str], key_pkcs8_pem: &str) -> String {
        let key = KeyPair::from_pem(key_pkcs8_pem).expect("a PKCS#8 key");
        let now = OffsetDateTime::now_utc();
        self.sign_leaf(
            sans,
            &key,
            now - Duration::days(1),
            now + Duration::days(90),
        )
    }

    fn sign_leaf(
        &self,
        sans: &[&str],
        key: &KeyPair,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> String {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf names");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, sans.first().copied().unwrap_or("leaf"));
        params.distinguished_name = dn;
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(key, &self.cert, &self.key)
            .expect("sign the leaf");
        format!("{}{}", cert.pem(), self.chain_above)
    }

    /// Writes its certificate to `path`.
    pub fn write_pem(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.pem())
    }
}

/// Writes a (chain, key) pair as `<dir>/<stem>.crt` and `<dir>/<stem>.key`
/// and returns both paths.
pub fn write_pair(
    dir: &Path,
    stem: &str,
    pair: &(String, String),
) -> io::Result<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, &pair.0)?;
    std::fs::write(&key, &pair.1)?;
    Ok((cert, key))
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    params
}
