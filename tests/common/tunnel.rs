//! WebSocket tunnels for the end-to-end tests: a client that sends
//! `hello <n>` every 200 ms through a node's listener and logs every echo
//! and the Close, and the checks that a drain ended tunnels at its deadline
//! (R3, C3) — used by `tests/cluster.rs` and `tests/docker.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::cluster::poll;
use super::now_ms;

/// How the demo backend answers `hello <n>`.
pub const ECHO_PREFIX: &str = "Server received your message: hello ";
/// A tunnel's message interval.
pub const PING_EVERY: Duration = Duration::from_millis(200);
/// A tunnel task gives up after this long without a Close.
pub const PINGER_LIMIT: Duration = Duration::from_secs(30);
/// R3/C3: a tunnel's Close 1001 comes within this long after the deadline.
pub const CLOSE_WITHIN_MS: i64 = 250;
/// C3: the Closes through different nodes are at most this far apart.
pub const CLOSE_SPREAD_MS: u64 = 150;

/// What one tunnel saw; times are Unix ms.
#[derive(Clone, Debug, Default)]
pub struct WsLog {
    /// When each echo arrived.
    pub echoes: Vec<u64>,
    /// Text messages that were not echoes of ours.
    pub unexpected: Vec<String>,
    /// The Close frame's code and when it arrived.
    pub close: Option<(Option<u16>, u64)>,
    /// How the tunnel ended without a Close frame, if it did.
    pub ended: Option<String>,
}

/// A tunnel through one node's listener, driven by a background task.
pub struct Pinger {
    /// The node it goes through.
    pub node: u64,
    /// The demo backend that took it (`x-backend` of the handshake).
    pub backend: Option<String>,
    log: Arc<Mutex<WsLog>>,
    task: JoinHandle<()>,
}

impl Pinger {
    /// Opens a WebSocket to `url` (through node `node`) and starts pinging.
    pub async fn start(node: u64, url: &str) -> Pinger {
        let (ws, resp) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .unwrap_or_else(|_| panic!("websocket to {url} timed out"))
        .unwrap_or_else(|e| panic!("websocket to {url}: {e}"));
        assert_eq!(resp.status(), 101, "upgrade through node {node}");
        let backend = resp
            .headers()
            .get("x-backend")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let log = Arc::new(Mutex::new(WsLog::default()));
        let task = tokio::spawn(ping(ws, log.clone()));
        Pinger {
            node,
            backend,
            log,
            task,
        }
    }

    /// Ends the tunnel at once (the connection is dropped).
    pub fn abort(self) {
        self.task.abort();
    }

    /// Echoes so far.
    pub fn echoes(&self) -> usize {
        self.log.lock().unwrap().echoes.len()
    }

    /// Waits (at most `within`) until the tunnel has ended; returns its log.
    pub async fn finish(self, within: Duration) -> WsLog {
        let node = self.node;
        if tokio::time::timeout(within, self.task).await.is_err() {
            panic!(
                "the tunnel through node {node} did not end within {within:?}: {:?}",
                self.log.lock().unwrap()
            );
        }
        let log = self.log.lock().unwrap().clone();
        log
    }
}

/// The tunnel task: a message every [`PING_EVERY`], every echo logged, until
/// a Close frame, the end of the connection or [`PINGER_LIMIT`].
async fn ping(ws: WebSocketStream<MaybeTlsStream<TcpStream>>, log: Arc<Mutex<WsLog>>) {
    let (mut tx, mut rx) = ws.split();
    let mut tick = tokio::time::interval(PING_EVERY);
    let limit = tokio::time::sleep(PINGER_LIMIT);
    tokio::pin!(limit);
    let mut sent = 0u32;
    loop {
        tokio::select! {
            _ = &mut limit => {
                log.lock().unwrap().ended = Some(format!("no Close within {PINGER_LIMIT:?}"));
                return;
            }
            _ = tick.tick() => {
                sent += 1;
                // The Close may already be on its way; a failed send shows
                // up as the end of the stream below.
                let _ = tx.send(Message::text(format!("hello {sent}"))).await;
            }
            m = rx.next() => {
                let at = now_ms();
                let mut log = log.lock().unwrap();
                match m {
                    Some(Ok(Message::Text(t))) if t.starts_with(ECHO_PREFIX) => log.echoes.push(at),
                    Some(Ok(Message::Text(t))) => log.unexpected.push(t.as_str().to_owned()),
                    Some(Ok(Message::Close(frame))) => {
                        log.close = Some((frame.map(|f| u16::from(f.code)), at));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        log.ended = Some(format!("error: {e}"));
                        return;
                    }
                    None => {
                        log.ended = Some("ended without a Close frame".into());
                        return;
                    }
                }
            }
        }
    }
    // Send the Close reply tungstenite has queued, completing the handshake.
    let _ = tokio::time::timeout(Duration::from_millis(500), tx.close()).await;
}

/// Waits until every tunnel has echoed three times.
pub async fn wait_echoing(all: &[Pinger]) {
    poll(
        Duration::from_secs(5),
        "every tunnel echoes",
        move || async move {
            let counts: Vec<(u64, usize)> = all.iter().map(|p| (p.node, p.echoes())).collect();
            if counts.iter().all(|&(_, n)| n >= 3) {
                Ok(())
            } else {
                Err(format!("echoes per node: {counts:?}"))
            }
        },
    )
    .await;
}

/// R3/C3 for one tunnel: it kept echoing through the drain (from the
/// removal, `removed_ms`, until less than 450 ms before the deadline, with
/// at most a third of the expected echoes missing), then got Close 1001
/// within [0, 250) ms after the deadline. Returns when the Close came.
pub fn assert_drained(node: u64, log: &WsLog, removed_ms: u64, deadline: u64) -> u64 {
    assert!(
        log.unexpected.is_empty(),
        "node {node}: unexpected messages {:?}",
        log.unexpected
    );
    let Some((code, closed_ms)) = log.close else {
        panic!("the tunnel through node {node} got no Close: {log:?}");
    };
    assert_eq!(
        code,
        Some(1001),
        "the tunnel through node {node} closed with {code:?}, want 1001 Going Away"
    );
    let late = closed_ms as i64 - deadline as i64;
    assert!(
        (0..CLOSE_WITHIN_MS).contains(&late),
        "the tunnel through node {node} got its Close {late} ms after the deadline"
    );
    let during = log
        .echoes
        .iter()
        .filter(|&&t| t > removed_ms && t < deadline)
        .count() as u64;
    let expected = (deadline - removed_ms) / PING_EVERY.as_millis() as u64;
    assert!(
        during * 3 >= expected * 2,
        "the tunnel through node {node} echoed {during} times during the drain, expected about {expected}"
    );
    let last = log
        .echoes
        .iter()
        .copied()
        .filter(|&t| t < deadline)
        .max()
        .unwrap_or(0);
    assert!(
        deadline - last < 450,
        "the tunnel through node {node} stopped echoing {} ms before the deadline",
        deadline - last
    );
    closed_ms
}

/// C3: the Closes through different nodes came at (nearly) one time.
pub fn assert_spread(closes: &[(u64, u64)]) {
    let min = closes.iter().map(|c| c.1).min().unwrap();
    let max = closes.iter().map(|c| c.1).max().unwrap();
    assert!(
        max - min < CLOSE_SPREAD_MS,
        "Close times (node, Unix ms) spread over {} ms: {closes:?}",
        max - min
    );
}
