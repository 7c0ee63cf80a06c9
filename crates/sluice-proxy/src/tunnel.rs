//! WebSocket tunnels: after the backend agreed to the upgrade (101), frames
//! are relayed between client and backend one message at a time. At the
//! drain deadline both sides get Close 1001 (Going Away), then the TCP
//! connections are closed (R3).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::backend::{BackendRuntime, WorkGuard};
use crate::upstream::UpstreamIo;

type ClientWs = WebSocketStream<TokioIo<Upgraded>>;
type BackendWs = WebSocketStream<UpstreamIo>;

/// Either side's socket.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// How long a closing side may take to answer a Close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

fn config() -> WebSocketConfig {
    // Small buffers: an idle tunnel should cost little; frames larger than
    // the read buffer still pass, the buffer grows for them.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
}

/// Relays one tunnel until either side closes or `shutdown` fires.
pub(crate) async fn relay(
    client_upgrade: OnUpgrade,
    backend_io: UpstreamIo,
    backend: Arc<BackendRuntime>,
    shutdown: CancellationToken,
    work: WorkGuard,
) -> bool {
    let client = match client_upgrade.await {
        Ok(client) => client,
        Err(e) => {
            debug!(backend = %backend.addr, error = %e, "websocket upgrade failed");
            return false;
        }
    };
    let mut client =
        WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(config())).await;
    let mut server =
        WebSocketStream::from_raw_socket(backend_io, Role::Client, Some(config())).await;
    let cut = loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                going_away(&mut client, &mut server).await;
                break true;
            }
            m = client.next() => {
                if !forward(m, &mut client, &mut server).await {
                    break false;
                }
            }
            m = server.next() => {
                if !forward(m, &mut server, &mut client).await {
                    break false;
                }
            }
        }
    };
    drop(work);
    cut
}

/// Passes one message on; returns whether the tunnel stays open.
async fn forward(
    msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    from: &mut WebSocketStream<impl Io>,
    to: &mut WebSocketStream<impl Io>,
) -> bool {
    match msg {
        Some(Ok(Message::Close(frame))) => {
            // `from` already answered its Close; pass it on and wait for
            // the other side's answer.
            let _ = to.close(frame).await;
            let _ = tokio::time::timeout(CLOSE_GRACE, drain_to_end(to)).await;
            let _ = from.flush().await;
            false
        }
        Some(Ok(Message::Frame(_))) => true,
        Some(Ok(m)) => to.send(m).await.is_ok(),
        Some(Err(_)) | None => {
            let _ = to.close(None).await;
            false
        }
    }
}

async fn going_away(client: &mut ClientWs, server: &mut BackendWs) {
    let frame = || CloseFrame {
        code: CloseCode::Away,
        reason: "backend draining: deadline reached".into(),
    };
    // The client's Close first; the backend's after every other tunnel
    // closing at this deadline had its turn, so the clients' Close frames
    // go out before the rest of the closing work.
    let _ = client.close(Some(frame())).await;
    tokio::task::yield_now().await;
    let _ = server.close(Some(frame())).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        tokio::join!(drain_to_end(client), drain_to_end(server))
    })
    .await;
}

async fn drain_to_end(ws: &mut WebSocketStream<impl Io>) {
    while let Some(Ok(_)) = ws.next().await {}
}
