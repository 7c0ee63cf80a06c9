//! In-crate tests that need the actors' private messages: supervision.
//! They wait for the event itself (a connection gone), never a fixed time.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sluice_model::{Command, DrainId, DrainPolicy, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::messages::ConnectionMessage;
use crate::{DataPlane, DataPlaneEvents, ProxySettings};

struct NoReports;
impl DataPlaneEvents for NoReports {
    fn drain_finished(&self, _: DrainId, _: &str, _: &str) {}
}

async fn ok_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        bytes::Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one keep-alive GET and reads one response; `None` if the
/// connection is closed.
async fn get(s: &mut TcpStream) -> Option<String> {
    s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn a_crashing_connection_loses_only_itself() {
    let backend = ok_backend().await;
    let port = free_port();
    let settings = ProxySettings {
        node_id: 9001,
        ..ProxySettings::default()
    };
    let dp = DataPlane::start(settings, Arc::new(NoReports))
        .await
        .unwrap();
    let mut s = State::with_nodes([9001]);
    for c in [
        Command::CreateGroup {
            name: "web".into(),
            drain: DrainPolicy::default(),
            slow_start_ms: None,
        },
        Command::AddBackend {
            group: "web".into(),
            addr: backend.to_string(),
            weight: 100,
            at: 0,
        },
        Command::AddListener {
            port,
            group: "web".into(),
            request_timeout_ms: 5_000,
        },
    ] {
        s.apply(&c).unwrap();
    }
    dp.apply(Arc::new(s)).await.unwrap();

    let mut a = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut b = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(get(&mut a).await.unwrap().ends_with("ok"));
    assert!(get(&mut b).await.unwrap().ends_with("ok"));

    let listener = ractor::registry::where_is(format!("node9001-listener-{port}")).unwrap();
    let conns = listener.get_children();
    assert_eq!(conns.len(), 2);
    conns[0]
        .send_message(ConnectionMessage::Panic)
        .expect("connection alive");

    // Exactly one of the two connections is gone; the other still works.
    let start = std::time::Instant::now();
    while listener.get_children().len() != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the crashed connection was not removed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (ra, rb) = (get(&mut a).await, get(&mut b).await);
    assert_eq!(
        [ra.is_some(), rb.is_some()].iter().filter(|x| **x).count(),
        1,
        "{ra:?} {rb:?}"
    );
    // The listener still accepts and serves.
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(get(&mut c).await.unwrap().ends_with("ok"));
    assert_eq!(dp.metrics().connection_crashes.load(Ordering::Relaxed), 1);
    assert_eq!(listener.get_children().len(), 2);
    dp.stop().await;
}
