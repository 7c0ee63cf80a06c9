//! Raw-socket peers for protocol tests: a [`ScriptedBackend`] whose every
//! connection runs a script the test writes (read a request, answer wrong,
//! stall, close mid-body, reset), and a [`RawClient`] that sends bytes as
//! they are and reads answers without fixing anything up.
//!
//! Requests are parsed strictly (httparse, one request at a time, CRLF
//! only), so a test also sees whether what sluice forwarded is exactly one
//! well-formed request.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest head either side reads.
const MAX_HEAD: usize = 64 * 1024;

/// One request as the backend read it.
#[derive(Clone, Debug, Default)]
pub struct RawRequest {
    pub method: String,
    pub target: String,
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Which connection (counted from 0) it came on.
    pub connection: usize,
}

impl RawRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }

    /// How many lines of header `name` there are.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: Mutex<Vec<RawRequest>>,
}

/// A backend on `127.0.0.1` that runs `script` on every connection.
pub struct ScriptedBackend {
    addr: String,
    seen: Arc<Seen>,
    accept: JoinHandle<()>,
}

impl ScriptedBackend {
    /// Listens on a free port; each accepted connection runs `script` in a
    /// task of its own.
    pub async fn start<F, Fut>(script: F) -> ScriptedBackend
    where
        F: Fn(BackendConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((io, _)) = listener.accept().await else {
                    return;
                };
                let number = s.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(script(BackendConn {
                    wire: Wire::new(io),
                    seen: s.clone(),
                    number,
                }));
            }
        });
        ScriptedBackend { addr, seen, accept }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    /// Every request head read so far, in order (bodies as far as read).
    pub fn requests(&self) -> Vec<RawRequest> {
        self.seen.requests.lock().unwrap().clone()
    }

    /// How many requests had method `method` and target `target`.
    pub fn count(&self, method: &str, target: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.target == target)
            .count()
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One connection to a [`ScriptedBackend`], as its script sees it.
pub struct BackendConn {
    wire: Wire,
    seen: Arc<Seen>,
    number: usize,
}

impl BackendConn {
    /// Which connection this is (counted from 0).
    pub fn number(&self) -> usize {
        self.number
    }

    /// Reads one request head and records it; `None` at end of stream or
    /// on a malformed head (the test sees it as a missing request).
    pub async fn read_head(&mut self) -> Option<RawRequest> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut slots);
            match req.parse(&self.wire.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let raw = RawRequest {
                        method: req.method?.to_string(),
                        target: req.path?.to_string(),
                        headers: pairs(req.headers),
                        body: Vec::new(),
                        connection: self.number,
                    };
                    self.wire.buf.drain(..len);
                    self.seen.requests.lock().unwrap().push(raw.clone());
                    return Some(raw);
                }
                Ok(httparse::Status::Partial) if self.wire.buf.len() < MAX_HEAD => {}
                _ => return None,
            }
            if !self.wire.fill().await {
                return None;
            }
        }
    }

    /// Reads the body `req` announces (length or chunked) and records it.
    pub async fn read_body(&mut self, req: &mut RawRequest) -> Option<()> {
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with("chunked"));
        if chunked {
            loop {
                let line = self.wire.line().await?;
                let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
                if size == 0 {
                    while !self.wire.line().await?.is_empty() {}
                    break;
                }
                let data = self.wire.exact(size + 2).await?;
                if &data[size..] != b"\r\n" {
                    return None;
                }
                req.body.extend_from_slice(&data[..size]);
            }
        } else if let Some(n) = req.header("content-length") {
            let n: usize = n.trim().parse().ok()?;
            req.body = self.wire.exact(n).await?;
        }
        let mut seen = self.seen.requests.lock().unwrap();
        if let Some(last) = seen.iter_mut().rev().find(|r| r.connection == self.number) {
            last.body = req.body.clone();
        }
        Some(())
    }

    /// Reads a whole request, head and body.
    pub async fn read_request(&mut self) -> Option<RawRequest> {
        let mut req = self.read_head().await?;
        self.read_body(&mut req).await?;
        Some(req)
    }

    /// Writes `bytes`; false if the connection is gone.
    pub async fn write(&mut self, bytes: impl AsRef<[u8]>) -> bool {
        self.wire.io.write_all(bytes.as_ref()).await.is_ok()
    }

    /// Waits until the other side closes (or `within` passes); true if it
    /// closed. Bytes that arrive meanwhile are kept.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        self.wire.closed_within(within).await
    }

    /// Bytes read but not consumed by a request yet.
    pub fn unread(&self) -> &[u8] {
        &self.wire.buf
    }

    /// Closes with a TCP reset (SO_LINGER 0), as a crashing backend does.
    pub fn reset(self) {
        let _ = self.wire.io.set_zero_linger();
        drop(self.wire);
    }

    /// The socket itself, for scripts that go beyond HTTP (WebSocket).
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.wire.io, self.wire.buf)
    }
}

/// One response as a [`RawClient`] read it.
#[derive(Clone, Debug, Default)]
pub struct RawResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The connection ended before the body its head announced was whole.
    pub truncated: bool,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that sends bytes exactly as given.
pub struct RawClient {
    wire: Wire,
}

impl RawClient {
    pub async fn connect(addr: &str) -> RawClient {
        let io = TcpStream::connect(addr).await.expect("connect");
        let _ = io.set_nodelay(true);
        RawClient {
            wire: Wire::new(io),
        }
    }

    /// Sends `bytes` as they are.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.wire.io.write_all(bytes.as_ref()).await.expect("send");
    }

    /// Sends `bytes`; false if the connection is gone.
    pub async fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> bool {
        self.wire.io.write_all(bytes.as_ref()).await.is_ok()
    }

    /// Reads the next response (a 1xx counts as one) to a request with
    /// method `method`, within 10 s; `None` if the connection ended first.
    pub async fn response(&mut self, method: &str) -> Option<RawResponse> {
        tokio::time::timeout(Duration::from_secs(10), self.read_response(method))
            .await
            .expect("a response (or the end of the connection) within 10 s")
    }

    async fn read_response(&mut self, method: &str) -> Option<RawResponse> {
        let mut resp = loop {
            let mut slots = [httparse::EMPTY_HEADER; 128];
            let mut r = httparse::Response::new(&mut slots);
            match r.parse(&self.wire.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let resp = RawResponse {
                        status: r.code?,
                        reason: r.reason.unwrap_or("").to_string(),
                        headers: pairs(r.headers),
                        body: Vec::new(),
                        truncated: false,
                    };
                    self.wire.buf.drain(..len);
                    break resp;
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => panic!(
                    "malformed response ({e}): {:?}",
                    String::from_utf8_lossy(&self.wire.buf)
                ),
            }
            if !self.wire.fill().await {
                return None;
            }
        };
        let no_body = (100..200).contains(&resp.status)
            || resp.status == 204
            || resp.status == 304
            || method == "HEAD";
        if no_body {
            return Some(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().trim_end().ends_with("chunked"));
        if chunked {
            loop {
                let Some(line) = self.wire.line().await else {
                    resp.truncated = true;
                    return Some(resp);
                };
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                if size == 0 {
                    while self.wire.line().await.is_some_and(|l| !l.is_empty()) {}
                    return Some(resp);
                }
                while self.wire.buf.len() < size + 2 {
                    if !self.wire.fill().await {
                        resp.body.extend_from_slice(&self.wire.buf);
                        resp.truncated = true;
                        return Some(resp);
                    }
                }
                resp.body.extend_from_slice(&self.wire.buf[..size]);
                self.wire.buf.drain(..size + 2);
            }
        } else if let Some(n) = resp.header("content-length") {
            let n: usize = n.trim().parse().expect("a number");
            while self.wire.buf.len() < n {
                if !self.wire.fill().await {
                    resp.body = std::mem::take(&mut self.wire.buf);
                    resp.truncated = true;
                    return Some(resp);
                }
            }
            resp.body = self.wire.buf.drain(..n).collect();
        } else {
            while self.wire.fill().await {}
            resp.body = std::mem::take(&mut self.wire.buf);
        }
        Some(resp)
    }

    /// Whether the server closed the connection within `within` (bytes
    /// that arrive meanwhile are kept for the next read).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        self.wire.closed_within(within).await
    }

    /// Reads whatever arrives until the connection ends (within 10 s).
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while self.wire.fill().await {}
        })
        .await;
        std::mem::take(&mut self.wire.buf)
    }

    /// The socket itself, with bytes read past the last response.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.wire.io, self.wire.buf)
    }
}

/// The first value of header `name` (case-insensitive) among `headers`.
fn first<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Parsed header lines as owned name/value pairs.
fn pairs(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

// === impl Wire ===

/// A socket and the bytes read from it that nobody consumed yet.
struct Wire {
    io: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    fn new(io: TcpStream) -> Wire {
        let _ = io.set_nodelay(true);
        Wire {
            io,
            buf: Vec::new(),
        }
    }

    /// Reads more into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut b = [0u8; 8192];
        match self.io.read(&mut b).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }

    /// One CRLF-terminated line, without its CRLF.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Exactly `n` bytes.
    async fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) => return false,
                Ok(false) => return true,
                Ok(true) => {}
            }
        }
    }
}
