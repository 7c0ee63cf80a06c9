//! Checks an uploaded chain and key and reads what the chain says.

use std::net::IpAddr;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sluice_model::{Cert, CertInfo, SecretPem, MAX_CHAIN_PEM, MAX_KEY_PEM};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::certified_key::{from_parts, key_label};
use crate::{parse, CertError, Input};

/// Checks `chain_pem` (PEM certificates, leaf first, nothing else) and
/// `key_pem` (one PKCS#8, PKCS#1 or SEC1 key, unencrypted): every
/// certificate parses, the key is the leaf's, and the leaf is valid at
/// `now_ms`. Returns the certificate to store, its PEM normalised
/// (certificate blocks only, then the key block only) and its
/// [`CertInfo`] read from the leaf; `version` is 0 (apply sets it). The
/// name is taken as given: `sluice_model::validate_cert_name` checks it.
pub fn inspect(name: &str, chain_pem: &str, key_pem: &str, now_ms: u64) -> Result<Cert, CertError> {
    within(Input::Cert, chain_pem, MAX_CHAIN_PEM)?;
    within(Input::Key, key_pem, MAX_KEY_PEM)?;
    let chain = parse::chain(chain_pem)?;
    let mut parsed = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertError::BadCertificate {
            position: i + 1,
            reason: e.to_string(),
        })?;
        parsed.push(cert);
    }
    let key = parse::key(key_pem)?;
    from_parts(chain.clone(), &key)?;
    let Some(leaf) = parsed.first() else {
        return Err(CertError::NoCertificate {
            found: "nothing".into(),
        });
    };
    let info = info(leaf, &chain[0], chain.len());
    if info.not_after <= now_ms {
        return Err(CertError::Expired {
            not_after: info.not_after,
        });
    }
    if info.not_before > now_ms {
        return Err(CertError::NotYetValid {
            not_before: info.not_before,
        });
    }
    Ok(Cert {
        name: name.to_string(),
        chain_pem: normalised_chain(&chain),
        key_pem: SecretPem(normalised_key(&key)),
        info,
        version: 0,
    })
}

fn within(input: Input, text: &str, max: usize) -> Result<(), CertError> {
    if text.len() > max {
        return Err(CertError::TooLarge {
            input,
            bytes: text.len(),
            max,
        });
    }
    Ok(())
}

fn info(leaf: &X509Certificate<'_>, leaf_der: &CertificateDer<'_>, chain_len: usize) -> CertInfo {
    let validity = leaf.validity();
    CertInfo {
        subject: leaf.subject().to_string(),
        sans: sans(leaf),
        issuer: leaf.issuer().to_string(),
        not_before: unix_ms(validity.not_before.timestamp()),
        not_after: unix_ms(validity.not_after.timestamp()),
        fingerprint_sha256: hex(ring::digest::digest(&ring::digest::SHA256, leaf_der).as_ref()),
        chain_len,
    }
}

/// DNS names and IP addresses, in the certificate's order.
fn sans(leaf: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = leaf.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(bytes) => ip(bytes).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect()
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Seconds since the epoch to ms; dates before 1970 count as 0.
fn unix_ms(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0).saturating_mul(1000)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn normalised_chain(chain: &[CertificateDer<'_>]) -> String {
    let blocks: Vec<(&str, &[u8])> = chain.iter().map(|c| ("CERTIFICATE", c.as_ref())).collect();
    parse::normalised(&blocks)
}

fn normalised_key(key: &PrivateKeyDer<'_>) -> String {
    parse::normalised(&[(key_label(key), key.secret_der())])
}
