//! DemoBackend against real clients over loopback.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sluice_testkit::{http_get, BackendEvent, DemoBackend, DemoBackendConfig, WsClient, WsEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(5);

async fn backend(name: &str, delay: Duration) -> DemoBackend {
    DemoBackend::start(DemoBackendConfig {
        delay,
        ..DemoBackendConfig::local(name)
    })
    .await
    .expect("start demo backend")
}

/// Reads one HTTP/1.1 response with a Content-Length body from `stream`.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(T, stream.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "connection closed mid-response: {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn slow_request_is_answered_after_the_delay_with_the_header() {
    let b = backend("ecs01", Duration::from_millis(300)).await;
    let started = Instant::now();
    let (status, headers, body) = http_get(&format!("http://{}/", b.addr()), T).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 200);
    assert_eq!(body, "Hello from ecs01\n");
    assert_eq!(headers.get("x-backend").unwrap(), "ecs01");
    assert_eq!(b.requests_started(), 1);
    assert_eq!(b.name(), "ecs01");

    let answered = b
        .wait_for(
            |e| matches!(e, BackendEvent::RequestAnswered { status: 200, path } if path == "/"),
            T,
        )
        .await
        .expect("answered event");
    let started_event = b
        .wait_for(|e| matches!(e, BackendEvent::RequestStarted { .. }), T)
        .await
        .unwrap();
    assert!(answered.at.duration_since(started_event.at) >= Duration::from_millis(300));
}

#[tokio::test]
async fn query_delay_overrides_the_configured_delay() {
    let b = backend("b", Duration::from_secs(30)).await;
    let started = Instant::now();
    let (status, _, body) = http_get(&format!("http://{}/x?delay=50ms", b.addr()), T)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!((status, body.as_str()), (200, "Hello from b\n"));
    assert!(took >= Duration::from_millis(50) && took < T, "{took:?}");
    assert!(b
        .wait_for(
            |e| matches!(e, BackendEvent::RequestAnswered { path, status: 200 } if path == "/x?delay=50ms"),
            T
        )
        .await
        .is_some());

    let (status, _, body) = http_get(&format!("http://{}/?delay=soon", b.addr()), T)
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("invalid delay"), "{body}");
}

#[tokio::test]
async fn health_answers_at_once_and_is_not_counted() {
    let b = backend("b", Duration::from_secs(30)).await;
    let (status, headers, body) = http_get(&format!("http://{}/health", b.addr()), T)
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(headers.get("x-backend").unwrap(), "b");
    assert_eq!(b.requests_started(), 0);
    assert!(!b
        .events()
        .iter()
        .any(|r| matches!(r.event, BackendEvent::RequestStarted { .. })));
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let b = backend("b", Duration::ZERO).await;
    let mut s = TcpStream::connect(b.addr()).await.unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut s).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("Hello from b\n"), "{response}");
    }
    drop(s);
    b.wait_for(|e| matches!(e, BackendEvent::ConnectionClosed { .. }), T)
        .await
        .expect("connection closed");
    let events = b.events();
    let opened = events
        .iter()
        .filter(|r| matches!(r.event, BackendEvent::ConnectionOpened { .. }))
        .count();
    assert_eq!(opened, 1);
    assert_eq!(b.requests_started(), 3);
}

#[tokio::test]
async fn client_going_away_mid_delay_is_recorded_as_aborted() {
    let b = backend("b", Duration::from_secs(30)).await;
    let mut s = TcpStream::connect(b.addr()).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    b.wait_for(|e| matches!(e, BackendEvent::RequestStarted { .. }), T)
        .await
        .expect("started");
    let dropped_at = Instant::now();
    drop(s);
    let aborted = b
        .wait_for(
            |e| matches!(e, BackendEvent::RequestAborted { path } if path == "/slow"),
            T,
        )
        .await
        .expect("aborted event");
    assert!(aborted.at >= dropped_at);
    b.wait_for(|e| matches!(e, BackendEvent::ConnectionClosed { .. }), T)
        .await
        .expect("connection closed");
    assert!(!b
        .events()
        .iter()
        .any(|r| matches!(r.event, BackendEvent::RequestAnswered { .. })));
}

#[tokio::test]
async fn websocket_echoes_text_and_records_it() {
    let b = backend("b", Duration::from_secs(30)).await;
    let mut ws = WsClient::connect(&format!("ws://{}/ws", b.addr()))
        .await
        .unwrap();
    b.wait_for(|e| matches!(e, BackendEvent::WebSocketOpened { .. }), T)
        .await
        .expect("opened");
    for text in ["hello", "world"] {
        ws.send_text(text).await.unwrap();
        assert_eq!(
            ws.next_event(T).await,
            WsEvent::Text(format!("Server received your message: {text}"))
        );
    }
    assert!(b
        .wait_for(
            |e| matches!(e, BackendEvent::WebSocketMessage { text } if text == "world"),
            T
        )
        .await
        .is_some());
    assert_eq!(
        ws.next_event(Duration::from_millis(50)).await,
        WsEvent::TimedOut
    );
    // The upgrade is not a "request" for the counters.
    assert_eq!(b.requests_started(), 0);
}

#[tokio::test]
async fn websocket_close_code_is_recorded_and_answered() {
    let b = backend("b", Duration::ZERO).await;
    let mut ws = WsClient::connect(&format!("ws://{}/", b.addr()))
        .await
        .unwrap();
    ws.send_close(1001).await.unwrap();
    assert_eq!(ws.next_event(T).await, WsEvent::Close(Some(1001)));
    assert_eq!(ws.next_event(T).await, WsEvent::Ended);
    let received = b
        .wait_for(
            |e| matches!(e, BackendEvent::WebSocketCloseReceived { code: Some(1001) }),
            T,
        )
        .await
        .expect("close code recorded");
    let closed = b
        .wait_for(|e| matches!(e, BackendEvent::WebSocketClosed { .. }), T)
        .await
        .expect("websocket closed");
    let conn_closed = b
        .wait_for(|e| matches!(e, BackendEvent::ConnectionClosed { .. }), T)
        .await
        .expect("connection closed");
    assert!(received.at <= closed.at && closed.at <= conn_closed.at);
}

#[tokio::test]
async fn websocket_pings_are_answered() {
    let b = backend("b", Duration::ZERO).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", b.addr()))
        .await
        .unwrap();
    ws.send(Message::Ping("p1".into())).await.unwrap();
    let reply = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::Pong("p1".into()));
}

#[tokio::test]
async fn upgrade_without_key_is_refused() {
    let b = backend("b", Duration::ZERO).await;
    let mut s = TcpStream::connect(b.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut s).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
}

#[tokio::test]
async fn ws_client_reports_a_refused_upgrade_with_its_status() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\ndraining!")
            .await;
    });
    let err = WsClient::connect(&format!("ws://{addr}/"))
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("503"), "{message}");
}

#[tokio::test]
async fn shutdown_drops_open_work_and_stops_accepting() {
    let b = backend("b", Duration::from_secs(30)).await;
    let addr = b.addr();
    let url = format!("http://{addr}/slow");
    let slow = tokio::spawn(async move { http_get(&url, T).await });
    let mut ws = WsClient::connect(&format!("ws://{addr}/")).await.unwrap();
    b.wait_for(|e| matches!(e, BackendEvent::RequestStarted { .. }), T)
        .await
        .expect("started");
    b.wait_for(|e| matches!(e, BackendEvent::WebSocketOpened { .. }), T)
        .await
        .expect("ws opened");

    let events: Vec<BackendEvent> = b.shutdown().await.into_iter().map(|r| r.event).collect();
    assert!(events.contains(&BackendEvent::RequestAborted {
        path: "/slow".into()
    }));
    assert!(events
        .iter()
        .any(|e| matches!(e, BackendEvent::WebSocketClosed { .. })));
    let opened = events
        .iter()
        .filter(|e| matches!(e, BackendEvent::ConnectionOpened { .. }))
        .count();
    let closed = events
        .iter()
        .filter(|e| matches!(e, BackendEvent::ConnectionClosed { .. }))
        .count();
    assert_eq!((opened, closed), (2, 2));

    assert!(slow.await.unwrap().is_err(), "in-flight request was cut");
    assert!(matches!(
        ws.next_event(T).await,
        WsEvent::Ended | WsEvent::Error(_)
    ));
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn wait_for_times_out_and_sees_later_events() {
    let b = backend("b", Duration::ZERO).await;
    let started = Instant::now();
    assert!(b
        .wait_for(
            |e| matches!(e, BackendEvent::RequestStarted { .. }),
            Duration::from_millis(100)
        )
        .await
        .is_none());
    assert!(started.elapsed() >= Duration::from_millis(100));

    let since = Instant::now();
    let url = format!("http://{}/", b.addr());
    let (found, _) = tokio::join!(
        b.wait_for_after(
            since,
            |e| matches!(e, BackendEvent::RequestAnswered { .. }),
            T
        ),
        async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            http_get(&url, T).await.unwrap()
        }
    );
    assert!(found.expect("found").at >= since);
}

async fn post(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    read_response(&mut s).await
}

#[tokio::test]
async fn health_can_be_failed_for_everyone_or_for_some_sources() {
    let b = backend("hb", Duration::ZERO).await;
    let health = format!("http://{}/health", b.addr());
    let status = |r: anyhow::Result<(u16, hyper::HeaderMap, String)>| r.unwrap().0;
    assert_eq!(status(http_get(&health, Duration::from_secs(2)).await), 200);
    // Failing only for another source address leaves 127.0.0.1 passing.
    assert!(post(b.addr(), "/admin/fail-health?from=127.0.0.2")
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(status(http_get(&health, Duration::from_secs(2)).await), 200);
    b.fail_health(&["127.0.0.1".parse().unwrap()]);
    assert_eq!(status(http_get(&health, Duration::from_secs(2)).await), 503);
    assert!(post(b.addr(), "/admin/pass-health")
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(status(http_get(&health, Duration::from_secs(2)).await), 200);
    assert!(post(b.addr(), "/admin/fail-health")
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(status(http_get(&health, Duration::from_secs(2)).await), 503);
    assert!(post(b.addr(), "/admin/fail-health?from=nope")
        .await
        .starts_with("HTTP/1.1 400"));
    let teapot = format!("http://{}/status/418", b.addr());
    assert_eq!(status(http_get(&teapot, Duration::from_secs(2)).await), 418);
}
