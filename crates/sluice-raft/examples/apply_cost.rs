//! What one admin write costs the storage of a node whose state holds N
//! backends: the time and size of a snapshot at that state (after which the
//! log is purged, as openraft does), then the steps openraft takes for each
//! committed entry (append it to the log, save the committed id, apply it to
//! the state machine), timed, and the bytes the process handed to `write`
//! meanwhile.
//!
//! `cargo run --release -p sluice-raft --example apply_cost [N ...]`
//! (default: 1000 10000 100000). Each write is one entry adding one backend.

use std::error::Error;
use std::time::{Duration, Instant};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{EntryPayload, RaftSnapshotBuilder};
use sluice_model::{Command, DrainPolicy};
use sluice_raft::{Entry, LogStore, Request, StateMachineStore};

/// Writes timed at each size.
const WRITES: u64 = 200;
/// Backends per entry while the state is filled.
const FILL_BATCH: u64 = 5_000;

type Res<T> = Result<T, Box<dyn Error>>;

fn add_backend(i: u64) -> Command {
    Command::AddBackend {
        group: "g".into(),
        addr: format!("10.{}.{}.{}:80", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        weight: 100,
        at: 0,
    }
}

/// Bytes this process has passed to `write` and friends (Linux).
fn written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One committed entry, as openraft handles it; the time of each step.
async fn commit(
    log: &mut LogStore,
    sm: &mut StateMachineStore,
    index: u64,
    commands: Vec<Command>,
) -> Res<[Duration; 3]> {
    let entry = Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request {
            commands,
            ids: Vec::new(),
        }),
    };
    let t0 = Instant::now();
    log.blocking_append(vec![entry.clone()]).await?;
    let t1 = Instant::now();
    log.save_committed(Some(entry.log_id)).await?;
    let t2 = Instant::now();
    sm.apply(vec![entry]).await?;
    let t3 = Instant::now();
    Ok([t1 - t0, t2 - t1, t3 - t2])
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn measure(n: u64) -> Res<()> {
    let dir = tempfile::tempdir()?;
    let (mut log, mut sm) = sluice_raft::open(dir.path())?;
    let mut index = 1;
    let create = Command::CreateGroup {
        name: "g".into(),
        drain: DrainPolicy::default(),
        slow_start_ms: None,
    };
    commit(&mut log, &mut sm, index, vec![create]).await?;
    let mut filled = 0;
    while filled < n {
        let upto = (filled + FILL_BATCH).min(n);
        index += 1;
        commit(
            &mut log,
            &mut sm,
            index,
            (filled..upto).map(add_backend).collect(),
        )
        .await?;
        filled = upto;
    }

    let started = Instant::now();
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await?;
    let snapshot_ms = started.elapsed().as_secs_f64() * 1e3;
    let size = snapshot.snapshot.get_ref().len();
    log.purge(log_id(1, 1, index)).await?;

    let mut steps = Vec::with_capacity(WRITES as usize);
    let before = written();
    for i in 0..WRITES {
        index += 1;
        steps.push(commit(&mut log, &mut sm, index, vec![add_backend(n + i)]).await?);
    }
    let bytes = (written() - before) / WRITES;
    let mean = |k: usize| micros(steps.iter().map(|s| s[k]).sum::<Duration>()) / WRITES as f64;
    let mut totals: Vec<Duration> = steps.iter().map(|s| s.iter().sum()).collect();
    totals.sort();
    let p50 = micros(totals[totals.len() / 2]);
    println!(
        "{n:>7} backends: snapshot {snapshot_ms:>4.0} ms, {size:>8} B; per write: append {:>5.0} µs, \
         save_committed {:>4.0} µs, apply {:>6.0} µs, total p50 {p50:>6.0} µs, {bytes:>8} B written",
        mean(0),
        mean(1),
        mean(2),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    println!("{WRITES} writes of one backend each, mean per write (append, save_committed, apply)");
    for n in sizes {
        measure(n).await?;
    }
    Ok(())
}
