//! `inspect` and `certified_key` on chains and keys made by a test CA.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use sluice_testkit::TestCa;
use sluice_tls::{certified_key, inspect, CertError, Input};

const RSA_PKCS1: &str = include_str!("keys/rsa-pkcs1.key");
const RSA_PKCS8: &str = include_str!("keys/rsa-pkcs8.key");
const EC_SEC1: &str = include_str!("keys/ec-sec1.key");
const EC_PKCS8: &str = include_str!("keys/ec-pkcs8.key");
const EC_ENCRYPTED: &str = include_str!("keys/ec-encrypted.key");

fn now_ms() -> u64 {
    sluice_clock::now_ms()
}

const DAY_MS: u64 = 86_400_000;

#[test]
fn a_good_chain_is_read_and_loads() {
    let root = TestCa::new("sluice test root");
    let ca = root.intermediate("sluice test issuing ca");
    let (chain, key) = ca.leaf(&["www.example.test", "*.api.example.test", "127.0.0.1", "::1"]);
    let now = now_ms();
    let cert = inspect("site", &chain, &key, now).unwrap();
    assert_eq!(cert.name, "site");
    assert_eq!(cert.version, 0);
    assert_eq!(cert.info.subject, "CN=www.example.test");
    assert_eq!(cert.info.issuer, "CN=sluice test issuing ca");
    assert_eq!(
        cert.info.sans,
        vec!["www.example.test", "*.api.example.test", "127.0.0.1", "::1"]
    );
    assert_eq!(cert.info.chain_len, 2);
    // TestCa: valid from a day ago for 90 days; certificates carry seconds.
    assert!(
        cert.info.not_before <= now - DAY_MS + 1000 && cert.info.not_before >= now - DAY_MS - 5000
    );
    assert!(cert.info.not_after >= now + 89 * DAY_MS && cert.info.not_after <= now + 91 * DAY_MS);
    assert_eq!(cert.info.fingerprint_sha256.len(), 64);
    assert!(cert
        .info
        .fingerprint_sha256
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let key_loaded = certified_key(&cert).unwrap();
    assert_eq!(key_loaded.cert.len(), 2);
    // Stored normalised: the chain's certificates only, LF line ends.
    assert_eq!(
        cert.chain_pem
            .matches("-----BEGIN CERTIFICATE-----")
            .count(),
        2
    );
    assert!(!cert.chain_pem.contains('\r'));
    // The same leaf gives the same fingerprint; another leaf another.
    let again = inspect("site", &chain, &key, now).unwrap();
    assert_eq!(again.info.fingerprint_sha256, cert.info.fingerprint_sha256);
    let (other_chain, other_key) = ca.leaf(&["www.example.test"]);
    let other = inspect("site", &other_chain, &other_key, now).unwrap();
    assert_ne!(other.info.fingerprint_sha256, cert.info.fingerprint_sha256);
}

#[test]
fn text_around_the_blocks_is_dropped_from_what_is_stored() {
    let ca = TestCa::new("test ca");
    let (chain, key) = ca.leaf(&["a.test"]);
    let chain_with_text = format!("Bag Attributes\n    friendlyName: a.test\n{chain}\n\n");
    let cert = inspect("a", &chain_with_text, &key, now_ms()).unwrap();
    assert!(
        cert.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        cert.chain_pem
    );
    assert!(!cert.chain_pem.contains("Bag Attributes"));
}

#[test]
fn rsa_pkcs1_and_ec_sec1_keys_are_accepted_as_well_as_pkcs8() {
    let ca = TestCa::new("test ca");
    let now = now_ms();
    let rsa_chain = ca.leaf_for_key(&["rsa.test"], RSA_PKCS8);
    for key in [RSA_PKCS1, RSA_PKCS8] {
        let cert = inspect("rsa", &rsa_chain, key, now).unwrap();
        certified_key(&cert).unwrap();
    }
    let ec_chain = ca.leaf_for_key(&["ec.test"], EC_PKCS8);
    for key in [EC_SEC1, EC_PKCS8] {
        let cert = inspect("ec", &ec_chain, key, now).unwrap();
        certified_key(&cert).unwrap();
    }
    // The SEC1 file's EC PARAMETERS block is not kept.
    let cert = inspect("ec", &ec_chain, EC_SEC1, now).unwrap();
    assert!(cert.key_pem.0.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    assert!(!cert.key_pem.0.contains("EC PARAMETERS"));
    // An RSA key with the EC leaf: a mismatch, not a crash.
    assert_eq!(
        inspect("ec", &ec_chain, RSA_PKCS1, now).unwrap_err(),
        CertError::KeyMismatch
    );
}

#[test]
fn a_key_that_is_not_the_leafs_is_refused() {
    let ca = TestCa::new("test ca");
    let (chain, _) = ca.leaf(&["a.test"]);
    let (_, other_key) = ca.leaf(&["a.test"]);
    let err = inspect("a", &chain, &other_key, now_ms()).unwrap_err();
    assert_eq!(err, CertError::KeyMismatch);
    assert_eq!(err.field(), "key");
    assert_eq!(err.code(), "key_mismatch");
    assert!(
        err.to_string().contains("does not match the certificate"),
        "{err}"
    );
    // The CA's certificate first (leaf not first) is a mismatch too.
    let root = TestCa::new("root");
    let ca = root.intermediate("issuing");
    let (chain, key) = ca.leaf(&["a.test"]);
    let reversed: Vec<&str> = chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    let reversed = format!("{}{}", reversed[1], reversed[0]);
    assert_eq!(
        inspect("a", &reversed, &key, now_ms()).unwrap_err(),
        CertError::KeyMismatch
    );
}

#[test]
fn an_expired_or_not_yet_valid_leaf_is_refused_with_its_date() {
    let ca = TestCa::new("test ca");
    let (chain, key) = ca.expired_leaf(&["old.test"]);
    let now = now_ms();
    let err = inspect("old", &chain, &key, now).unwrap_err();
    let CertError::Expired { not_after } = err else {
        panic!("expected Expired, got {err:?}");
    };
    assert!(not_after < now && not_after > now - 2 * DAY_MS);
    assert_eq!(err.field(), "cert");
    assert_eq!(err.code(), "certificate_expired");
    assert!(
        err.to_string().starts_with("the certificate expired on 20"),
        "{err}"
    );
    // The same certificate was fine before it expired.
    inspect("old", &chain, &key, now - 10 * DAY_MS).unwrap();

    let (chain, key) = ca.future_leaf(&["new.test"]);
    let err = inspect("new", &chain, &key, now).unwrap_err();
    assert!(
        matches!(err, CertError::NotYetValid { not_before } if not_before > now),
        "{err:?}"
    );
    assert_eq!(err.code(), "certificate_not_yet_valid");
    assert!(err.to_string().contains("not valid before 20"), "{err}");
}

#[test]
fn input_that_is_not_pem_is_refused_naming_the_input() {
    let ca = TestCa::new("test ca");
    let (chain, key) = ca.leaf(&["a.test"]);
    let now = now_ms();

    let err = inspect("a", "hello, I am not a certificate", &key, now).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::NotPem {
                input: Input::Cert,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!((err.field(), err.code()), ("cert", "invalid_certificate"));
    assert!(
        err.to_string().contains("certificate chain is not PEM"),
        "{err}"
    );

    let err = inspect("a", &chain, "", now).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::NotPem {
                input: Input::Key,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!((err.field(), err.code()), ("key", "invalid_key"));

    // Broken base64 inside the block.
    let broken = chain.replacen("MII", "M!I", 1);
    let err = inspect("a", &broken, &key, now).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::NotPem {
                input: Input::Cert,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn anything_but_certificates_in_the_chain_is_refused() {
    let ca = TestCa::new("test ca");
    let (chain, key) = ca.leaf(&["a.test"]);
    let now = now_ms();

    // The key pasted after the leaf.
    let err = inspect("a", &format!("{chain}{key}"), &key, now).unwrap_err();
    assert_eq!(
        err,
        CertError::NotACertificate {
            position: 2,
            label: "PRIVATE KEY".into()
        }
    );
    assert_eq!(err.code(), "invalid_certificate");

    // The key given as the chain, the chain as the key.
    let err = inspect("a", &key, &chain, now).unwrap_err();
    assert!(matches!(err, CertError::NoCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("only a PRIVATE KEY"), "{err}");
    let err = inspect("a", &chain, &chain, now).unwrap_err();
    assert!(matches!(err, CertError::NoKey { .. }), "{err:?}");

    // A CERTIFICATE block that holds no certificate.
    let garbage = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let err = inspect("a", &format!("{chain}{garbage}"), &key, now).unwrap_err();
    assert!(
        matches!(err, CertError::BadCertificate { position: 2, .. }),
        "{err:?}"
    );

    // Two keys; an encrypted key; a key type of another label.
    let (_, other_key) = ca.leaf(&["a.test"]);
    let err = inspect("a", &chain, &format!("{key}{other_key}"), now).unwrap_err();
    assert_eq!(err, CertError::ManyKeys { count: 2 });
    let err = inspect("a", &chain, EC_ENCRYPTED, now).unwrap_err();
    assert!(
        matches!(&err, CertError::UnsupportedKey { label, .. } if label == "ENCRYPTED PRIVATE KEY"),
        "{err:?}"
    );
    assert_eq!(err.code(), "invalid_key");
    let dsa = "-----BEGIN DSA PRIVATE KEY-----\naGVsbG8=\n-----END DSA PRIVATE KEY-----\n";
    let err = inspect("a", &chain, dsa, now).unwrap_err();
    assert!(matches!(err, CertError::UnsupportedKey { .. }), "{err:?}");
    // A PRIVATE KEY block whose content is no key.
    let junk = "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n";
    let err = inspect("a", &chain, junk, now).unwrap_err();
    assert!(matches!(err, CertError::UnsupportedKey { .. }), "{err:?}");
}

#[test]
fn oversized_input_is_refused_before_it_is_parsed() {
    let ca = TestCa::new("test ca");
    let (chain, key) = ca.leaf(&["a.test"]);
    let big = format!("{chain}{}", " ".repeat(sluice_model::MAX_CHAIN_PEM));
    let err = inspect("a", &big, &key, now_ms()).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::TooLarge {
                input: Input::Cert,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn no_error_message_quotes_the_key() {
    let ca = TestCa::new("test ca");
    let (chain, key) = ca.leaf(&["a.test"]);
    let (_, other_key) = ca.leaf(&["a.test"]);
    let body: String = key.lines().nth(1).unwrap().to_string();
    for err in [
        inspect("a", &chain, &other_key, now_ms()).unwrap_err(),
        inspect("a", &key, &key, now_ms()).unwrap_err(),
        inspect("a", &format!("{chain}{key}"), &key, now_ms()).unwrap_err(),
    ] {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&body), "{shown}");
    }
    let cert = inspect("a", &chain, &key, now_ms()).unwrap();
    assert!(!format!("{cert:?}").contains(&body));
}
