//! Small async clients for tests: a WebSocket client whose reads never hang
//! ([`WsClient::next_event`] takes a timeout and folds every outcome into
//! [`WsEvent`]) and a one-shot HTTP GET ([`http_get`]) on a fresh connection.

use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::{HeaderMap, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long [`WsClient::connect`] waits for the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`WsClient::next_event`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsEvent {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A Close frame, with its status code if it had one.
    Close(Option<u16>),
    /// The connection ended (after a close handshake, or the TCP connection
    /// was closed without one).
    Ended,
    /// A protocol or I/O error, e.g. the peer reset the connection.
    Error(String),
    /// Nothing arrived within the timeout.
    TimedOut,
}

/// A WebSocket client for tests.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The name in the handshake answer's `x-backend` header (the demo
    /// backend's, passed on by sluice), if any.
    backend: Option<String>,
}

impl WsClient {
    /// Connects to a `ws://` URL (10 s handshake timeout). A refused upgrade
    /// is an error naming the HTTP status.
    pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
        let handshake = tokio_tungstenite::connect_async(url);
        let result = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| anyhow!("websocket connect to {url} timed out"))?;
        match result {
            Ok((stream, response)) => Ok(WsClient {
                stream,
                backend: response
                    .headers()
                    .get("x-backend")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            }),
            Err(tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err(anyhow!(
                    "websocket connect to {url} refused with HTTP {}: {}",
                    response.status(),
                    body.trim_end()
                ))
            }
            Err(e) => Err(anyhow!(e).context(format!("websocket connect to {url}"))),
        }
    }

    /// Which demo backend answered the handshake (its `x-backend` header).
    pub fn backend(&self) -> Option<&str> {
        self.backend.as_deref()
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, s: &str) -> anyhow::Result<()> {
        self.stream
            .send(Message::text(s))
            .await
            .context("websocket send")
    }

    /// Starts the close handshake with `code`; read on with
    /// [`WsClient::next_event`] to see the peer's Close and the end.
    pub async fn send_close(&mut self, code: u16) -> anyhow::Result<()> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        self.stream
            .send(Message::Close(Some(frame)))
            .await
            .context("websocket close")
    }

    /// The next message or outcome, waiting at most `timeout`. Pings and
    /// pongs are skipped (pings are answered automatically).
    pub async fn next_event(&mut self, timeout: Duration) -> WsEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return WsEvent::TimedOut,
                Ok(next) => next,
            };
            return match next {
                None => WsEvent::Ended,
                Some(Ok(Message::Text(text))) => WsEvent::Text(text.as_str().to_owned()),
                Some(Ok(Message::Binary(data))) => WsEvent::Binary(data.to_vec()),
                Some(Ok(Message::Close(frame))) => WsEvent::Close(frame.map(|f| f.code.into())),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => WsEvent::Ended,
                Some(Err(e)) => WsEvent::Error(e.to_string()),
            };
        }
    }
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient").finish_non_exhaustive()
    }
}

/// GETs `url` on a fresh connection and reads the whole body, all within
/// `timeout`. Returns the status, the headers and the body (lossy UTF-8).
pub async fn http_get(url: &str, timeout: Duration) -> anyhow::Result<(u16, HeaderMap, String)> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    let exchange = async {
        let response = client
            .get(uri)
            .await
            .with_context(|| format!("GET {url}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .with_context(|| format!("GET {url}: reading the body"))?
            .to_bytes();
        Ok((
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        anyhow!(
            "GET {url} timed out after {}",
            humantime::format_duration(timeout)
        )
    })?
}
