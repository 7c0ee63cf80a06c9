//! HTTPS listeners end to end: the real `sluice` binary, certificates put in
//! with the CLI, rustls clients. SNI picks among a listener's certificates
//! (none: the first), backends are told `X-Forwarded-Proto: https`,
//! keep-alive works over TLS, plain HTTP to a TLS port is a counted failed
//! handshake, a replaced certificate reaches new handshakes with no failed
//! request under load, and drains keep their meaning: `500` with
//! `Connection: close` at the deadline, Close 1001 on a `wss://` tunnel.
//! A client that offers `h2` by ALPN is served HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use sluice_testkit::tls::{write_pair, TestCa};
use sluice_testkit::{BackendConn, BackendEvent, NodeOptions, NodeProcess, ScriptedBackend};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A node with group `web` (drain timeout `drain`, no health checks) over
/// `addrs`, certificates `a` (a.test and 127.0.0.1) and `b` (b.test) from
/// `ca`, and a listener terminating TLS with both (`a` the default).
/// Returns the node, the listener's address and the directory of the PEM
/// files.
async fn tls_node(
    ca: &TestCa,
    addrs: &[&str],
    drain: &str,
) -> (NodeProcess, String, tempfile::TempDir) {
    let node = tokio::task::spawn_blocking(|| {
        NodeProcess::start(BIN.as_ref(), NodeOptions::local(1)).expect("start node")
    })
    .await
    .unwrap();
    cli_ok(&node, &["group", "create", "web", "--drain-timeout", drain]).await;
    cli_ok(&node, &["group", "update", "web", "--no-health-checks"]).await;
    for a in addrs {
        cli_ok(&node, &["backend", "add", "web", a]).await;
    }
    let dir = tempfile::tempdir().unwrap();
    add_cert(&node, dir.path(), "a", &ca.leaf(&["a.test", "127.0.0.1"])).await;
    add_cert(&node, dir.path(), "b", &ca.leaf(&["b.test"])).await;
    let port = sluice_testkit::free_port().to_string();
    cli_ok(
        &node,
        &[
            "listener", "add", "--port", &port, "--group", "web", "--tls", "a,b",
        ],
    )
    .await;
    let listen = format!("127.0.0.1:{port}");
    // Bound: a TLS handshake answers.
    poll(Duration::from_secs(5), "listener up", || async {
        handshake(ca, &listen, None).await.map(|_| ())
    })
    .await;
    (node, listen, dir)
}

/// `cert add NAME` with the (chain, key) pair written under `dir`.
async fn add_cert(node: &NodeProcess, dir: &Path, name: &str, pair: &(String, String)) {
    let (crt, key) = write_pair(dir, name, pair).unwrap();
    cli_ok(
        node,
        &[
            "cert",
            "add",
            name,
            "--cert",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    )
    .await;
}

/// The SHA-256 of a certificate's DER, lowercase hex (as `cert show` says).
fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `cert show NAME`'s fingerprint.
async fn stored_fingerprint(node: &NodeProcess, name: &str) -> String {
    let v = cli_json(node, &["cert", "show", name]).await;
    v["fingerprint_sha256"].as_str().unwrap().to_string()
}

/// A TLS connection to `addr` trusting `ca`, sending `sni` as the server
/// name (none: the IP, which sends no SNI). The server's certificate is
/// verified for that name.
async fn handshake(
    ca: &TestCa,
    addr: &str,
    sni: Option<&str>,
) -> Result<TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().into()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_string()).unwrap(),
        None => ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into()),
    };
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// The fingerprint of the certificate the server presented.
fn peer_fingerprint(tls: &TlsStream<TcpStream>) -> String {
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    fingerprint(certs[0].as_ref())
}

/// One answer read off a connection: status, head (lowercase), body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `GET path` on `io` and reads the answer (framed by
/// `Content-Length`).
async fn get<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, path: &str) -> Result<Answer, String> {
    let req = format!("GET {path} HTTP/1.1\r\nhost: a.test\r\n\r\n");
    io.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    io.flush().await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = io.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "closed before an answer: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head[9..12].parse().map_err(|_| head.clone())?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no content-length: {head}"))?;
    while buf.len() < head_end + len {
        let n = io.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed within the body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
    Ok(Answer { status, head, body })
}

/// The node's `sluice_tls_handshake_failures_total`.
async fn handshake_failures(node: &NodeProcess) -> Result<u64, String> {
    series(node, "sluice_tls_handshake_failures_total{").await
}

/// `sluice_listener_tls_handshake_failures_total` of the listener `listen`
/// (`ip:port`).
async fn listener_handshake_failures(node: &NodeProcess, listen: &str) -> Result<u64, String> {
    let port = listen.rsplit(':').next().unwrap_or_default();
    let series_of = format!(
        "sluice_listener_tls_handshake_failures_total{{node=\"{}\",listener=\"{port}\"",
        node.node_id()
    );
    series(node, &series_of).await
}

/// The value of the first series of the node's `/metrics` that starts with
/// `prefix`.
async fn series(node: &NodeProcess, prefix: &str) -> Result<u64, String> {
    let (_, _, body) = sluice_testkit::http_get(
        &format!("{}/metrics", node.admin_url()),
        Duration::from_secs(2),
    )
    .await
    .map_err(|e| e.to_string())?;
    body.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .find_map(|rest| rest.split_once("} "))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| format!("no {prefix}… in /metrics"))
}

async fn ok_backend() -> ScriptedBackend {
    ScriptedBackend::start(|mut c: BackendConn| async move {
        while c.read_request().await.is_some() {
            if !c.write(OK).await {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_requests_are_forwarded_as_https() {
    let ca = TestCa::new("sluice test CA");
    let b = ok_backend().await;
    let (node, listen, _dir) = tls_node(&ca, &[b.addr()], "5s").await;
    let (fp_a, fp_b) = (
        stored_fingerprint(&node, "a").await,
        stored_fingerprint(&node, "b").await,
    );
    assert_ne!(fp_a, fp_b);

    // Each name gets its certificate (verified for that name), no SNI the
    // first; several requests go over one connection.
    for (sni, want) in [
        (Some("a.test"), &fp_a),
        (Some("b.test"), &fp_b),
        (None, &fp_a),
    ] {
        let mut tls = handshake(&ca, &listen, sni).await.unwrap();
        assert_eq!(&peer_fingerprint(&tls), want, "certificate for SNI {sni:?}");
        let protocol = tls.get_ref().1.protocol_version();
        assert_eq!(protocol, Some(rustls::ProtocolVersion::TLSv1_3));
        for i in 0..3 {
            let a = get(&mut tls, &format!("/r{i}")).await.unwrap();
            assert_eq!((a.status, a.body.as_str()), (200, "ok"), "{}", a.head);
            assert!(!a.head.contains("connection: close"), "{}", a.head);
        }
    }
    let seen = b.requests();
    assert_eq!(seen.len(), 9);
    assert!(
        seen.iter()
            .all(|r| r.header("x-forwarded-proto") == Some("https")),
        "{seen:?}"
    );

    // TLS 1.2 is offered too.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().into()).unwrap();
    let tls12 = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(&listen).await.unwrap();
    let mut c = tokio_rustls::TlsConnector::from(Arc::new(tls12))
        .connect(ServerName::try_from("b.test").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        c.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(get(&mut c, "/twelve").await.unwrap().status, 200);

    // Plain HTTP to the TLS port: no answer, the connection closes, the
    // failure is counted, and the node goes on serving.
    let before = handshake_failures(&node).await.unwrap();
    let listener_before = listener_handshake_failures(&node, &listen).await.unwrap();
    let mut plain = TcpStream::connect(&listen).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got))
        .await
        .expect("the node closed the connection")
        .ok();
    assert!(!got.starts_with(b"HTTP/"), "an HTTP answer: {got:?}");
    poll(Duration::from_secs(3), "failure counted", || async {
        let now = handshake_failures(&node).await?;
        if now > before {
            Ok(())
        } else {
            Err(format!("{now} <= {before}"))
        }
    })
    .await;
    assert_eq!(
        listener_handshake_failures(&node, &listen).await.unwrap(),
        listener_before + 1,
        "counted on its listener too"
    );
    let mut tls = handshake(&ca, &listen, Some("a.test")).await.unwrap();
    assert_eq!(get(&mut tls, "/after").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_under_load_fails_no_request() {
    let ca = TestCa::new("sluice test CA");
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let (node, listen, dir) = tls_node(&ca, &[&addr], "5s").await;
    let old = stored_fingerprint(&node, "a").await;

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(4);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (ca_der, listen, ok, failed) = (ca.der(), listen.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let ca = ca_der;
            // New connections all along, three requests each.
            while Instant::now() < stop_at {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.clone().into()).unwrap();
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let tcp = TcpStream::connect(&listen).await.unwrap();
                let conn = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(ServerName::try_from("a.test").unwrap(), tcp)
                    .await;
                let Ok(mut tls) = conn else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                for _ in 0..3 {
                    match get(&mut tls, "/").await {
                        Ok(a) if a.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = ok.load(Ordering::SeqCst);
    // `cert add` on the stored name replaces it.
    add_cert(&node, dir.path(), "a", &ca.leaf(&["a.test", "127.0.0.1"])).await;
    let new = stored_fingerprint(&node, "a").await;
    assert_ne!(new, old);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{ok} requests answered, {failed} failed");
    assert!(
        ok > before && before > 0,
        "load ran across the replacement: {before} then {ok}"
    );
    println!("{ok} requests over TLS across the replacement ({before} before it), 0 failed");
    // New handshakes see the new certificate, no SNI too.
    for sni in [Some("a.test"), None] {
        let tls = handshake(&ca, &listen, sni).await.unwrap();
        assert_eq!(peer_fingerprint(&tls), new);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_over_tls_gets_500_and_close_at_the_drain_deadline() {
    let ca = TestCa::new("sluice test CA");
    let b = backend("ecs01", Duration::from_secs(10)).await;
    let addr = b.addr().to_string();
    let (node, listen, _dir) = tls_node(&ca, &[&addr], "1s").await;
    let mut tls = handshake(&ca, &listen, Some("a.test")).await.unwrap();
    let req = tokio::spawn(async move {
        let a = get(&mut tls, "/").await;
        (a, Instant::now(), tls)
    });
    b.wait_for(
        |e| matches!(e, BackendEvent::RequestStarted { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the request reached the backend");
    let removed_at = Instant::now();
    remove(&node, &addr).await.expect("drains");
    let (answer, at, mut tls) = req.await.unwrap();
    let answer = answer.unwrap();
    let after = at - removed_at;
    assert_eq!(answer.status, 500, "{}", answer.body);
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(1500),
        "500 came {after:?} after the removal, expected about 1 s"
    );
    // Then the connection ends (with close_notify: a clean end of stream).
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut rest)).await;
    assert!(matches!(end, Ok(Ok(0))), "{end:?} {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_tunnel_is_closed_1001_on_both_sides_at_the_drain_deadline() {
    let ca = TestCa::new("sluice test CA");
    let b = backend("ecs01", Duration::ZERO).await;
    let addr = b.addr().to_string();
    let (node, listen, _dir) = tls_node(&ca, &[&addr], "2s").await;
    let tls = handshake(&ca, &listen, Some("a.test")).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("wss://a.test/chat", tls)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(
        matches!(echo, Some(Ok(Message::Text(ref t))) if t.as_str().ends_with(": hello")),
        "{echo:?}"
    );

    let deadline = remove(&node, &addr).await.expect("drains");
    // Echoes go on through the drain.
    ws.send(Message::text("still")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(1), ws.next())
        .await
        .unwrap();
    assert!(
        matches!(echo, Some(Ok(Message::Text(ref t))) if t.as_str().ends_with(": still")),
        "{echo:?}"
    );
    // Close 1001 at the deadline.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("no Close frame: {other:?}"),
        }
    };
    let late = now_ms() as i64 - deadline as i64;
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    assert!(
        (-50..500).contains(&late),
        "Close came {late} ms from the deadline"
    );
    // The backend got its Close 1001 too.
    let seen = b
        .wait_for(
            |e| matches!(e, BackendEvent::WebSocketCloseReceived { code: Some(1001) }),
            Duration::from_secs(2),
        )
        .await;
    assert!(seen.is_some(), "backend saw Close 1001: {:?}", b.events());
}

/// A TLS connection to `addr` (SNI a.test) offering `alpn`.
async fn handshake_alpn(ca: &TestCa, addr: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().into()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("a.test").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_is_served_http2_and_http1_clients_keep_http1() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let ca = TestCa::new("sluice test CA");
    let b = ok_backend().await;
    let (_node, listen, _dir) = tls_node(&ca, &[b.addr()], "5s").await;

    // A client offering h2 first gets h2, and streams go through as
    // HTTP/1.1 with `X-Forwarded-Proto: https`.
    let tls = handshake_alpn(&ca, &listen, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut streams = Vec::new();
    for i in 0..8 {
        let req = http::Request::get(format!("https://a.test/h2/{i}"))
            .body(Empty::new())
            .unwrap();
        streams.push(send.send_request(req));
    }
    for s in streams {
        let resp = s.await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("connection").is_none());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }
    let seen = b.requests();
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(
        seen.iter()
            .all(|r| r.header("x-forwarded-proto") == Some("https")
                && r.header("host") == Some("a.test")),
        "{seen:?}"
    );

    // A client offering only http/1.1 keeps HTTP/1.1.
    let mut tls = handshake_alpn(&ca, &listen, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let a = get(&mut tls, "/one").await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, "ok"), "{}", a.head);
}
