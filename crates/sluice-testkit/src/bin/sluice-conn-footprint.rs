//! `sluice-conn-footprint`: what an idle connection costs a `sluice` node in
//! user-space memory. For each kind (idle WebSocket tunnels, idle keep-alive
//! HTTP connections) it starts a fresh one-node cluster of the given binary
//! with one demo backend (in this process), warms it up with `--warmup`
//! connections of that kind (opened, used once, closed), reads the node's
//! `VmRSS`, opens `-n` connections (one echo or one `GET` each) and holds
//! them, reads `VmRSS` again and prints `(after - before) / n`.
//!
//! The node gets `header_read_timeout = "300s"` so idle keep-alive
//! connections stay open while they are counted. This process holds two
//! sockets per tunnel (client and backend side), so keep `-n` under half
//! the open-file limit. `--attach ADDR --pid PID` measures a node that is
//! already running instead (under a heap profiler, say; its listener must
//! lead to a `sluice-demo-backend`).
//!
//! ```text
//! cargo build --release -p sluice -p sluice-testkit
//! target/release/sluice-conn-footprint -n 5000
//! ```

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use futures_util::{stream, SinkExt, StreamExt};
use sluice_testkit::bench::procfs;
use sluice_testkit::{DemoBackend, DemoBackendConfig, NodeOptions, NodeProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Idle-connection memory of a sluice node.
#[derive(Debug, Parser)]
#[command(name = "sluice-conn-footprint", version)]
struct Args {
    /// The sluice binary to run the node with.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// Connections held per kind.
    #[arg(short, default_value_t = 5000)]
    n: usize,
    /// Connections opened and closed before the first reading.
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    /// Connections opened at a time.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Use the node already listening at this address (its group must
    /// reach a `sluice-demo-backend`) instead of starting one; needs `--pid`.
    #[arg(long, requires = "pid")]
    attach: Option<String>,
    /// The process whose `VmRSS` is read with `--attach`.
    #[arg(long)]
    pid: Option<u32>,
    /// How long to hold the connections after the reading.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// What to measure.
    #[arg(long, value_enum, default_values_t = [Kind::Tunnel, Kind::Http])]
    kind: Vec<Kind>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Idle WebSocket tunnels (one echo each).
    Tunnel,
    /// Idle keep-alive HTTP/1.1 connections (one GET each).
    Http,
}

/// One held connection (kept only to keep it open).
type Held = Box<dyn Send>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for kind in &args.kind {
        measure(&args, *kind).await?;
    }
    Ok(())
}

async fn measure(args: &Args, kind: Kind) -> anyhow::Result<()> {
    if let (Some(addr), Some(pid)) = (&args.attach, args.pid) {
        return count(args, kind, addr, pid).await;
    }
    let backend = DemoBackend::start(DemoBackendConfig::local("echo")).await?;
    let mut opts = NodeOptions::local(1);
    opts.extra_toml = "[proxy]\nheader_read_timeout = \"300s\"\n".into();
    let bin = args.sluice.clone();
    let node = tokio::task::spawn_blocking(move || NodeProcess::start(&bin, opts))
        .await?
        .context("starting the node")?;
    let port = sluice_testkit::free_port();
    let backend_addr = backend.addr().to_string();
    let port_s = port.to_string();
    let setup: [&[&str]; 4] = [
        &["group", "create", "web"],
        &["group", "update", "web", "--no-health-checks"],
        &["backend", "add", "web", &backend_addr],
        &["listener", "add", "--port", &port_s, "--group", "web"],
    ];
    for cmd in setup {
        let out = node.cli(cmd);
        if !out.status.success() {
            bail!(
                "sluice {cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let pid = node.pid().context("node not running")?;
    count(args, kind, &format!("127.0.0.1:{port}"), pid).await?;
    drop(node);
    drop(backend);
    Ok(())
}

/// Warm-up, first reading, `n` connections held, second reading.
async fn count(args: &Args, kind: Kind, addr: &str, pid: u32) -> anyhow::Result<()> {
    drop(open_many(addr, kind, args.warmup, args.concurrency).await?);
    settle().await;
    let before = procfs::status_bytes(pid, "VmRSS")?;
    let held = open_many(addr, kind, args.n, args.concurrency).await?;
    settle().await;
    let after = procfs::status_bytes(pid, "VmRSS")?;
    let per = (after as f64 - before as f64) / args.n as f64 / 1024.0;
    println!(
        "{kind:?}: n = {}, VmRSS {:.1} MiB -> {:.1} MiB: {per:.2} KiB per connection",
        held.len(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
    );
    tokio::time::sleep(args.hold).await;
    drop(held);
    settle().await;
    let end = procfs::status_bytes(pid, "VmRSS")?;
    println!(
        "{kind:?}: after closing them VmRSS {:.1} MiB",
        end as f64 / 1048576.0
    );
    Ok(())
}

async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn open_many(
    addr: &str,
    kind: Kind,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Held>> {
    stream::iter(0..n)
        .map(|i| open(addr, kind, i))
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn open(addr: &str, kind: Kind, i: usize) -> anyhow::Result<Held> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    match kind {
        Kind::Tunnel => {
            let (mut ws, _) =
                tokio_tungstenite::client_async(format!("ws://{addr}/"), stream).await?;
            ws.send(Message::text(format!("hi {i}"))).await?;
            match ws.next().await {
                Some(Ok(Message::Text(_))) => Ok(Box::new(ws)),
                other => bail!("tunnel {i}: no echo: {other:?}"),
            }
        }
        Kind::Http => {
            let mut stream = stream;
            stream
                .write_all(b"GET / HTTP/1.1\r\nhost: footprint\r\n\r\n")
                .await?;
            read_response(&mut stream).await?;
            Ok(Box::new(stream))
        }
    }
}

/// Reads one response with a `content-length` body.
async fn read_response(s: &mut TcpStream) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed mid-response");
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .context("response without content-length")?;
            if buf.len() >= end + 4 + len {
                if !text.starts_with("HTTP/1.1 200") {
                    bail!("unexpected answer: {}", text.lines().next().unwrap_or(""));
                }
                return Ok(());
            }
        }
    }
}
