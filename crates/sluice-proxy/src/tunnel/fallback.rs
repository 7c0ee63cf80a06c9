//! The message-by-message relay through tungstenite, for upgraded
//! connections whose I/O type the raw relay does not know. It holds a read
//! buffer per side for the tunnel's life, so it costs more memory; the
//! closing rules are the same.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::{CLOSE_GRACE, GOING_AWAY_REASON};

/// Any byte stream of one tunnel side.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One side: its stream and the bytes already read from it.
pub(crate) type Side = (Box<dyn Io>, Vec<u8>);

type Ws = WebSocketStream<Box<dyn Io>>;

fn config() -> WebSocketConfig {
    // Small buffers; frames larger than the read buffer still pass.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
}

/// Relays until either side closes or `shutdown` fires; returns whether
/// the deadline closed it.
pub(crate) async fn relay(client: Side, server: Side, shutdown: CancellationToken) -> bool {
    let mut client =
        WebSocketStream::from_partially_read(client.0, client.1, Role::Server, Some(config()))
            .await;
    let mut server =
        WebSocketStream::from_partially_read(server.0, server.1, Role::Client, Some(config()))
            .await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                going_away(&mut client, &mut server).await;
                return true;
            }
            m = client.next() => {
                if !forward(m, &mut client, &mut server).await {
                    return false;
                }
            }
            m = server.next() => {
                if !forward(m, &mut server, &mut client).await {
                    return false;
                }
            }
        }
    }
}

/// Passes one message on; returns whether the tunnel stays open.
async fn forward(msg: Option<Result<Message, Error>>, from: &mut Ws, to: &mut Ws) -> bool {
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

async fn going_away(client: &mut Ws, server: &mut Ws) {
    let frame = || CloseFrame {
        code: CloseCode::Away,
        reason: GOING_AWAY_REASON.into(),
    };
    let _ = tokio::join!(client.close(Some(frame())), server.close(Some(frame())));
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        tokio::join!(drain_to_end(client), drain_to_end(server))
    })
    .await;
}

async fn drain_to_end(ws: &mut Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_messages_then_closes_both_sides_with_1001() {
        let (client_app, client_side) = tokio::io::duplex(64 * 1024);
        let (server_side, server_app) = tokio::io::duplex(64 * 1024);
        // A text frame the backend sent right behind its 101.
        let early = vec![0x81, 5, b'e', b'a', b'r', b'l', b'y'];
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(relay(
            (Box::new(client_side), Vec::new()),
            (Box::new(server_side), early),
            shutdown.clone(),
        ));
        let mut client = WebSocketStream::from_raw_socket(client_app, Role::Client, None).await;
        let mut server = WebSocketStream::from_raw_socket(server_app, Role::Server, None).await;
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::text("early")
        );
        client.send(Message::text("hi")).await.unwrap();
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("hi"));
        server.send(Message::binary(vec![1, 2, 3])).await.unwrap();
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::binary(vec![1, 2, 3])
        );
        shutdown.cancel();
        let code = |m: Option<Result<Message, Error>>| match m {
            Some(Ok(Message::Close(Some(f)))) => u16::from(f.code),
            other => panic!("expected a Close, got {other:?}"),
        };
        let (c, s) = tokio::join!(client.next(), server.next());
        assert_eq!((code(c), code(s)), (1001, 1001));
        // Both answer (tungstenite does on the next read); the relay ends.
        let _ = tokio::join!(client.next(), server.next());
        assert!(tokio::time::timeout(CLOSE_GRACE * 2, run)
            .await
            .unwrap()
            .unwrap());
    }
}
