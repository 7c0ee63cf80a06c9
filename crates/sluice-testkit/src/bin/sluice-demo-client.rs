//! `sluice-demo-client`: the WebSocket client of the connection-draining
//! demonstration. It prints which demo backend took the connection (the
//! `x-backend` header of the handshake), sends `hello N` every `--every`,
//! prints each echo with a UTC timestamp, and when the server closes prints
//! the close code and exits, so a reader sees exactly when the drain ended
//! the session.

#![forbid(unsafe_code)]

use std::time::Duration;

use clap::Parser;
use sluice_testkit::{WsClient, WsEvent};

/// WebSocket demo client: sends a message periodically, prints echoes.
#[derive(Debug, Parser)]
#[command(name = "sluice-demo-client", version)]
struct Args {
    /// WebSocket URL, e.g. ws://127.0.0.1:8080/
    url: String,
    /// Time between messages (e.g. `1s`, `200ms`).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    every: Duration,
    /// Stop after this many messages (default: until the server closes).
    #[arg(long)]
    count: Option<u64>,
}

fn say(what: &str) {
    println!(
        "{} {what}",
        humantime::format_rfc3339_millis(sluice_clock::now())
    );
}

fn close_name(code: u16) -> &'static str {
    match code {
        1000 => "Normal Closure",
        1001 => "Going Away",
        1006 => "Abnormal Closure",
        1011 => "Internal Error",
        _ => "",
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut ws = WsClient::connect(&args.url).await?;
    match ws.backend() {
        Some(name) => say(&format!("connected to {} (backend {name})", args.url)),
        None => say(&format!("connected to {}", args.url)),
    }
    let mut tick = tokio::time::interval(args.every);
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if args.count.is_some_and(|c| sent >= c) {
                    ws.send_close(1000).await?;
                    say("sent Close 1000 (Normal Closure)");
                    return Ok(());
                }
                sent += 1;
                let msg = format!("hello {sent}");
                ws.send_text(&msg).await?;
                say(&format!("sent: {msg}"));
            }
            event = ws.next_event(Duration::from_secs(3600)) => match event {
                WsEvent::Text(t) => say(&format!("received: {t}")),
                WsEvent::Binary(b) => say(&format!("received {} binary bytes", b.len())),
                WsEvent::Close(Some(code)) => {
                    say(&format!("closed by server: code {code} ({})", close_name(code)));
                    return Ok(());
                }
                WsEvent::Close(None) => {
                    say("closed by server without a code");
                    return Ok(());
                }
                WsEvent::Ended => {
                    say("connection ended without a Close frame");
                    std::process::exit(1);
                }
                WsEvent::Error(e) => anyhow::bail!("websocket error: {e}"),
                WsEvent::TimedOut => {}
            },
        }
    }
}
