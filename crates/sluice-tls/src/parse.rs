//! PEM text to DER: a chain of certificates and one private key.

use pem::Pem;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use crate::{CertError, Input};

const CERTIFICATE: &str = "CERTIFICATE";
/// Labels a key file may hold beside its key (OpenSSL writes them).
const BESIDE_A_KEY: [&str; 2] = ["EC PARAMETERS", CERTIFICATE];

/// The chain's certificates, leaf first, as DER; refuses anything else in it.
pub(crate) fn chain(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let blocks = blocks(Input::Cert, chain_pem)?;
    if !blocks.iter().any(|b| b.tag() == CERTIFICATE) {
        return Err(CertError::NoCertificate {
            found: labels(&blocks),
        });
    }
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, block)| {
            if block.tag() == CERTIFICATE {
                Ok(CertificateDer::from(block.into_contents()))
            } else {
                Err(CertError::NotACertificate {
                    position: i + 1,
                    label: block.tag().to_string(),
                })
            }
        })
        .collect()
}

/// The one private key of `key_pem`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub(crate) fn key(key_pem: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    let blocks = blocks(Input::Key, key_pem)?;
    let keys: Vec<&Pem> = blocks
        .iter()
        .filter(|b| !BESIDE_A_KEY.contains(&b.tag()))
        .collect();
    let block = match keys.as_slice() {
        [] => {
            return Err(CertError::NoKey {
                found: labels(&blocks),
            })
        }
        [one] => *one,
        many => return Err(CertError::ManyKeys { count: many.len() }),
    };
    let der = block.contents().to_vec();
    match block.tag() {
        "PRIVATE KEY" => Ok(PrivatePkcs8KeyDer::from(der).into()),
        "RSA PRIVATE KEY" => Ok(PrivatePkcs1KeyDer::from(der).into()),
        "EC PRIVATE KEY" => Ok(PrivateSec1KeyDer::from(der).into()),
        "ENCRYPTED PRIVATE KEY" => Err(CertError::UnsupportedKey {
            label: block.tag().to_string(),
            reason: "it is encrypted; give it decrypted (openssl pkey -in KEY -out PLAIN)".into(),
        }),
        other => Err(CertError::UnsupportedKey {
            label: other.to_string(),
            reason: "expected PRIVATE KEY (PKCS#8), RSA PRIVATE KEY or EC PRIVATE KEY".into(),
        }),
    }
}

/// The blocks, normalised back to PEM (LF line ends, no text between
/// blocks) for storage.
pub(crate) fn normalised(ders: &[(&str, &[u8])]) -> String {
    let pems: Vec<Pem> = ders.iter().map(|(tag, der)| Pem::new(*tag, *der)).collect();
    pem::encode_many_config(
        &pems,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn blocks(input: Input, text: &str) -> Result<Vec<Pem>, CertError> {
    let blocks = pem::parse_many(text).map_err(|e| CertError::NotPem {
        input,
        reason: e.to_string(),
    })?;
    if blocks.is_empty() {
        return Err(CertError::NotPem {
            input,
            reason: "no PEM block in it".into(),
        });
    }
    Ok(blocks)
}

/// "a PRIVATE KEY and a CERTIFICATE".
fn labels(blocks: &[Pem]) -> String {
    let labels: Vec<String> = blocks.iter().map(|b| format!("a {}", b.tag())).collect();
    labels.join(" and ")
}
