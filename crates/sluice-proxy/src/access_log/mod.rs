//! The access log: one line per request and per WebSocket tunnel, written
//! as it ends (its response's last byte went out, or its body was cut or
//! dropped; the tunnel closed), to the node's standard output or a file.
//!
//! Why: the line says what no peer's access log says, the drain a request
//! ended under and whether that drain's deadline closed it, beside the
//! usual fields (line.rs lists them).
//!
//! How, on the request path: the line is formatted into a buffer of the
//! worker thread's own, copied into one allocation and handed to a bounded
//! queue without waiting (`try_send`); when the queue is full the line is
//! dropped and counted ([`AccessLog::dropped`], `/metrics`
//! `sluice_access_log_dropped_total`). One thread writes the queue out in
//! batches (writer.rs). No lock is taken per request.

mod line;
mod writer;

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_model::NodeId;

pub(crate) use line::AccessLine;
pub use line::AccessLogFormat;

/// Lines the queue holds before new ones are dropped: several writer
/// periods' worth at the throughput one node reaches.
const QUEUE_LINES: usize = 32 * 1024;

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogOutput {
    /// The node's standard output, beside its logs.
    Stdout,
    /// A file, appended to (created if missing).
    File(PathBuf),
}

/// How the access log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// The node every line names.
    pub node: NodeId,
    /// JSON or text lines.
    pub format: AccessLogFormat,
    /// Standard output or a file.
    pub output: AccessLogOutput,
    /// Whether a line's target keeps the request's query string.
    pub query: bool,
}

/// A running access log; cheap to share.
pub struct AccessLog {
    node: NodeId,
    format: AccessLogFormat,
    query: bool,
    lines: SyncSender<Box<[u8]>>,
    dropped: AtomicU64,
    stop: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The line being formatted, reused by every request of the thread.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl AccessLog {
    /// Opens the output (a file is created if missing, and appended to)
    /// and starts the writer thread.
    pub fn start(settings: AccessLogSettings) -> std::io::Result<Arc<AccessLog>> {
        let output = match &settings.output {
            AccessLogOutput::Stdout => writer::Output::Stdout,
            AccessLogOutput::File(path) => {
                writer::Output::File(OpenOptions::new().create(true).append(true).open(path)?)
            }
        };
        let (lines, queue) = mpsc::sync_channel(QUEUE_LINES);
        let stop = Arc::new(AtomicBool::new(false));
        let writer_stop = stop.clone();
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer::run(queue, output, writer_stop))?;
        Ok(Arc::new(AccessLog {
            node: settings.node,
            format: settings.format,
            query: settings.query,
            lines,
            dropped: AtomicU64::new(0),
            stop,
            writer: Mutex::new(Some(writer)),
        }))
    }

    /// Whether a line's target keeps the query string.
    pub(crate) fn with_query(&self) -> bool {
        self.query
    }

    /// Queues `line`, or drops it (counted) when the queue is full.
    pub(crate) fn write(&self, line: &AccessLine<'_>) {
        let bytes = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            line.write(self.node, self.format, &mut scratch);
            Box::<[u8]>::from(scratch.as_slice())
        });
        match self.lines.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes out what is queued and stops the writer, waiting for it up
    /// to `within`. Lines of requests that end later are dropped.
    pub fn close(&self, within: Duration) {
        self.stop.store(true, Ordering::Release);
        let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        writer.thread().unpark();
        let until = Instant::now() + within;
        while !writer.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if writer.is_finished() {
            let _ = writer.join();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(w) = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            w.thread().unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> AccessLine<'static> {
        AccessLine {
            time: 0,
            tunnel: false,
            listener: 80,
            client: "127.0.0.1:1".parse().unwrap(),
            method: "GET",
            path: "/",
            version: "HTTP/1.1",
            status: 200,
            bytes_in: 0,
            bytes_out: 0,
            duration_micros: 0,
            backend: None,
            error: None,
            drain: None,
            close_code: None,
        }
    }

    #[test]
    fn lines_reach_the_file_whole_within_a_period_and_at_close() {
        let dir = tempfile_dir();
        let path = dir.join("access.log");
        let log = AccessLog::start(AccessLogSettings {
            node: 4,
            format: AccessLogFormat::Json,
            output: AccessLogOutput::File(path.clone()),
            query: false,
        })
        .unwrap();
        log.write(&line());
        std::thread::sleep(writer::FLUSH_EVERY * 4);
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first.lines().count(), 1, "{first}");
        assert!(first
            .starts_with("{\"time\":\"1970-01-01T00:00:00.000Z\",\"level\":\"INFO\",\"node\":4,"));
        for _ in 0..1000 {
            log.write(&line());
        }
        log.close(Duration::from_secs(5));
        let all = std::fs::read_to_string(&path).unwrap();
        assert_eq!(all.lines().count(), 1001);
        assert!(all
            .lines()
            .all(|l| l.ends_with("\"closed_at_deadline\":null}")));
        assert_eq!(log.dropped(), 0);
        // After the close, lines are dropped and counted.
        log.write(&line());
        assert_eq!(log.dropped(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sluice-access-log-{}-{}",
            std::process::id(),
            sluice_clock::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
