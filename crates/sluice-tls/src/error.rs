//! Why a certificate chain or key is refused.

use std::time::{Duration, UNIX_EPOCH};

/// Which of the two uploads is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The certificate chain.
    Cert,
    /// The private key.
    Key,
}

impl Input {
    /// The field as the API names it: `cert` or `key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Input::Cert => "cert",
            Input::Key => "key",
        }
    }
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Input::Cert => "certificate chain",
            Input::Key => "private key",
        })
    }
}

/// A chain or key that cannot be served, said so an operator can fix it.
/// Messages never quote the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Not PEM text at all, or a PEM block that does not decode.
    #[error("the {input} is not PEM: {reason} (expected lines like -----BEGIN {}-----)", expected_label(*input))]
    NotPem {
        /// The chain or the key.
        input: Input,
        /// What the PEM reader said.
        reason: String,
    },
    /// Larger than the state keeps.
    #[error("the {input} is {bytes} bytes; at most {max} are kept")]
    TooLarge {
        /// The chain or the key.
        input: Input,
        /// Its size.
        bytes: usize,
        /// The most allowed.
        max: usize,
    },
    /// PEM, but no certificate in it.
    #[error("the certificate chain holds no certificate, only {found}: was another file given?")]
    NoCertificate {
        /// The PEM labels found, e.g. "a PRIVATE KEY".
        found: String,
    },
    /// Something that is not a certificate among the certificates.
    #[error("block {position} of the certificate chain is a {label}, not a CERTIFICATE: the chain holds certificates only, leaf first")]
    NotACertificate {
        /// 1-based position of the block.
        position: usize,
        /// Its PEM label.
        label: String,
    },
    /// A CERTIFICATE block whose content is not an X.509 certificate.
    #[error("certificate {position} of the chain cannot be read: {reason}")]
    BadCertificate {
        /// 1-based position in the chain.
        position: usize,
        /// What the parser said.
        reason: String,
    },
    /// PEM, but no private key in it.
    #[error("the key holds no private key, only {found}: was another file given?")]
    NoKey {
        /// The PEM labels found, e.g. "a CERTIFICATE".
        found: String,
    },
    /// More than one private key.
    #[error("the key file holds {count} private keys: give the leaf's key only")]
    ManyKeys {
        /// How many.
        count: usize,
    },
    /// A key of a kind or form that cannot sign handshakes.
    #[error("the private key ({label}) cannot be used: {reason}")]
    UnsupportedKey {
        /// Its PEM label.
        label: String,
        /// Why.
        reason: String,
    },
    /// The key is not the leaf certificate's.
    #[error("the private key does not match the certificate (the first of the chain): give the leaf's key, and the leaf first")]
    KeyMismatch,
    /// The leaf's validity has ended.
    #[error("the certificate expired on {}", date(*not_after))]
    Expired {
        /// Its not-after (Unix ms).
        not_after: u64,
    },
    /// The leaf's validity has not begun.
    #[error("the certificate is not valid before {}", date(*not_before))]
    NotYetValid {
        /// Its not-before (Unix ms).
        not_before: u64,
    },
}

impl CertError {
    /// The input at fault, as the API's `field`: `cert` or `key`.
    pub fn field(&self) -> &'static str {
        self.input().as_str()
    }

    /// The input at fault.
    pub fn input(&self) -> Input {
        match self {
            CertError::NotPem { input, .. } | CertError::TooLarge { input, .. } => *input,
            CertError::NoCertificate { .. }
            | CertError::NotACertificate { .. }
            | CertError::BadCertificate { .. }
            | CertError::Expired { .. }
            | CertError::NotYetValid { .. } => Input::Cert,
            CertError::NoKey { .. }
            | CertError::ManyKeys { .. }
            | CertError::UnsupportedKey { .. }
            | CertError::KeyMismatch => Input::Key,
        }
    }

    /// A stable machine-readable code for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            CertError::KeyMismatch => "key_mismatch",
            CertError::Expired { .. } => "certificate_expired",
            CertError::NotYetValid { .. } => "certificate_not_yet_valid",
            _ => match self.input() {
                Input::Cert => "invalid_certificate",
                Input::Key => "invalid_key",
            },
        }
    }
}

fn expected_label(input: Input) -> &'static str {
    match input {
        Input::Cert => "CERTIFICATE",
        Input::Key => "PRIVATE KEY",
    }
}

/// Unix ms as an RFC 3339 UTC date, to the second.
pub(crate) fn date(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
