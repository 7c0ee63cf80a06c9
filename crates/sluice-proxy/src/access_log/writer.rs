//! The access log's writer: one thread that takes complete lines from a
//! bounded queue and writes them in batches, so that no connection ever
//! waits on the log's output.
//!
//! Every [`FLUSH_EVERY`] (and at once when told to stop) it takes all the
//! lines queued and writes them with one `write_all` per batch of at most
//! [`BATCH_BYTES`]. On standard output a batch is written under the
//! `Stdout` lock the node's tracing lines take too, so the two never
//! interleave within a line. Senders never wake it: a line waits at most
//! one period.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

/// How long a queued line waits at most before it is written.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Bytes gathered for one write at most.
const BATCH_BYTES: usize = 256 * 1024;

/// Where the lines go.
pub(super) enum Output {
    Stdout,
    File(File),
}

impl Output {
    fn write(&mut self, batch: &[u8]) {
        // A failed write (a closed pipe, a full disk) drops that batch:
        // the log must not stop the node, and has nowhere to say so but
        // the log itself.
        let _ = match self {
            Output::Stdout => std::io::stdout().lock().write_all(batch),
            Output::File(f) => f.write_all(batch),
        };
    }

    fn flush(&mut self) {
        let _ = match self {
            Output::Stdout => std::io::stdout().lock().flush(),
            Output::File(f) => f.flush(),
        };
    }
}

/// Runs until `stop` is set (then writes what is queued, and returns) or
/// every sender is gone.
pub(super) fn run(lines: Receiver<Box<[u8]>>, mut output: Output, stop: Arc<AtomicBool>) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let gone = loop {
            match lines.try_recv() {
                Ok(line) => {
                    if batch.len() + line.len() > BATCH_BYTES && !batch.is_empty() {
                        output.write(&batch);
                        batch.clear();
                    }
                    batch.extend_from_slice(&line);
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if !batch.is_empty() {
            output.write(&batch);
            batch.clear();
        }
        if stopping || gone {
            output.flush();
            return;
        }
        std::thread::park_timeout(FLUSH_EVERY);
    }
}
