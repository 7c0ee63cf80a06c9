//! Opening a node's Raft storage: one sled database for the log and the
//! state machine.
//!
//! Why one database: one directory per node, one lock, and one
//! `flush_async` makes every earlier write of either store durable.
//! sled's periodic background flush is switched off: every write path in
//! this crate flushes explicitly before it reports success.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::log_store::LogStore;
use crate::state_machine::{LoadError, StateMachineStore};

/// sled's page cache size.
const CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

/// The Raft storage of `dir` could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// sled could not open or read the database.
    #[error("cannot open Raft storage at {}: {source}", path.display())]
    Sled {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: sled::Error,
    },
    /// The persisted state machine could not be loaded.
    #[error("cannot load the state machine stored at {}: {source}", path.display())]
    Load {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: LoadError,
    },
}

/// Opens (creating if absent) the sled database at `dir` and returns the log
/// store and the state machine, the latter loaded with its persisted state.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), OpenError> {
    let sled_err = |source| OpenError::Sled {
        path: dir.to_path_buf(),
        source,
    };
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_CAPACITY)
        .flush_every_ms(None)
        .open()
        .map_err(sled_err)?;
    let log = LogStore::new(&db).map_err(sled_err)?;
    let sm = StateMachineStore::load(&db).map_err(|source| OpenError::Load {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok((log, sm))
}
