//! Holding many idle connections through a proxy: the `sluice-bench hold`
//! subcommand (the client, pinned to the load generator's CPU) and
//! [`Holder`], which drives it from the benchmark.
//!
//! The client talks over its stdin/stdout, one line each way per step:
//!
//! 1. it opens and closes `--warmup` connections (one exchange each), then
//!    prints `warmed`;
//! 2. on `open` it opens `--n` connections, makes one exchange on each
//!    (HTTP: `GET /` and its whole `200`; WebSocket: upgrade, `101`, one
//!    masked text frame and its echo) and keeps them, each watched by a
//!    task; then prints `{"held": n, "secs": …}`;
//! 3. on `report <unix ms>` it waits until every connection has ended or
//!    that time has come, prints a [`HoldReport`] and exits.
//!
//! A watcher notes how its connection ends: a WebSocket Close frame (its
//! code, and for 1001 the wall-clock time it arrived; it is answered with
//! a masked Close), end of stream without one, or unexpected data.
//!
//! A Close's arrival is the kernel's receive time of its bytes
//! (`SO_TIMESTAMPNS`, read with a peek before the frame): with thousands of
//! Closes arriving together, the one client thread reads (and answers) the
//! last of them well after it came, and that wait is the client's, not the
//! proxy's. The time the client read the last one is reported beside it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::Notify;

use crate::procs::{client_command, log_tail, ClientChild};
use crate::wire;

/// Connections opened at once.
const PARALLEL: usize = 32;
/// Longest wait for one step of the client (opening 10,000 connections
/// through a slow proxy included).
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// What is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Mode {
    /// Keep-alive HTTP/1.1 connections after one `GET`.
    Http,
    /// WebSocket tunnels after one echoed message.
    Ws,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Http => "keep-alive HTTP",
            Mode::Ws => "WebSocket",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the proxy (or backend).
    #[arg(long)]
    target: SocketAddr,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Connections to hold.
    #[arg(long)]
    n: usize,
    /// Connections opened and closed first.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
}

/// How the held connections ended, as the client prints it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HoldReport {
    /// Connections held.
    pub n: usize,
    /// Still open when the report was made.
    pub alive: usize,
    /// Close frames with code 1001.
    pub closes_1001: usize,
    /// Arrival of the first and last of them (the kernel's receive time),
    /// Unix µs.
    pub first_1001_us: Option<u64>,
    pub last_1001_us: Option<u64>,
    /// When the client read the last of them, Unix µs.
    #[serde(default)]
    pub last_1001_read_us: Option<u64>,
    /// Close frames with another code (or none).
    pub other_closes: usize,
    /// Ended without a Close frame (end of stream or error).
    pub dropped: usize,
    /// Connections that received data nobody asked for.
    pub unexpected: usize,
}

/// Now, in µs since the Unix epoch.
pub fn unix_micros() -> u64 {
    sluice_clock::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The client subcommand (module docs).
pub fn main(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    rt.block_on(client(args))
}

async fn client(args: &Args) -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let (target, mode) = (args.target, args.mode);
    let warm: Vec<_> = open_many(target, mode, args.warmup).await?;
    drop(warm);
    say_line("warmed").await?;

    expect_command(&mut stdin, "open").await?;
    let started = Instant::now();
    let state = Arc::new(Watch::default());
    let streams = open_many(target, mode, args.n).await?;
    for stream in streams {
        tokio::spawn(watch(stream, mode, state.clone()));
    }
    let held = serde_json::json!({"held": args.n, "secs": started.elapsed().as_secs_f64()});
    say_line(&held.to_string()).await?;

    let line = expect_command(&mut stdin, "report").await?;
    let until_ms: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("expected `report <unix ms>`, got {line:?}"))?;
    loop {
        let ended = state.inner.lock().map_err(|_| anyhow!("poisoned"))?.ended;
        let now_ms = unix_micros() / 1000;
        if ended >= args.n || now_ms >= until_ms {
            break;
        }
        let _ = tokio::time::timeout(
            Duration::from_millis(until_ms - now_ms),
            state.changed.notified(),
        )
        .await;
    }
    let report = state
        .inner
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .report(args.n);
    say_line(&serde_json::to_string(&report)?).await?;
    Ok(())
}

async fn say_line(line: &str) -> anyhow::Result<()> {
    let mut out = tokio::io::stdout();
    out.write_all(format!("{line}\n").as_bytes()).await?;
    out.flush().await?;
    Ok(())
}

async fn expect_command(
    stdin: &mut Lines<BufReader<tokio::io::Stdin>>,
    command: &str,
) -> anyhow::Result<String> {
    let line = stdin
        .next_line()
        .await?
        .ok_or_else(|| anyhow!("stdin closed while waiting for `{command}`"))?;
    if !line.starts_with(command) {
        bail!("expected `{command}`, got {line:?}");
    }
    Ok(line)
}

/// Opens `n` connections, [`PARALLEL`] at a time, each after its exchange.
async fn open_many(target: SocketAddr, mode: Mode, n: usize) -> anyhow::Result<Vec<TcpStream>> {
    futures_util::stream::iter(0..n)
        .map(|i| async move {
            open_one(target, mode)
                .await
                .with_context(|| format!("connection {} of {n} to {target}", i + 1))
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn open_one(target: SocketAddr, mode: Mode) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(target).await.context("connecting")?;
    stream.set_nodelay(true)?;
    if mode == Mode::Ws {
        setsockopt(&stream, sockopt::ReceiveTimestampns, &true)
            .context("asking for receive timestamps")?;
    }
    let mut buf = Vec::new();
    match mode {
        Mode::Http => wire::get(&mut stream, &mut buf).await?,
        Mode::Ws => wire::ws_open(&mut stream, &mut buf).await?,
    }
    Ok(stream)
}

/// The kernel's receive time (Unix µs) of the bytes waiting on `stream`,
/// once some are (`None` at its end, or if the kernel gave no time).
async fn arrival(stream: &TcpStream) -> Option<u64> {
    loop {
        stream.readable().await.ok()?;
        match stream.try_io(Interest::READABLE, || peek_receive_time(stream)) {
            Ok(at) => return at,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
    }
}

/// Peeks at one waiting byte for its `SCM_TIMESTAMPNS`.
fn peek_receive_time(stream: &TcpStream) -> std::io::Result<Option<u64>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    if msg.bytes == 0 {
        return Ok(None);
    }
    let at = msg
        .cmsgs()
        .map_err(std::io::Error::from)?
        .find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(ts) => {
                Some(ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000)
            }
            _ => None,
        });
    Ok(at)
}

/// What the watchers saw, shared by them.
#[derive(Default)]
struct Watch {
    inner: Mutex<Ended>,
    changed: Notify,
}

#[derive(Default)]
struct Ended {
    ended: usize,
    closes_1001: Vec<CloseSeen>,
    other_closes: usize,
    dropped: usize,
    unexpected: usize,
}

impl Ended {
    fn report(&self, n: usize) -> HoldReport {
        HoldReport {
            n,
            alive: n.saturating_sub(self.ended),
            closes_1001: self.closes_1001.len(),
            first_1001_us: self.closes_1001.iter().map(|c| c.arrived).min(),
            last_1001_us: self.closes_1001.iter().map(|c| c.arrived).max(),
            last_1001_read_us: self.closes_1001.iter().map(|c| c.read).max(),
            other_closes: self.other_closes,
            dropped: self.dropped,
            unexpected: self.unexpected,
        }
    }
}

/// When a Close frame arrived (the kernel's receive time, or the read's
/// where the kernel gave none) and when the client read it, Unix µs.
#[derive(Clone, Copy)]
struct CloseSeen {
    arrived: u64,
    read: u64,
}

/// How one connection ended.
enum End {
    Close(Option<u16>, CloseSeen),
    Dropped,
}

async fn watch(mut stream: TcpStream, mode: Mode, state: Arc<Watch>) {
    let mut unexpected = false;
    let end = loop {
        match mode {
            Mode::Http => {
                let mut byte = [0u8; 1];
                match stream.read(&mut byte).await {
                    Ok(0) | Err(_) => break End::Dropped,
                    Ok(_) => unexpected = true,
                }
            }
            Mode::Ws => match (arrival(&stream).await, wire::read_frame(&mut stream).await) {
                (arrived, Ok((wire::OP_CLOSE, payload))) => {
                    let read = unix_micros();
                    let at = CloseSeen {
                        arrived: arrived.unwrap_or(read).min(read),
                        read,
                    };
                    let code = wire::close_code(&payload);
                    let _ = stream
                        .write_all(&wire::close_reply(code.unwrap_or(1000)))
                        .await;
                    let _ = stream.shutdown().await;
                    break End::Close(code, at);
                }
                (_, Ok(_)) => unexpected = true,
                (_, Err(_)) => break End::Dropped,
            },
        }
    };
    if let Ok(mut s) = state.inner.lock() {
        s.ended += 1;
        s.unexpected += usize::from(unexpected);
        match end {
            End::Close(Some(1001), at) => s.closes_1001.push(at),
            End::Close(..) => s.other_closes += 1,
            End::Dropped => s.dropped += 1,
        }
    }
    state.changed.notify_one();
}

/// The `hold` client, driven from the benchmark (module docs).
pub struct Holder {
    child: ClientChild,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
    what: String,
}

impl Holder {
    /// Starts the client on `cpus` and waits until it has warmed up.
    pub async fn start(
        cpus: &str,
        target: SocketAddr,
        mode: Mode,
        n: usize,
        warmup: usize,
        log: &Path,
    ) -> anyhow::Result<Holder> {
        let args = [
            "hold".to_string(),
            format!("--target={target}"),
            format!("--mode={}", if mode == Mode::Http { "http" } else { "ws" }),
            format!("--n={n}"),
            format!("--warmup={warmup}"),
        ];
        let mut child = ClientChild::spawn(
            client_command(cpus, &args, log)?
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped()),
            "sluice-bench hold",
        )?;
        let stdin = child.0.stdin.take().context("hold's stdin")?;
        let stdout = BufReader::new(child.0.stdout.take().context("hold's stdout")?).lines();
        let mut holder = Holder {
            child,
            stdin,
            stdout,
            log: log.to_path_buf(),
            what: format!("hold of {n} {} connections to {target}", mode.label()),
        };
        let first = holder.line().await?;
        if first != "warmed" {
            bail!("{}: expected `warmed`, got {first:?}", holder.what);
        }
        Ok(holder)
    }

    /// Opens the connections; returns how long that took.
    pub async fn open(&mut self) -> anyhow::Result<Duration> {
        self.send("open").await?;
        let line = self.line().await?;
        let v: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{}: {line:?}", self.what))?;
        Ok(Duration::from_secs_f64(v["secs"].as_f64().unwrap_or(0.0)))
    }

    /// Waits until every connection ended or `until_unix_ms` (wall clock),
    /// then returns how they ended. The client exits.
    pub async fn report(mut self, until_unix_ms: u64) -> anyhow::Result<HoldReport> {
        self.send(&format!("report {until_unix_ms}")).await?;
        let line = self.line().await?;
        let report =
            serde_json::from_str(&line).with_context(|| format!("{}: {line:?}", self.what))?;
        let _ = self.child.0.wait().await;
        Ok(report)
    }

    async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .with_context(|| {
                format!(
                    "{}: the client is gone; log {}",
                    self.what,
                    self.log.display()
                )
            })
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let got = tokio::time::timeout(STEP_TIMEOUT, self.stdout.next_line()).await;
        match got {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = self.child.0.wait().await.ok();
                bail!(
                    "{} failed ({}); log {}:\n{}",
                    self.what,
                    status.map_or("no exit status".into(), |s| s.to_string()),
                    self.log.display(),
                    log_tail(&self.log)
                )
            }
            Err(_) => bail!(
                "{}: no answer within {STEP_TIMEOUT:?}; log {}",
                self.what,
                self.log.display()
            ),
        }
    }
}
