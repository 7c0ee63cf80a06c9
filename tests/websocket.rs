//! WebSocket draining on one node, end to end (the guide's first scenario,
//! times scaled down): echoes continue during the drain, then Close 1001.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use sluice_testkit::BackendEvent;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

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
