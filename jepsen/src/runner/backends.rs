//! The drain workload's backends, in this process: each an HTTP/1.1 server
//! on the docker network's gateway address (which the containers reach).
//! `GET /slow?ms=N&id=I` answers its own address after N ms; a WebSocket
//! upgrade on `/ws?id=I` echoes, and answers a first text `who` with its
//! own address. Every request logs a [`BackendHit`] from the test build's
//! `x-sluice-node` and `x-sluice-revision`, and the `id` tells the clients
//! which backend their request or tunnel reached.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sluice_jepsen::history::BackendHit;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{now, Recorder};

/// Longest `/slow` waits, whatever it is asked.
const MAX_SLOW: Duration = Duration::from_secs(120);

/// Every backend of the run, and which one each request id reached.
#[derive(Debug)]
pub struct Backends {
    ip: IpAddr,
    rec: Arc<Recorder>,
    /// Request or tunnel id → the backend it reached.
    reached: Mutex<HashMap<u64, String>>,
    /// Requests that came without the test build's headers.
    unstamped: AtomicU64,
}

impl Backends {
    /// Backends bound on `ip` (the docker network's gateway).
    pub fn new(ip: IpAddr, rec: Arc<Recorder>) -> Arc<Backends> {
        Arc::new(Backends {
            ip,
            rec,
            reached: Mutex::new(HashMap::new()),
            unstamped: AtomicU64::new(0),
        })
    }

    /// Starts a fresh backend on a new port; answers its `ip:port`. It
    /// serves until the process ends.
    pub async fn spawn(self: &Arc<Self>) -> std::io::Result<String> {
        let listener = TcpListener::bind(SocketAddr::new(self.ip, 0)).await?;
        let addr = listener.local_addr()?.to_string();
        let me = self.clone();
        let name = addr.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let me = me.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let me = me.clone();
                        let name = name.clone();
                        async move { Ok::<_, Infallible>(me.handle(&name, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(addr)
    }

    /// The backend request or tunnel `id` reached, if it reached one.
    pub fn reached(&self, id: u64) -> Option<String> {
        self.lock().get(&id).cloned()
    }

    /// How many requests came without `x-sluice-node`/`x-sluice-revision`.
    pub fn unstamped(&self) -> u64 {
        self.unstamped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, String>> {
        match self.reached.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    async fn handle(&self, name: &str, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
        let at = now();
        let header = |h: &str| -> Option<u64> {
            req.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        };
        match (header("x-sluice-node"), header("x-sluice-revision")) {
            (Some(node), Some(revision)) => self.rec.with(|h| {
                h.drains.backend_hits.push(BackendHit {
                    backend: name.to_string(),
                    node,
                    revision,
                    at,
                })
            }),
            _ => {
                self.unstamped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let query = req.uri().query().unwrap_or("").to_string();
        let param = |k: &str| -> Option<u64> {
            query
                .split('&')
                .filter_map(|p| p.split_once('='))
                .find(|(key, _)| *key == k)
                .and_then(|(_, v)| v.parse().ok())
        };
        if let Some(id) = param("id") {
            self.lock().insert(id, name.to_string());
        }
        if req.headers().contains_key(SEC_WEBSOCKET_KEY) {
            return upgrade(name, &mut req);
        }
        match req.uri().path() {
            "/slow" => {
                let ms = param("ms").unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms).min(MAX_SLOW)).await;
                text(StatusCode::OK, name)
            }
            _ => text(StatusCode::OK, name),
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *r.status_mut() = status;
    r
}

/// Answers the upgrade and spawns the echo loop.
fn upgrade(name: &str, req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "no key");
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    let name = name.to_string();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            let reply = match msg {
                Message::Text(t) if t.as_str() == "who" => Message::text(name.clone()),
                Message::Text(t) => Message::Text(t),
                Message::Binary(b) => Message::Binary(b),
                Message::Close(_) => continue,
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}
