//! `SniResolver` and `server_config`: the pick by name, and real TLS
//! handshakes over loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use sluice_testkit::TestCa;
use sluice_tls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};
use sluice_tls::{certified_key, inspect, server_config, SniResolver};

fn now_ms() -> u64 {
    sluice_clock::now_ms()
}

/// Three certificates: "main" (the default), "api" (a wildcard), "other".
fn resolver(ca: &TestCa) -> (SniResolver, Vec<sluice_model::Cert>) {
    let now = now_ms();
    let certs = vec![
        {
            let (c, k) = ca.leaf(&["www.example.test", "example.test"]);
            inspect("main", &c, &k, now).unwrap()
        },
        {
            let (c, k) = ca.leaf(&["*.api.example.test"]);
            inspect("api", &c, &k, now).unwrap()
        },
        {
            let (c, k) = ca.leaf(&["other.test", "www.example.test"]);
            inspect("other", &c, &k, now).unwrap()
        },
    ];
    (SniResolver::from_certs(&certs).unwrap(), certs)
}

#[test]
fn the_name_picks_exactly_then_by_wildcard_else_the_default() {
    let ca = TestCa::new("test ca");
    let (r, _) = resolver(&ca);
    let pick = |n: Option<&str>| r.pick(n).map(|(name, _)| name.to_string()).unwrap();
    assert_eq!(
        pick(Some("www.example.test")),
        "main",
        "earlier certificate wins"
    );
    assert_eq!(pick(Some("WWW.Example.TEST")), "main", "case-insensitive");
    assert_eq!(pick(Some("example.test.")), "main", "trailing dot");
    assert_eq!(pick(Some("other.test")), "other");
    assert_eq!(
        pick(Some("v1.api.example.test")),
        "api",
        "wildcard, one label"
    );
    assert_eq!(pick(Some("V2.API.example.test")), "api");
    assert_eq!(
        pick(Some("api.example.test")),
        "main",
        "wildcard needs a label"
    );
    assert_eq!(
        pick(Some("a.b.api.example.test")),
        "main",
        "wildcard covers one label only"
    );
    assert_eq!(pick(Some("unknown.test")), "main", "unknown: the default");
    assert_eq!(pick(None), "main", "no SNI: the default");
    assert_eq!(r.names().collect::<Vec<_>>(), vec!["main", "api", "other"]);
    assert!(SniResolver::new(Vec::new()).pick(Some("a.test")).is_none());
}

/// Serves one handshake on loopback with `resolver`, connects a client
/// that trusts `ca` and sends `sni` (None: no SNI, verifying
/// `verify_as`), and returns the leaf the client saw and the ALPN agreed.
fn handshake(
    resolver: SniResolver,
    ca: &TestCa,
    sni: Option<&str>,
    verify_as: &str,
    client_alpn: Vec<Vec<u8>>,
    version: &'static rustls::SupportedProtocolVersion,
) -> (
    Vec<u8>,
    Option<Vec<u8>>,
    rustls::ProtocolVersion,
    rustls::CipherSuite,
) {
    let config = server_config(
        Arc::new(resolver),
        vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).unwrap();
        tls.write_all(b"pong").unwrap();
        tls.flush().unwrap();
    });

    let mut roots = RootCertStore::empty();
    roots.add(ca.der().into()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = client_alpn;
    client.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or(verify_as).to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    tls.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    server.join().unwrap();
    let leaf = tls.conn.peer_certificates().unwrap()[0].to_vec();
    let alpn = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
    let version = tls.conn.protocol_version().unwrap();
    let suite = tls.conn.negotiated_cipher_suite().unwrap().suite();
    (leaf, alpn, version, suite)
}

fn leaf_der(cert: &sluice_model::Cert) -> Vec<u8> {
    certified_key(cert).unwrap().cert[0].to_vec()
}

#[test]
fn handshakes_get_the_certificate_their_name_picks() {
    let ca = TestCa::new("test ca");
    let tls13 = &rustls::version::TLS13;
    let (r, certs) = resolver(&ca);
    let (leaf, alpn, version, suite) = handshake(
        r,
        &ca,
        Some("v1.api.example.test"),
        "",
        vec![b"h2".to_vec()],
        tls13,
    );
    assert_eq!(leaf, leaf_der(&certs[1]));
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
    // The client lists AES-256 first; the server's order wins.
    assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);

    let (r, certs) = resolver(&ca);
    let (leaf, _, _, _) = handshake(r, &ca, Some("other.test"), "", vec![], tls13);
    assert_eq!(leaf, leaf_der(&certs[2]));

    // No SNI: the default, which the client verifies as example.test.
    let (r, certs) = resolver(&ca);
    let (leaf, alpn, _, _) = handshake(
        r,
        &ca,
        None,
        "example.test",
        vec![b"http/1.1".to_vec()],
        tls13,
    );
    assert_eq!(leaf, leaf_der(&certs[0]));
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[test]
fn tls12_clients_are_served_too() {
    let ca = TestCa::new("test ca");
    let (r, certs) = resolver(&ca);
    let (leaf, _, version, _) = handshake(
        r,
        &ca,
        Some("www.example.test"),
        "",
        vec![],
        &rustls::version::TLS12,
    );
    assert_eq!(leaf, leaf_der(&certs[0]));
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
}
