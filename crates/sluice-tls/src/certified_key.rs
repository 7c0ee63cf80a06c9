//! A stored certificate as rustls's signing material.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error, InconsistentKeys};
use sluice_model::Cert;

use crate::{parse, CertError};

/// The chain and key of `cert`, loaded with the ring provider, the key
/// checked against the leaf. Dates are not checked here: a stored
/// certificate that has since expired is still served (clients decide), as
/// other balancers do; [`crate::inspect`] refuses expired uploads.
pub fn certified_key(cert: &Cert) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = parse::chain(&cert.chain_pem)?;
    let key = parse::key(&cert.key_pem.0)?;
    from_parts(chain, &key).map(Arc::new)
}

/// Signs with `key` and checks it is the key of `chain`'s first certificate.
pub(crate) fn from_parts(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'_>,
) -> Result<CertifiedKey, CertError> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key).map_err(|e| {
        CertError::UnsupportedKey {
            label: key_label(key).into(),
            reason: e.to_string(),
        }
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(CertError::KeyMismatch),
        Err(Error::InconsistentKeys(_)) => Err(CertError::UnsupportedKey {
            label: key_label(key).into(),
            reason: "its public key cannot be read to check it against the certificate".into(),
        }),
        Err(other) => Err(CertError::BadCertificate {
            position: 1,
            reason: other.to_string(),
        }),
    }
}

/// The PEM label a key of this form is written under.
pub(crate) fn key_label(key: &PrivateKeyDer<'_>) -> &'static str {
    match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    }
}
