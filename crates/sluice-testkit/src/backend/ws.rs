//! The WebSocket echo side: accepts the upgrade (101 with
//! `Sec-WebSocket-Accept`), then answers every text message `m` with
//! `Server received your message: m` until the peer closes.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};

use super::event::BackendEvent;
use super::log::close_code_name;
use super::response::{text_response, Body};
use super::state::ConnectionGuard;

/// Answers an upgrade request and spawns the echo loop, which starts once
/// hyper has handed over the connection.
pub(crate) fn accept(conn: Arc<ConnectionGuard>, mut req: Request<Incoming>) -> Response<Body> {
    let shared = conn.shared().clone();
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return text_response(
            &shared,
            StatusCode::BAD_REQUEST,
            "websocket upgrade without Sec-WebSocket-Key\n",
        );
    };
    let accept_key = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_shared = shared.clone();
    shared.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                echo(conn, ws).await;
            }
            Err(e) => debug!(
                "{} websocket upgrade from {} failed: {}",
                task_shared.name,
                conn.peer(),
                e
            ),
        }
    });

    let mut response = text_response(&shared, StatusCode::SWITCHING_PROTOCOLS, "");
    *response.body_mut() = Body::default();
    let headers = response.headers_mut();
    headers.remove(hyper::header::CONTENT_TYPE);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

async fn echo<S>(conn: Arc<ConnectionGuard>, mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let shared = conn.shared().clone();
    let peer = conn.peer();
    info!("{} websocket opened from {}", shared.name, peer);
    shared.record(BackendEvent::WebSocketOpened { peer });
    let _closed = WebSocketGuard { conn };

    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(text)) => {
                let text = text.as_str().to_owned();
                info!(
                    "{} websocket message from {}: {:?}",
                    shared.name, peer, text
                );
                let reply = format!("Server received your message: {text}");
                shared.record(BackendEvent::WebSocketMessage { text });
                if let Err(e) = ws.send(Message::text(reply)).await {
                    info!("{} websocket to {} failed: {}", shared.name, peer, e);
                    break;
                }
            }
            Ok(Message::Binary(data)) => {
                if let Err(e) = ws.send(Message::Binary(data)).await {
                    info!("{} websocket to {} failed: {}", shared.name, peer, e);
                    break;
                }
            }
            Ok(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code));
                match code {
                    Some(code) => info!(
                        "{} websocket closed by peer: code {} ({})",
                        shared.name,
                        code,
                        close_code_name(code)
                    ),
                    None => info!("{} websocket closed by peer: no status code", shared.name),
                }
                shared.record(BackendEvent::WebSocketCloseReceived { code });
                // tungstenite has queued the Close reply; the next read
                // flushes it and then reports the end of the stream.
            }
            // Pings are answered by tungstenite itself.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Err(e) => {
                info!("{} websocket from {} ended: {}", shared.name, peer, e);
                break;
            }
        }
    }
}

/// Records `WebSocketClosed` however the echo loop ends (including abort).
struct WebSocketGuard {
    conn: Arc<ConnectionGuard>,
}

impl Drop for WebSocketGuard {
    fn drop(&mut self) {
        let shared = self.conn.shared();
        let peer = self.conn.peer();
        info!("{} websocket from {} closed", shared.name, peer);
        shared.record(BackendEvent::WebSocketClosed { peer });
    }
}
