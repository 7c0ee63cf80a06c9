//! WebSocket tunnels on one node, end to end: every kind of frame passes,
//! a Close from either side ends the tunnel cleanly, and a drain keeps
//! echoes going until its deadline, then Close 1001 (the guide's first
//! scenario, times scaled down).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use sluice_testkit::BackendEvent;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket backend run by the test: echoes text and binary messages;
/// `fragment-me` gets a text message in three fragments with a ping between
/// them, `close-me` a Close 4000. Logs what it saw.
async fn scripted_backend() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let task_log = log.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let log = task_log.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                let note = |m: String| log.lock().unwrap().push(m);
                while let Some(m) = ws.next().await {
                    let reply = match m {
                        Ok(Message::Text(t)) if t.as_str() == "fragment-me" => {
                            let text = |d: &'static str, op, fin| {
                                Message::Frame(Frame::message(d, OpCode::Data(op), fin))
                            };
                            ws.send(text("frag", Data::Text, false)).await.unwrap();
                            ws.send(Message::Frame(Frame::ping("mid"))).await.unwrap();
                            ws.send(text("ment", Data::Continue, false)).await.unwrap();
                            ws.send(text("ed", Data::Continue, true)).await.unwrap();
                            continue;
                        }
                        Ok(Message::Text(t)) if t.as_str() == "close-me" => {
                            Message::Close(Some(CloseFrame {
                                code: CloseCode::Library(4000),
                                reason: "bye".into(),
                            }))
                        }
                        Ok(Message::Text(t)) => Message::Text(t),
                        Ok(Message::Binary(b)) => Message::Binary(b),
                        Ok(Message::Ping(p)) => {
                            note(format!("ping {}", String::from_utf8_lossy(&p)));
                            continue;
                        }
                        Ok(Message::Pong(p)) => {
                            note(format!("pong {}", String::from_utf8_lossy(&p)));
                            continue;
                        }
                        Ok(Message::Close(f)) => {
                            note(format!("close {:?}", f.map(|f| u16::from(f.code))));
                            continue;
                        }
                        Ok(Message::Frame(_)) => continue,
                        Err(e) => {
                            note(format!("error {e}"));
                            break;
                        }
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
                note("ended".into());
            });
        }
    });
    (addr, log)
}

/// A node routing a listener to the scripted backend; the WebSocket URL.
async fn node_to_scripted_backend() -> (sluice_testkit::NodeProcess, String, Arc<Mutex<Vec<String>>>)
{
    let (addr, log) = scripted_backend().await;
    let (node, url) = cluster_of_one(&[], &[], "60s").await;
    cli_ok(&node, &["group", "update", "web", "--no-health-checks"]).await;
    cli_ok(&node, &["backend", "add", "web", &addr.to_string()]).await;
    (node, format!("{}/chat", url.replace("http", "ws")), log)
}

async fn wait_logged(log: &Mutex<Vec<String>>, line: &str) -> bool {
    for _ in 0..200 {
        if log.lock().unwrap().iter().any(|l| l == line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_passes_every_kind_of_frame_and_a_client_close() {
    let (node, url, log) = node_to_scripted_backend().await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::text("hello"));
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::binary(big));
    // The backend answers the ping, not sluice.
    ws.send(Message::Ping("p1".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::Pong("p1".into()));
    assert!(wait_logged(&log, "ping p1").await);
    // A fragmented message with a ping between its fragments, both ways.
    let part = |d: &'static str, op, fin| Message::Frame(Frame::message(d, OpCode::Data(op), fin));
    ws.send(part("frag", Data::Text, false)).await.unwrap();
    ws.send(Message::Frame(Frame::ping("p2"))).await.unwrap();
    ws.send(part("ment", Data::Continue, true)).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::Pong("p2".into()));
    assert_eq!(recv(&mut ws).await, Message::text("fragment"));
    ws.send(Message::text("fragment-me")).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::Ping("mid".into()));
    assert_eq!(recv(&mut ws).await, Message::text("fragmented"));
    assert!(wait_logged(&log, "pong mid").await);

    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .unwrap();
    match recv_end(&mut ws).await {
        Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Normal),
        other => panic!("expected the backend's Close, got {other:?}"),
    }
    assert!(wait_logged(&log, "close Some(1000)").await, "{log:?}");
    assert!(wait_logged(&log, "ended").await, "{log:?}");
    // The relay took the client's socket back from hyper.
    assert!(!node.log().contains("cannot take the client's socket back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_backend_reaches_the_client_and_its_answer_the_backend() {
    let (_node, url, log) = node_to_scripted_backend().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::text("close-me")).await.unwrap();
    match recv_end(&mut ws).await {
        Some(Message::Close(Some(f))) => {
            assert_eq!((u16::from(f.code), f.reason.as_str()), (4000, "bye"))
        }
        other => panic!("expected the backend's Close, got {other:?}"),
    }
    // tungstenite answered the Close; the backend saw the answer, and the
    // connection ended on both sides.
    assert!(wait_logged(&log, "close Some(4000)").await, "{log:?}");
    assert!(wait_logged(&log, "ended").await, "{log:?}");
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message (5 s at most).
async fn recv(ws: &mut Client) -> Message {
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a message within 5 s")
        .expect("the stream goes on")
        .expect("no error")
}

/// The Close that ends the stream (the last message before its end).
async fn recv_end(ws: &mut Client) -> Option<Message> {
    let mut last = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the stream ends within 5 s")
        {
            Some(Ok(m)) => last = Some(m),
            Some(Err(e)) => panic!("the stream failed: {e} (after {last:?})"),
            None => return last,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_keeps_echoing_until_the_deadline_then_gets_1001() {
    let b = backend("ecs01", Duration::ZERO).await;
    let (node, url) = cluster_of_one(&["--drain-timeout", "3s"], &[&b], "60s").await;
    let (ws, resp) =
        tokio_tungstenite::connect_async(format!("{}/chat", url.replace("http", "ws")))
            .await
            .expect("websocket through sluice");
    assert_eq!(resp.status(), 101);
    let (mut tx, mut rx) = ws.split();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut sent = 0u32;
    let mut echoes_before = 0u32;
    let mut echoes_during = 0u32;
    let mut deadline: Option<u64> = None;
    let removal = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(removal);
    let mut remove_task = None;
    let (code, closed_at) = loop {
        tokio::select! {
            _ = tick.tick() => {
                sent += 1;
                // The client may see the Close before this send fails.
                let _ = tx.send(Message::text(format!("hello {sent}"))).await;
            }
            _ = &mut removal, if remove_task.is_none() => {
                let node_url = node.admin_url();
                let token = node.token().to_string();
                let addr = b.addr().to_string();
                remove_task = Some(tokio::spawn(async move {
                    let out = tokio::process::Command::new(BIN)
                        .args(["backend", "remove", "web", &addr, "--output", "json"])
                        .env("SLUICE_NODE", node_url)
                        .env("SLUICE_TOKEN", token)
                        .output()
                        .await
                        .unwrap();
                    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                    v["drain"]["deadline_ms"].as_u64().unwrap()
                }));
            }
            m = rx.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    assert!(t.starts_with("Server received your message: hello "), "{t}");
                    if remove_task.is_some() { echoes_during += 1 } else { echoes_before += 1 }
                }
                Some(Ok(Message::Close(frame))) => break (frame.map(|f| f.code), now_ms()),
                other => panic!("unexpected {other:?}"),
            },
        }
        if deadline.is_none() {
            if let Some(t) = remove_task.as_mut().filter(|t| t.is_finished()) {
                deadline = Some(t.await.unwrap());
            }
        }
    };
    let deadline = match deadline {
        Some(d) => d,
        None => remove_task.unwrap().await.unwrap(),
    };
    assert_eq!(code, Some(CloseCode::Away), "Close 1001 (Going Away)");
    let late = closed_at as i64 - deadline as i64;
    assert!(
        (0..250).contains(&late),
        "Close came {late} ms after the deadline"
    );
    assert!(echoes_before >= 3, "{echoes_before} echoes before removal");
    assert!(
        echoes_during >= 12,
        "the tunnel kept echoing during the 3 s drain: {echoes_during} echoes"
    );
    // The backend side got the Close too, and logged it.
    let seen = b
        .wait_for(
            |e| matches!(e, BackendEvent::WebSocketCloseReceived { code: Some(1001) }),
            Duration::from_secs(2),
        )
        .await;
    assert!(seen.is_some(), "backend saw Close 1001: {:?}", b.events());
    assert!(wait_removed(&node, &b.addr().to_string(), Duration::from_secs(2)).await);
}
