//! `sluice-bench ws-backend --port A --port B`: the WebSocket echo backend
//! behind the proxies. One thread (tokio current-thread), every port on
//! 127.0.0.1; it answers the upgrade and echoes every text and binary
//! message until the peer closes. Read and write buffers are kept small so
//! that ~10,000 open tunnels cost little; nothing is logged per connection.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use anyhow::Context;

/// Listen backlog (as the peers' configs use).
const BACKLOG: u32 = 4096;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port to listen on (127.0.0.1); repeat for more.
    #[arg(long = "port", required = true)]
    ports: Vec<u16>,
}

/// Runs until killed.
pub fn main(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    rt.block_on(async {
        let mut accepts = Vec::new();
        for &port in &args.ports {
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket
                .bind(([127, 0, 0, 1], port).into())
                .with_context(|| format!("binding 127.0.0.1:{port}"))?;
            let listener = socket.listen(BACKLOG)?;
            accepts.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            tokio::spawn(echo(stream));
                        }
                        Err(e) => {
                            // Out of file descriptors, most likely: say so
                            // and keep going.
                            eprintln!("ws-backend: accept on :{port}: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    }
                }
            }));
        }
        eprintln!("ws-backend: listening on {:?}", args.ports);
        for a in accepts {
            a.await?;
        }
        Ok(())
    })
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if ws.send(message).await.is_err() {
                    return;
                }
            }
            // tungstenite answers pings and queues the Close reply itself;
            // the next read flushes it and ends the stream.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {}
        }
    }
}
