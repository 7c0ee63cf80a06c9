//! Certificates as replicated objects: stored, replaced and removed by
//! name; a listener names the ones it terminates TLS with.
//!
//! What a chain and key are worth (PEM that parses, a key that matches the
//! leaf, dates) is checked by the node that takes the upload, before it
//! proposes: parsing needs a clock and a crypto library, and this crate has
//! neither. Here live the rules that depend on the state: a name refers to
//! a stored certificate, and one in use is not removed.

use crate::limits::validate_object_name;
use crate::{Applied, Cert, ModelError, State};

/// Most certificates one listener names.
pub const MAX_LISTENER_CERTS: usize = 16;
/// Largest chain, as PEM.
pub const MAX_CHAIN_PEM: usize = 64 * 1024;
/// Largest private key, as PEM.
pub const MAX_KEY_PEM: usize = 16 * 1024;

/// A certificate's name: as a group's, 1 to 63 of a-z, 0-9, '-', '_',
/// starting with a letter or digit (it may appear in URLs and file names).
pub fn validate_cert_name(name: &str) -> Result<(), ModelError> {
    validate_object_name("cert", name)
}

impl State {
    /// Stores `cert` under its name; `replace_only` refuses a name that is
    /// not stored yet (`cert update`).
    pub(crate) fn put_cert(
        &mut self,
        cert: &Cert,
        replace_only: bool,
    ) -> Result<Applied, ModelError> {
        validate_cert_name(&cert.name)?;
        within("chain_pem", cert.chain_pem.len(), MAX_CHAIN_PEM)?;
        within("key_pem", cert.key_pem.0.len(), MAX_KEY_PEM)?;
        if replace_only && !self.certs.contains_key(&cert.name) {
            return Err(ModelError::CertNotFound {
                cert: cert.name.clone(),
            });
        }
        let mut stored = cert.clone();
        // The revision this command gives the state.
        stored.version = self.revision + 1;
        self.certs.insert(cert.name.clone(), stored);
        Ok(Applied::Done)
    }

    /// Removes a certificate no listener uses.
    pub(crate) fn remove_cert(&mut self, name: &str) -> Result<Applied, ModelError> {
        if !self.certs.contains_key(name) {
            return Err(ModelError::CertNotFound {
                cert: name.to_string(),
            });
        }
        let listeners = self.listeners_using(name);
        if !listeners.is_empty() {
            return Err(ModelError::CertInUse {
                cert: name.to_string(),
                listeners,
            });
        }
        self.certs.remove(name);
        Ok(Applied::Done)
    }

    /// Ports of the listeners that terminate TLS with `cert`.
    pub fn listeners_using(&self, cert: &str) -> Vec<u16> {
        self.listeners
            .values()
            .filter(|l| l.tls.iter().any(|c| c == cert))
            .map(|l| l.port)
            .collect()
    }

    /// A listener's certificate names: each stored, none twice, at most
    /// [`MAX_LISTENER_CERTS`].
    pub(crate) fn check_listener_certs(&self, names: &[String]) -> Result<(), ModelError> {
        if names.len() > MAX_LISTENER_CERTS {
            return Err(ModelError::OutOfRange {
                field: "tls".into(),
                value: names.len().to_string(),
                range: "0..=16 certificates".into(),
            });
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(ModelError::Invalid {
                    field: "tls".into(),
                    value: name.clone(),
                    expected: "each certificate named once".into(),
                });
            }
            if !self.certs.contains_key(name) {
                return Err(ModelError::CertNotFound { cert: name.clone() });
            }
        }
        Ok(())
    }
}

fn within(field: &'static str, len: usize, max: usize) -> Result<(), ModelError> {
    if len == 0 || len > max {
        return Err(ModelError::OutOfRange {
            field: field.into(),
            value: format!("{len} bytes"),
            range: format!("1..={max} bytes").into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertInfo, Command, DrainPolicy, SecretPem};

    fn cert(name: &str, chain: &str) -> Cert {
        Cert {
            name: name.into(),
            chain_pem: chain.into(),
            key_pem: SecretPem("-----BEGIN PRIVATE KEY-----".into()),
            info: CertInfo {
                subject: "CN=example.test".into(),
                sans: vec!["example.test".into()],
                issuer: "CN=test ca".into(),
                not_before: 0,
                not_after: 1,
                fingerprint_sha256: "00".into(),
                chain_len: 1,
            },
            version: 0,
        }
    }

    fn with_group() -> State {
        let mut s = State::with_nodes([1]);
        s.apply(&Command::CreateGroup {
            name: "web".into(),
            drain: DrainPolicy::default(),
            slow_start_ms: None,
        })
        .unwrap();
        s
    }

    #[test]
    fn a_listener_names_stored_certificates_only_and_keeps_them() {
        let mut s = with_group();
        let add = |tls: Vec<String>| Command::AddListener {
            port: 443,
            group: "web".into(),
            request_timeout_ms: 30_000,
            tls,
        };
        assert_eq!(
            s.apply(&add(vec!["site".into()])),
            Err(ModelError::CertNotFound {
                cert: "site".into()
            })
        );
        s.apply(&Command::AddCert {
            cert: cert("site", "A"),
        })
        .unwrap();
        assert!(matches!(
            s.apply(&add(vec!["site".into(), "site".into()])),
            Err(ModelError::Invalid { .. })
        ));
        s.apply(&add(vec!["site".into()])).unwrap();
        assert_eq!(s.listeners[&443].tls, vec!["site".to_string()]);
        assert_eq!(
            s.apply(&Command::RemoveCert {
                name: "site".into()
            }),
            Err(ModelError::CertInUse {
                cert: "site".into(),
                listeners: vec![443]
            })
        );
        // Plain again: the certificate is free.
        s.apply(&Command::UpdateListener {
            port: 443,
            group: None,
            request_timeout_ms: None,
            tls: Some(vec![]),
        })
        .unwrap();
        s.apply(&Command::RemoveCert {
            name: "site".into(),
        })
        .unwrap();
        assert!(s.certs.is_empty());
    }

    #[test]
    fn add_replaces_update_needs_one_and_the_version_grows() {
        let mut s = with_group();
        assert_eq!(
            s.apply(&Command::UpdateCert {
                cert: cert("site", "A"),
            }),
            Err(ModelError::CertNotFound {
                cert: "site".into()
            })
        );
        s.apply(&Command::AddCert {
            cert: cert("site", "A"),
        })
        .unwrap();
        let first = s.certs["site"].version;
        s.apply(&Command::UpdateCert {
            cert: cert("site", "B"),
        })
        .unwrap();
        assert_eq!(s.certs["site"].chain_pem, "B");
        assert!(s.certs["site"].version > first);
        s.apply(&Command::AddCert {
            cert: cert("site", "C"),
        })
        .unwrap();
        assert_eq!(s.certs["site"].chain_pem, "C");
    }

    #[test]
    fn bad_names_and_sizes_are_refused_and_the_key_never_prints() {
        let mut s = with_group();
        assert!(matches!(
            s.apply(&Command::AddCert {
                cert: cert("Bad Name", "A"),
            }),
            Err(ModelError::Invalid { .. })
        ));
        assert!(matches!(
            s.apply(&Command::AddCert {
                cert: cert("big", &"x".repeat(MAX_CHAIN_PEM + 1)),
            }),
            Err(ModelError::OutOfRange { .. })
        ));
        let shown = format!("{:?}", cert("site", "A"));
        assert!(!shown.contains("BEGIN PRIVATE KEY"), "{shown}");
    }
}
