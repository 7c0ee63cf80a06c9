//! [`AccessRecord`]: what one request or tunnel did, gathered as it goes
//! and accounted once, when the record is dropped with the request's last
//! piece (its response body after the last byte, a body cut or dropped,
//! the tunnel's task): into its backend's [`BackendTraffic`] counters and
//! into the access log.
//!
//! Dropping is the one end every path shares (a response sent whole, a
//! client gone mid-body, a drain deadline, a connection aborted), so no
//! request ends unaccounted and none twice.
//!
//! [`BackendTraffic`]: crate::backend_traffic::BackendTraffic

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Uri, Version};

use crate::access_log::{AccessLine, AccessLog};
use crate::backend::BackendRuntime;
use crate::backend_traffic::Ended;
use crate::drain_mark::DrainMark;
use crate::error::{DrainCause, ForwardError, FORWARD_ERROR_CODES};
use crate::http1::RequestBody;

/// What a record needs of the client connection it came on (the
/// connection's core implements it).
pub(crate) trait ConnectionFacts: Send + Sync {
    /// The listener's port.
    fn port(&self) -> u16;
    /// The client's address.
    fn peer(&self) -> SocketAddr;
    /// The drain of the listener (or node) the connection came through.
    fn listener_drain(&self) -> &DrainMark;
    /// Where the line goes, when the access log is on.
    fn access_log(&self) -> Option<&AccessLog>;
    /// Which drain cut the connection's work.
    fn cut_cause(&self) -> DrainCause;
}

/// One request's (or tunnel's) accounting, written down when dropped.
pub(crate) struct AccessRecord {
    conn: Arc<dyn ConnectionFacts>,
    arrived: Instant,
    /// The request line's method and target, kept only for the access
    /// log (no copy per request while it is off).
    request_line: Option<(Method, Uri)>,
    version: Version,
    /// The request became a WebSocket tunnel.
    pub tunnel: bool,
    /// The backend the request was sent to.
    pub backend: Option<Arc<BackendRuntime>>,
    pub status: u16,
    /// sluice's own answer: index into [`FORWARD_ERROR_CODES`].
    pub error: Option<usize>,
    /// Request body (or tunnel) bytes from the client to the backend.
    pub bytes_in: u64,
    /// Response body (or tunnel) bytes to the client.
    pub bytes_out: u64,
    /// A drain deadline ended it.
    pub cut: bool,
    /// Close code sent to the client (a tunnel).
    pub close_code: Option<u16>,
}

impl AccessRecord {
    /// A request whose head just arrived on `conn`.
    pub fn new(conn: Arc<dyn ConnectionFacts>, req: &Request<RequestBody>) -> AccessRecord {
        let request_line = conn
            .access_log()
            .map(|_| (req.method().clone(), req.uri().clone()));
        AccessRecord {
            conn,
            arrived: Instant::now(),
            request_line,
            version: req.version(),
            tunnel: false,
            backend: None,
            status: 0,
            error: None,
            bytes_in: 0,
            bytes_out: 0,
            cut: false,
            close_code: None,
        }
    }

    /// sluice answers the request itself, for `err`.
    pub fn failed(&mut self, err: &ForwardError) {
        self.error = Some(err.code_index());
        if matches!(err, ForwardError::DrainDeadline { .. }) {
            self.cut = true;
        }
    }

    /// The answer's head is ready, with `status`.
    pub fn answered(&mut self, status: u16) {
        self.status = status;
        if let Some(b) = &self.backend {
            b.traffic().first_byte(self.arrived.elapsed());
        }
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        let took = self.arrived.elapsed();
        if let Some(b) = &self.backend {
            b.traffic().ended(Ended {
                status: self.status,
                error: self.error,
                bytes_in: self.bytes_in,
                bytes_out: self.bytes_out,
                took,
            });
        }
        let Some(log) = self.conn.access_log() else {
            return;
        };
        let backend_drain = || self.backend.as_ref().and_then(|b| b.drain_mark.get());
        let listener_drain = || self.conn.listener_drain().get();
        // A cut names the drain that made it; otherwise the backend's drain
        // comes first, then its listener's (or node's).
        let drain = match (self.cut, self.conn.cut_cause()) {
            (true, DrainCause::Listener | DrainCause::Node) => listener_drain(),
            _ => backend_drain().or_else(listener_drain),
        };
        let Some((method, uri)) = &self.request_line else {
            return;
        };
        let path = match uri.path_and_query() {
            Some(pq) if log.with_query() => pq.as_str(),
            _ => uri.path(),
        };
        log.write(&AccessLine {
            time: sluice_clock::now_ms(),
            tunnel: self.tunnel,
            listener: self.conn.port(),
            client: self.conn.peer(),
            method: method.as_str(),
            path,
            version: match self.version {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_3 => "HTTP/3",
                _ => "HTTP/1.1",
            },
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration_micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            backend: self.backend.as_ref().map(|b| (&*b.group, &*b.addr)),
            error: self.error.and_then(|i| FORWARD_ERROR_CODES.get(i).copied()),
            drain: drain.map(|d| (d, self.cut)),
            close_code: self.close_code,
        });
    }
}

/// The line of a request head sluice refused before it was a request (a
/// malformed or oversized head, or one not sent in time): no method, path
/// or backend, the refusal's status and code, `took` from when the
/// connection began waiting for it. Refusals are the client's doing and
/// are counted on no backend.
pub(crate) fn log_refused_head(
    conn: &dyn ConnectionFacts,
    status: u16,
    code: &'static str,
    took: std::time::Duration,
) {
    let Some(log) = conn.access_log() else {
        return;
    };
    log.write(&AccessLine {
        time: sluice_clock::now_ms(),
        tunnel: false,
        listener: conn.port(),
        client: conn.peer(),
        method: "-",
        path: "-",
        version: "-",
        status,
        bytes_in: 0,
        bytes_out: 0,
        duration_micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        backend: None,
        error: Some(code),
        drain: conn.listener_drain().get().map(|d| (d, false)),
        close_code: None,
    });
}
