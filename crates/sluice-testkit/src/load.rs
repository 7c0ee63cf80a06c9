//! The load generator of the rolling-upgrade demonstration
//! (`sluice-load`): keep-alive HTTP/1.1 GET loops and WebSocket echo
//! sessions spread round-robin over several listeners, each outcome counted
//! in exactly one class, so that a run says precisely what clients saw
//! while the nodes behind those listeners were drained and replaced.
//!
//! HTTP (one worker = one connection at a time, GET after GET):
//!
//! - `sent`: requests written to a connection (a retry counts again);
//!   every one ends in exactly one of `ok`, `idle_closed`, `new_closed`,
//!   `failed`.
//! - `ok`: a `2xx` answer that sluice did not make itself (no
//!   `x-sluice-error`), read to its end.
//! - `told_close`: answers (any status) carrying `Connection: close`; the
//!   worker opens its next connection to the next target.
//! - `refused`: connecting failed (refused, unreachable, timed out):
//!   nothing was sent; the worker tries the next target.
//! - `idle_closed`: the request went out on a connection that had already
//!   carried an answer, and the server closed that connection before any
//!   byte of the answer (HTTP/1.1's keep-alive race: the server closed an
//!   idle connection as the request went out). Retried once, on a new
//!   connection to the next target. The first ones are kept with their
//!   time.
//! - `new_closed`: the request went out on a new connection, which was
//!   closed or reset before any byte of the answer. Through docker's
//!   userland proxy (a published port on the host) this is what a refused
//!   connect looks like: the proxy accepts, cannot reach the container's
//!   port, and closes. Directly against a listener it is a server that
//!   accepted a connection and dropped it unanswered, so a run that reaches
//!   the listeners directly should see none. Retried on the next target.
//! - `failed`: everything else: a status other than `2xx`, a `2xx` sluice
//!   made, a connection closed or reset mid-answer, a malformed answer, no
//!   answer within the request timeout. The first reasons are kept, and
//!   the first `new_closed` reasons too.
//!
//! WebSocket (one session = one tunnel at a time, a message every
//! `ws_every`, each echo expected back):
//!
//! - `opened`: handshakes completed; every one ends in exactly one of
//!   `closed_1001`, `closed_other`, `reset`, `stalled`,
//!   `closed_by_client`.
//! - `closed_1001`: the server sent Close 1001 (Going Away); the session
//!   answers it and reconnects to the next target.
//! - `closed_other`: the server sent a Close with another code (or none).
//! - `reset`: the connection ended or failed without a Close frame.
//! - `stalled`: an echo did not come back within the request timeout; the
//!   session gives up on that tunnel.
//! - `closed_by_client`: still open at the end of the run; closed with
//!   Close 1000 after its last echoes came back (or 2 s passed).
//! - `echo_lost`: messages whose echo never came on a tunnel that ended
//!   cleanly (a Close either way).
//! - `connect_refused` / `connect_failed`: the TCP connect failed (nothing
//!   sent; next target), or the handshake did (named in `failures`).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use hyper::Uri;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// How many failure reasons a report keeps (per protocol).
const KEEP_REASONS: usize = 10;
/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after every target refused in a row (no busy loop while all are
/// down).
const ALL_REFUSED_PAUSE: Duration = Duration::from_millis(50);
/// At the end of a run: how long a session waits for its last echoes, then
/// for the server's answer to its Close.
const CLOSING_WAIT: Duration = Duration::from_secs(2);
/// Largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// One listener to send load to.
#[derive(Clone, Debug)]
pub struct Target {
    /// As given, e.g. `http://127.0.0.1:8071/`.
    pub url: String,
    /// `host:port` to connect to.
    pub authority: String,
    /// Request target, e.g. `/`.
    pub path: String,
}

impl Target {
    /// Parses `http://host:port/path` (or `ws://`; the port defaults to 80).
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--target {url:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "ws") => {}
            _ => bail!("--target {url:?}: expected http://host:port/path (or ws://)"),
        }
        let host = uri
            .host()
            .ok_or_else(|| anyhow!("--target {url:?} names no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let path = uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        Ok(Target {
            url: url.to_owned(),
            authority: format!("{host}:{port}"),
            path,
        })
    }

    fn ws_url(&self) -> String {
        format!("ws://{}{}", self.authority, self.path)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Round-robin over these.
    pub targets: Vec<Target>,
    /// Keep-alive GET loops.
    pub http_workers: usize,
    /// WebSocket sessions.
    pub ws_sessions: usize,
    /// Time between a session's messages.
    pub ws_every: Duration,
    /// Bound of one HTTP exchange, and of the wait for one echo.
    pub request_timeout: Duration,
    /// Pause between a worker's requests (zero: back to back).
    pub http_pause: Duration,
}

/// Counts of one target (HTTP).
#[derive(Clone, Debug, Default)]
struct PerTarget {
    sent: u64,
    ok: u64,
    told_close: u64,
    refused: u64,
    idle_closed: u64,
    new_closed: u64,
    failed: u64,
    ws_opened: u64,
    ws_closed_1001: u64,
}

#[derive(Debug, Default)]
struct HttpCounts {
    sent: u64,
    ok: u64,
    told_close: u64,
    refused: u64,
    idle_closed: u64,
    new_closed: u64,
    failed: u64,
    reasons: Vec<String>,
    idle_closed_reasons: Vec<String>,
    new_closed_reasons: Vec<String>,
    by_backend: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct WsCounts {
    opened: u64,
    closed_1001: u64,
    closed_other: u64,
    reset: u64,
    stalled: u64,
    closed_by_client: u64,
    echo_lost: u64,
    connect_refused: u64,
    connect_failed: u64,
    messages: u64,
    echoes: u64,
    reasons: Vec<String>,
}

#[derive(Debug, Default)]
struct Counts {
    http: HttpCounts,
    ws: WsCounts,
    per_target: Vec<PerTarget>,
}

/// The counters every worker and session adds to.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    started_ms: u64,
    counts: Mutex<Counts>,
}

/// Keeps `why`, with the wall-clock time (to match node logs), among the
/// first [`KEEP_REASONS`].
fn keep_reason(reasons: &mut Vec<String>, why: String) {
    if reasons.len() < KEEP_REASONS {
        let at = humantime::format_rfc3339_millis(sluice_clock::now());
        reasons.push(format!("{at} {why}"));
    }
}

impl Stats {
    /// Zero counters for `targets` targets.
    pub fn new(targets: usize) -> Stats {
        Stats {
            started: Instant::now(),
            started_ms: sluice_clock::now_ms(),
            counts: Mutex::new(Counts {
                per_target: vec![PerTarget::default(); targets],
                ..Counts::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A one-line summary, for progress lines.
    pub fn line(&self) -> String {
        let c = self.lock();
        let (h, w) = (&c.http, &c.ws);
        format!(
            "{:>5.1}s http sent {} ok {} told_close {} refused {} idle_closed {} new_closed {} failed {} | \
             ws opened {} closed_1001 {} closed_other {} reset {} stalled {} echo_lost {}",
            self.started.elapsed().as_secs_f64(),
            h.sent,
            h.ok,
            h.told_close,
            h.refused,
            h.idle_closed,
            h.new_closed,
            h.failed,
            w.opened,
            w.closed_1001,
            w.closed_other,
            w.reset,
            w.stalled,
            w.echo_lost,
        )
    }

    /// The report: every counter, the first failure reasons, the split by
    /// target and by backend.
    pub fn report(&self, cfg: &LoadConfig) -> Value {
        let c = self.lock();
        let (h, w) = (&c.http, &c.ws);
        let targets: Vec<Value> = cfg
            .targets
            .iter()
            .zip(&c.per_target)
            .map(|(t, p)| {
                json!({
                    "target": t.url,
                    "http_sent": p.sent,
                    "http_ok": p.ok,
                    "http_told_close": p.told_close,
                    "http_refused": p.refused,
                    "http_idle_closed": p.idle_closed,
                    "http_new_closed": p.new_closed,
                    "http_failed": p.failed,
                    "ws_opened": p.ws_opened,
                    "ws_closed_1001": p.ws_closed_1001,
                })
            })
            .collect();
        json!({
            "started_ms": self.started_ms,
            "ended_ms": sluice_clock::now_ms(),
            "seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "http": {
                "workers": cfg.http_workers,
                "sent": h.sent,
                "ok": h.ok,
                "told_close": h.told_close,
                "refused": h.refused,
                "idle_closed": h.idle_closed,
                "new_closed": h.new_closed,
                "failed": h.failed,
                "failures": h.reasons,
                "idle_closed_reasons": h.idle_closed_reasons,
                "new_closed_reasons": h.new_closed_reasons,
                "by_backend": h.by_backend,
            },
            "websocket": {
                "sessions": cfg.ws_sessions,
                "every_ms": cfg.ws_every.as_millis() as u64,
                "opened": w.opened,
                "closed_1001": w.closed_1001,
                "closed_other": w.closed_other,
                "reset": w.reset,
                "stalled": w.stalled,
                "closed_by_client": w.closed_by_client,
                "echo_lost": w.echo_lost,
                "connect_refused": w.connect_refused,
                "connect_failed": w.connect_failed,
                "messages": w.messages,
                "echoes": w.echoes,
                "failures": w.reasons,
            },
            "targets": targets,
        })
    }
}

/// Runs the load, counting into `stats`, until `stop` turns true (or its
/// sender is dropped), then lets every worker finish its exchange and every
/// session close.
pub async fn run(
    cfg: LoadConfig,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if cfg.targets.is_empty() {
        bail!("no --target given");
    }
    let cfg = Arc::new(cfg);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..cfg.http_workers {
        tasks.spawn(http_worker(i, cfg.clone(), stats.clone(), stop.clone()));
    }
    for i in 0..cfg.ws_sessions {
        tasks.spawn(ws_session(i, cfg.clone(), stats.clone(), stop.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a load task panicked")?;
    }
    Ok(())
}

/// True once the run is to end: `stop` turned true, or its sender is gone.
fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

// ---------------------------------------------------------------------------
// HTTP

/// How connecting went.
fn connect_error(e: &io::Error) -> String {
    format!("{} ({:?})", e, e.kind())
}

async fn connect(authority: &str) -> Result<TcpStream, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority)).await {
        Err(_) => Err(format!("connect to {authority} timed out")),
        Ok(Err(e)) => Err(format!("connect to {authority}: {}", connect_error(&e))),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// One kept-alive connection.
struct Conn {
    io: BufReader<TcpStream>,
    target: usize,
    /// Answers already read on it.
    answers: u64,
}

/// How one exchange ended.
enum Exchange {
    /// A whole answer.
    Answer {
        status: u16,
        close: bool,
        backend: Option<String>,
        sluice_error: Option<String>,
    },
    /// The connection ended (EOF or reset) before any answer byte.
    ClosedBeforeAnswer(String),
    /// Anything else.
    Failed(String),
}

async fn http_worker(
    id: usize,
    cfg: Arc<LoadConfig>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) {
    let n = cfg.targets.len();
    let mut next = id % n;
    let mut conn: Option<Conn> = None;
    let mut refused_in_row = 0usize;
    while !stopped(&stop) {
        let mut c = match conn.take() {
            Some(c) => c,
            None => {
                let target = next;
                next = (next + 1) % n;
                match connect(&cfg.targets[target].authority).await {
                    Ok(s) => Conn {
                        io: BufReader::new(s),
                        target,
                        answers: 0,
                    },
                    Err(_) => {
                        {
                            let mut s = stats.lock();
                            s.http.refused += 1;
                            s.per_target[target].refused += 1;
                        }
                        refused_in_row += 1;
                        if refused_in_row.is_multiple_of(n) {
                            tokio::time::sleep(ALL_REFUSED_PAUSE).await;
                        }
                        continue;
                    }
                }
            }
        };
        let target = &cfg.targets[c.target];
        let outcome =
            match tokio::time::timeout(cfg.request_timeout, exchange(&mut c, target)).await {
                Ok(outcome) => outcome,
                Err(_) => Exchange::Failed(format!(
                    "no whole answer within {}",
                    humantime::format_duration(cfg.request_timeout)
                )),
            };
        let reused = c.answers > 0;
        if matches!(outcome, Exchange::Answer { .. }) {
            refused_in_row = 0;
        } else if !reused {
            // A new connection closed unanswered counts as a refusal here
            // (docker's userland proxy): no busy loop while all targets do.
            refused_in_row += 1;
        }
        let keep = {
            let mut s = stats.lock();
            s.http.sent += 1;
            s.per_target[c.target].sent += 1;
            match outcome {
                Exchange::Answer {
                    status,
                    close,
                    backend,
                    sluice_error,
                } => {
                    if close {
                        s.http.told_close += 1;
                        s.per_target[c.target].told_close += 1;
                    }
                    if (200..300).contains(&status) && sluice_error.is_none() {
                        s.http.ok += 1;
                        s.per_target[c.target].ok += 1;
                        if let Some(b) = backend {
                            *s.http.by_backend.entry(b).or_default() += 1;
                        }
                    } else {
                        s.http.failed += 1;
                        s.per_target[c.target].failed += 1;
                        let why = format!(
                            "{}: HTTP {status}{}{}",
                            target.url,
                            sluice_error
                                .map(|e| format!(" x-sluice-error: {e}"))
                                .unwrap_or_default(),
                            if close { " (Connection: close)" } else { "" }
                        );
                        keep_reason(&mut s.http.reasons, why);
                    }
                    c.answers += 1;
                    !close
                }
                Exchange::ClosedBeforeAnswer(why) if reused => {
                    s.http.idle_closed += 1;
                    s.per_target[c.target].idle_closed += 1;
                    let why = format!(
                        "{}: {why} (connection's request {})",
                        target.url,
                        c.answers + 1
                    );
                    keep_reason(&mut s.http.idle_closed_reasons, why);
                    false
                }
                Exchange::ClosedBeforeAnswer(why) => {
                    s.http.new_closed += 1;
                    s.per_target[c.target].new_closed += 1;
                    let why = format!("{}: new connection {why}", target.url);
                    keep_reason(&mut s.http.new_closed_reasons, why);
                    false
                }
                Exchange::Failed(why) => {
                    s.http.failed += 1;
                    s.per_target[c.target].failed += 1;
                    let why = format!(
                        "{}: {why} (on a {} connection)",
                        target.url,
                        if reused { "reused" } else { "new" }
                    );
                    keep_reason(&mut s.http.reasons, why);
                    false
                }
            }
        };
        if keep {
            conn = Some(c);
        } else if !reused && refused_in_row > 0 && refused_in_row.is_multiple_of(n) {
            tokio::time::sleep(ALL_REFUSED_PAUSE).await;
        }
        if !cfg.http_pause.is_zero() {
            tokio::time::sleep(cfg.http_pause).await;
        }
    }
}

/// Writes one GET and reads its answer to the end.
async fn exchange(c: &mut Conn, target: &Target) -> Exchange {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sluice-load\r\nAccept: */*\r\n\r\n",
        target.path, target.authority
    );
    if let Err(e) = c.io.get_mut().write_all(request.as_bytes()).await {
        return if is_closed(&e) {
            Exchange::ClosedBeforeAnswer(format!("closed as the request was written: {e}"))
        } else {
            Exchange::Failed(format!("writing the request: {e}"))
        };
    }
    loop {
        // The first byte decides "before any answer byte".
        match c.io.fill_buf().await {
            Ok([]) => return Exchange::ClosedBeforeAnswer("closed before any answer byte".into()),
            Ok(_) => {}
            Err(e) if is_closed(&e) => {
                return Exchange::ClosedBeforeAnswer(format!("reset before any answer byte: {e}"))
            }
            Err(e) => return Exchange::Failed(format!("reading the answer: {e}")),
        }
        let head = match read_head(&mut c.io).await {
            Ok(h) => h,
            Err(e) => return Exchange::Failed(e),
        };
        if (100..200).contains(&head.status) {
            continue; // interim answer; the final one follows
        }
        if let Err(e) = read_body(&mut c.io, &head).await {
            return Exchange::Failed(format!("HTTP {} {e}", head.status));
        }
        return Exchange::Answer {
            status: head.status,
            close: head.close,
            backend: head.backend,
            sluice_error: head.sluice_error,
        };
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// An answer's head, as far as the counting needs it.
#[derive(Debug)]
struct Head {
    status: u16,
    close: bool,
    length: Option<u64>,
    chunked: bool,
    backend: Option<String>,
    sluice_error: Option<String>,
}

async fn read_head(io: &mut BufReader<TcpStream>) -> Result<Head, String> {
    let mut raw = Vec::with_capacity(512);
    loop {
        let before = raw.len();
        let n = io
            .read_until(b'\n', &mut raw)
            .await
            .map_err(|e| format!("reading the answer head: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed mid-head after {before} bytes"));
        }
        if raw.len() > MAX_HEAD {
            return Err(format!("answer head over {MAX_HEAD} bytes"));
        }
        if raw.ends_with(b"\r\n\r\n") || raw.ends_with(b"\n\n") {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete answer head".into()),
        Err(e) => return Err(format!("malformed answer head: {e}")),
    }
    let status = response.code.unwrap_or(0);
    let mut head = Head {
        status,
        // HTTP/1.0 closes unless told to keep alive.
        close: response.version == Some(0),
        length: None,
        chunked: false,
        backend: None,
        sluice_error: None,
    };
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_owned();
        let has_token = |token: &str| {
            value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if h.name.eq_ignore_ascii_case("connection") {
            if has_token("close") {
                head.close = true;
            } else if has_token("keep-alive") {
                head.close = false;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            head.length = Some(
                value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = has_token("chunked");
        } else if h.name.eq_ignore_ascii_case("x-backend") {
            head.backend = Some(value);
        } else if h.name.eq_ignore_ascii_case("x-sluice-error") {
            head.sluice_error = Some(value);
        }
    }
    Ok(head)
}

async fn read_body(io: &mut BufReader<TcpStream>, head: &Head) -> Result<(), String> {
    let mid = |e: io::Error| format!("body cut short: {e}");
    if head.status == 204 || head.status == 304 {
        return Ok(());
    }
    if head.chunked {
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).await.map_err(mid)? == 0 {
                return Err("body cut short (chunk size)".into());
            }
            let size_hex = line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size_hex, 16)
                .map_err(|_| format!("bad chunk size {:?}", line.trim()))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if io.read_line(&mut line).await.map_err(mid)? == 0 {
                        return Err("body cut short (trailers)".into());
                    }
                    if line.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            skip(io, size + 2).await?;
        }
    }
    match head.length {
        Some(len) => skip(io, len).await,
        None => {
            // Delimited by the end of the connection.
            let mut sink = Vec::new();
            io.read_to_end(&mut sink).await.map_err(mid)?;
            Ok(())
        }
    }
}

/// Reads and drops exactly `n` bytes.
async fn skip(io: &mut BufReader<TcpStream>, n: u64) -> Result<(), String> {
    let copied = tokio::io::copy(&mut io.take(n), &mut tokio::io::sink())
        .await
        .map_err(|e| format!("body cut short: {e}"))?;
    if copied < n {
        return Err(format!("body cut short: {copied} of {n} bytes"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// WebSocket

/// How one tunnel ended.
enum TunnelEnd {
    Closed1001,
    ClosedOther(Option<u16>),
    Reset(String),
    Stalled,
    ByClient,
}

async fn ws_session(
    id: usize,
    cfg: Arc<LoadConfig>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) {
    let n = cfg.targets.len();
    let mut next = id % n;
    let mut refused_in_row = 0usize;
    let mut seq = 0u64;
    while !stopped(&stop) {
        let target = next;
        next = (next + 1) % n;
        let url = cfg.targets[target].ws_url();
        let tcp = match connect(&cfg.targets[target].authority).await {
            Ok(s) => s,
            Err(_) => {
                stats.lock().ws.connect_refused += 1;
                refused_in_row += 1;
                if refused_in_row >= n {
                    refused_in_row = 0;
                    tokio::time::sleep(ALL_REFUSED_PAUSE).await;
                }
                continue;
            }
        };
        refused_in_row = 0;
        let handshake = tokio_tungstenite::client_async(url.as_str(), tcp);
        let mut ws = match tokio::time::timeout(cfg.request_timeout, handshake).await {
            Ok(Ok((ws, _response))) => ws,
            Ok(Err(e)) => {
                {
                    let mut s = stats.lock();
                    s.ws.connect_failed += 1;
                    keep_reason(&mut s.ws.reasons, format!("{url}: handshake: {e}"));
                }
                tokio::time::sleep(ALL_REFUSED_PAUSE).await;
                continue;
            }
            Err(_) => {
                let mut s = stats.lock();
                s.ws.connect_failed += 1;
                keep_reason(&mut s.ws.reasons, format!("{url}: handshake timed out"));
                continue;
            }
        };
        {
            let mut s = stats.lock();
            s.ws.opened += 1;
            s.per_target[target].ws_opened += 1;
        }
        let mut stop_rx = stop.clone();
        let (end, lost) = tunnel(&mut ws, &cfg, &stats, &mut stop_rx, &mut seq, id).await;
        let mut s = stats.lock();
        match end {
            TunnelEnd::Closed1001 => {
                s.ws.closed_1001 += 1;
                s.per_target[target].ws_closed_1001 += 1;
                s.ws.echo_lost += lost;
            }
            TunnelEnd::ClosedOther(code) => {
                s.ws.closed_other += 1;
                s.ws.echo_lost += lost;
                keep_reason(&mut s.ws.reasons, format!("{url}: server Close {code:?}"));
            }
            TunnelEnd::ByClient => {
                s.ws.closed_by_client += 1;
                s.ws.echo_lost += lost;
            }
            TunnelEnd::Reset(why) => {
                s.ws.reset += 1;
                keep_reason(&mut s.ws.reasons, format!("{url}: {why}"));
            }
            TunnelEnd::Stalled => {
                s.ws.stalled += 1;
                keep_reason(
                    &mut s.ws.reasons,
                    format!(
                        "{url}: no echo within {}",
                        humantime::format_duration(cfg.request_timeout)
                    ),
                );
            }
        }
    }
}

/// Runs one tunnel to its end; returns how it ended and how many sent
/// messages never got their echo.
async fn tunnel<S>(
    ws: &mut WebSocketStream<S>,
    cfg: &LoadConfig,
    stats: &Stats,
    stop: &mut watch::Receiver<bool>,
    seq: &mut u64,
    session: usize,
) -> (TunnelEnd, u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut pending: VecDeque<(String, Instant)> = VecDeque::new();
    let mut tick = tokio::time::interval(cfg.ws_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing_since: Option<Instant> = None;
    let mut close_sent = false;
    loop {
        let stalled_at = pending
            .front()
            .map(|(_, at)| tokio::time::Instant::from_std(*at + cfg.request_timeout));
        tokio::select! {
            changed = stop.changed(), if closing_since.is_none() => {
                // A dropped sender ends the run as well.
                if changed.is_err() || *stop.borrow() {
                    closing_since = Some(Instant::now());
                }
            }
            _ = tick.tick(), if closing_since.is_none() => {
                *seq += 1;
                let msg = format!("load {session} {}", *seq);
                if let Err(e) = ws.send(Message::text(msg.clone())).await {
                    return (TunnelEnd::Reset(format!("send: {e}")), 0);
                }
                stats.lock().ws.messages += 1;
                pending.push_back((msg, Instant::now()));
            }
            _ = tokio::time::sleep(Duration::from_millis(50)), if closing_since.is_some() => {}
            _ = sleep_until_opt(stalled_at), if closing_since.is_none() => {
                return (TunnelEnd::Stalled, 0);
            }
            next = ws.next() => match next {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if let Some(i) = pending.iter().position(|(m, _)| text.ends_with(m.as_str())) {
                        pending.remove(i);
                        stats.lock().ws.echoes += 1;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    let lost = pending.len() as u64;
                    // tungstenite answers the Close; read on to the end.
                    let _ = tokio::time::timeout(CLOSING_WAIT, async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    return match code {
                        _ if close_sent => (TunnelEnd::ByClient, lost),
                        Some(1001) => (TunnelEnd::Closed1001, lost),
                        other => (TunnelEnd::ClosedOther(other), lost),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(tungstenite::Error::ConnectionClosed)) | None => {
                    return if close_sent {
                        (TunnelEnd::ByClient, pending.len() as u64)
                    } else {
                        (TunnelEnd::Reset("ended without a Close frame".into()), 0)
                    };
                }
                Some(Err(e)) => {
                    return if close_sent {
                        (TunnelEnd::ByClient, pending.len() as u64)
                    } else {
                        (TunnelEnd::Reset(format!("{e} (no Close frame)")), 0)
                    };
                }
            }
        }
        if let Some(since) = closing_since {
            let waited = since.elapsed();
            if !close_sent && (pending.is_empty() || waited >= CLOSING_WAIT) {
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                if ws.send(Message::Close(Some(frame))).await.is_err() {
                    return (TunnelEnd::ByClient, pending.len() as u64);
                }
                close_sent = true;
            } else if close_sent && waited >= CLOSING_WAIT * 2 {
                return (TunnelEnd::ByClient, pending.len() as u64);
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Reads one request head.
    async fn read_request(s: &mut BufReader<TcpStream>) -> bool {
        let mut line = String::new();
        loop {
            line.clear();
            match s.read_line(&mut line).await {
                Ok(0) | Err(_) => return false,
                Ok(_) if line == "\r\n" => return true,
                Ok(_) => {}
            }
        }
    }

    async fn answer(s: &mut BufReader<TcpStream>, status: &str, close: bool) {
        let head = format!(
            "HTTP/1.1 {status}\r\nx-backend: b1\r\ncontent-length: 3\r\n{}\r\nhey",
            if close { "connection: close\r\n" } else { "" }
        );
        s.get_mut().write_all(head.as_bytes()).await.unwrap();
    }

    /// A server whose connections misbehave in turn, so that one worker
    /// meets every HTTP class once; then it answers 200 and closes.
    async fn scripted_server(listener: TcpListener) {
        let mut nth = 0;
        loop {
            let (s, _) = listener.accept().await.unwrap();
            nth += 1;
            let mut s = BufReader::new(s);
            match nth {
                // 200 with Connection: close.
                1 => {
                    read_request(&mut s).await;
                    answer(&mut s, "200 OK", true).await;
                }
                // 200 kept alive, then the next request closed unanswered.
                2 => {
                    read_request(&mut s).await;
                    answer(&mut s, "200 OK", false).await;
                    read_request(&mut s).await;
                }
                // A new connection closed unanswered.
                3 => {
                    read_request(&mut s).await;
                }
                // A 503, kept alive; then a body cut short.
                4 => {
                    read_request(&mut s).await;
                    answer(&mut s, "503 Service Unavailable", false).await;
                    read_request(&mut s).await;
                    s.get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")
                        .await
                        .unwrap();
                }
                _ => {
                    read_request(&mut s).await;
                    answer(&mut s, "200 OK", true).await;
                }
            }
        }
    }

    #[tokio::test]
    async fn every_http_outcome_lands_in_its_class() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        tokio::spawn(scripted_server(listener));
        let refusing = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let cfg = LoadConfig {
            targets: vec![
                Target::parse(&format!("http://{good}/")).unwrap(),
                Target::parse(&format!("http://{refusing}/")).unwrap(),
            ],
            http_workers: 1,
            ws_sessions: 0,
            ws_every: Duration::from_millis(200),
            request_timeout: Duration::from_secs(5),
            http_pause: Duration::from_millis(5),
        };
        let stats = Arc::new(Stats::new(2));
        let (stop, stopped) = watch::channel(false);
        let load = tokio::spawn(run(cfg.clone(), stats.clone(), stopped));
        tokio::time::sleep(Duration::from_millis(400)).await;
        stop.send(true).unwrap();
        load.await.unwrap().unwrap();
        let r = stats.report(&cfg);
        let h = &r["http"];
        let n = |k: &str| h[k].as_u64().unwrap();
        assert_eq!(n("idle_closed"), 1, "{h}");
        assert_eq!(n("new_closed"), 1, "{h}");
        assert_eq!(n("failed"), 2, "{h}");
        assert!(n("refused") >= 1, "{h}");
        assert!(n("ok") >= 3, "{h}");
        assert!(n("told_close") >= 2, "{h}");
        assert_eq!(
            n("sent"),
            n("ok") + n("idle_closed") + n("new_closed") + n("failed"),
            "{h}"
        );
        let failures = h["failures"].to_string();
        assert!(failures.contains("HTTP 503"), "{failures}");
        assert!(failures.contains("cut short"), "{failures}");
        assert_eq!(r["targets"][1]["http_sent"], 0, "{r}");
        assert_eq!(h["by_backend"]["b1"], n("ok"), "{h}");
    }

    #[test]
    fn targets_parse() {
        let t = Target::parse("http://127.0.0.1:8071/").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8071");
        assert_eq!(t.path, "/");
        assert_eq!(t.ws_url(), "ws://127.0.0.1:8071/");
        let t = Target::parse("ws://example:9/x?y=1").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("example:9", "/x?y=1")
        );
        let t = Target::parse("http://h").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("h:80", "/"));
        assert!(Target::parse("https://h/").is_err());
        assert!(Target::parse("nonsense").is_err());
    }

    #[tokio::test]
    async fn sessions_count_their_echoes_and_close_cleanly() {
        let backend = crate::DemoBackend::start(crate::DemoBackendConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            name: "b1".into(),
            delay: Duration::ZERO,
        })
        .await
        .unwrap();
        let cfg = LoadConfig {
            targets: vec![Target::parse(&format!("http://{}/", backend.addr())).unwrap()],
            http_workers: 1,
            ws_sessions: 2,
            ws_every: Duration::from_millis(50),
            request_timeout: Duration::from_secs(5),
            http_pause: Duration::from_millis(20),
        };
        let stats = Arc::new(Stats::new(1));
        let (stop, stopped) = watch::channel(false);
        let load = tokio::spawn(run(cfg.clone(), stats.clone(), stopped));
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(stop); // a dropped sender stops the run too
        load.await.unwrap().unwrap();
        let r = stats.report(&cfg);
        let w = &r["websocket"];
        let n = |k: &str| w[k].as_u64().unwrap();
        assert_eq!((n("opened"), n("closed_by_client")), (2, 2), "{w}");
        assert!(n("messages") >= 10, "{w}");
        assert_eq!(n("echoes"), n("messages"), "{w}");
        assert_eq!(
            n("echo_lost") + n("reset") + n("stalled") + n("closed_other"),
            0,
            "{w}"
        );
        assert_eq!(r["http"]["failed"], 0, "{r}");
        assert!(r["http"]["ok"].as_u64() > Some(0), "{r}");
    }
}
