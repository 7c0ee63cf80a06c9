//! The Raft log and vote, in sled.
//!
//! What: [`LogStore`] implements openraft's `RaftLogStorage` (and
//! `RaftLogReader`, also used as the replication tasks' reader).
//!
//! How: tree `logs` maps an index (8 bytes, big-endian, so sled's key order
//! is log order) to an encoded [`Entry`]; tree `meta` holds the vote, the last
//! purged log id and the last committed log id. Every write is flushed to
//! disk (`flush_async`) before openraft is told it happened: before
//! `save_vote` and `save_committed` return, before the append callback
//! fires, and before `truncate` and `purge` return. The committed id is what
//! a restart re-applies up to (the state machine persists only snapshots),
//! and openraft saves it before it applies, so every answered write is
//! re-applied before the restarted node serves. openraft serializes the
//! calls (`&mut self`), so writes reach the disk in the order they were made.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, encode};
use crate::types::{Entry, LogId, LogState, StorageError, TypeConfig, Vote};

const LOGS_TREE: &str = "logs";
const META_TREE: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";

/// Raft log and vote storage on a sled database. Cheap to clone: clones share
/// the database.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    /// Index of the last committed entry, as last saved (0: none): read by
    /// `/metrics` without touching sled.
    committed: Arc<AtomicU64>,
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

// === impl LogStore ===

impl LogStore {
    /// Opens (creating if absent) the log trees of `db`.
    pub(crate) fn new(db: &sled::Db) -> sled::Result<Self> {
        let store = LogStore {
            db: db.clone(),
            logs: db.open_tree(LOGS_TREE)?,
            meta: db.open_tree(META_TREE)?,
            committed: Arc::default(),
        };
        let saved: Option<Option<LogId>> = store.read_meta(KEY_COMMITTED).unwrap_or_default();
        let index = saved.flatten().map_or(0, |l| l.index);
        store.committed.store(index, Ordering::Relaxed);
        Ok(store)
    }

    /// The last committed index as saved by openraft, shared: it follows
    /// every later commit.
    pub(crate) fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    async fn flush(&self) -> sled::Result<()> {
        self.db.flush_async().await.map(|_| ())
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, io::Error> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode(&bytes).map_err(io::Error::other)?)),
        }
    }

    async fn write_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), io::Error> {
        let bytes = encode(value).map_err(io::Error::other)?;
        self.meta.insert(key, bytes)?;
        self.flush().await?;
        Ok(())
    }

    fn last_purged(&self) -> Result<Option<LogId>, io::Error> {
        self.read_meta(KEY_LAST_PURGED)
    }

    /// Removes every entry in `range` in one atomic batch.
    fn remove_range(&self, range: KeyRange) -> sled::Result<usize> {
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for k in self.logs.range(range).keys() {
            batch.remove(k?);
            removed += 1;
        }
        self.logs.apply_batch(batch)?;
        Ok(removed)
    }
}

/// A range of keys of the `logs` tree.
type KeyRange = (Bound<[u8; 8]>, Bound<[u8; 8]>);

/// The sled key range for a range of indexes; `None` when it is empty.
fn key_range<RB: RangeBounds<u64>>(range: &RB) -> Option<KeyRange> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if end <= start => None,
        Some(end) => Some((Bound::Included(key(start)), Bound::Excluded(key(end)))),
        None => Some((Bound::Included(key(start)), Bound::Unbounded)),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some(keys) = key_range(&range) else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        for item in self.logs.range(keys) {
            let (_, bytes) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let entry: Entry = decode(&bytes).map_err(|e| StorageIOError::read_logs(&e))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

// === impl RaftLogStorage for LogStore ===

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        let last_purged_log_id = self
            .last_purged()
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let last_log_id = match self
            .logs
            .last()
            .map_err(|e| StorageIOError::read_logs(&e))?
        {
            Some((_, bytes)) => {
                let entry: Entry = decode(&bytes).map_err(|e| StorageIOError::read_logs(&e))?;
                Some(entry.log_id)
            }
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self
            .read_meta(KEY_VOTE)
            .map_err(|e| StorageIOError::read_vote(&e))?)
    }

    /// Flushed: openraft calls this before it applies the entries up to
    /// `committed`, and a restart re-applies only that far before the node
    /// serves (C5). One small key, so the flush costs the same at any state
    /// size.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(KEY_COMMITTED, &committed)
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        if let Some(c) = committed {
            self.committed.store(c.index, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<LogId>> = self
            .read_meta(KEY_COMMITTED)
            .map_err(|e| StorageIOError::read(&e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut last = None;
        for entry in entries {
            let bytes =
                encode(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            batch.insert(&key(entry.log_id.index), bytes);
            last = Some(entry.log_id);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        match self.flush().await {
            Ok(()) => {
                tracing::trace!(?last, "log entries appended and flushed");
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(io::Error::from(e)));
                Err(err.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let removed = self
            .remove_range((Bound::Included(key(log_id.index)), Bound::Unbounded))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        tracing::debug!(%log_id, removed, "log truncated");
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash between the two writes
        // leaves entries at or below it, which nothing reads, never a hole.
        let previous = self
            .last_purged()
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let purged = match previous {
            Some(prev) if prev >= log_id => prev,
            _ => log_id,
        };
        let bytes = encode(&purged).map_err(|e| StorageIOError::write_logs(&e))?;
        self.meta
            .insert(KEY_LAST_PURGED, bytes)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let removed = self
            .remove_range((Bound::Unbounded, Bound::Included(key(log_id.index))))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        tracing::debug!(%log_id, removed, "log purged");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::log_id;
    use openraft::RaftLogId;

    fn blank(index: u64) -> Entry {
        openraft::testing::blank_ent::<TypeConfig>(1, 0, index)
    }

    /// Writes entries straight to the trees (no callback needed).
    fn put(store: &LogStore, entries: &[Entry]) {
        for e in entries {
            store
                .logs
                .insert(key(e.get_log_id().index), encode(e).unwrap())
                .unwrap();
        }
    }

    fn stored_indexes(store: &LogStore) -> Vec<u64> {
        store
            .logs
            .iter()
            .keys()
            .map(|k| u64::from_be_bytes(k.unwrap().as_ref().try_into().unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn purge_removes_the_purged_keys_from_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _sm) = crate::open(dir.path()).unwrap();
        put(&store, &(1..=10).map(blank).collect::<Vec<_>>());

        store.purge(log_id(1, 0, 4)).await.unwrap();
        assert_eq!(stored_indexes(&store), (5..=10).collect::<Vec<_>>());

        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 0, 4)));
        assert_eq!(state.last_log_id, Some(log_id(1, 0, 10)));

        // Purging everything leaves an empty tree; the purge point is the last id.
        store.purge(log_id(1, 0, 10)).await.unwrap();
        assert!(stored_indexes(&store).is_empty());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(1, 0, 10)));
    }

    #[tokio::test]
    async fn truncate_removes_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _sm) = crate::open(dir.path()).unwrap();
        put(&store, &(1..=10).map(blank).collect::<Vec<_>>());
        store.truncate(log_id(1, 0, 7)).await.unwrap();
        assert_eq!(stored_indexes(&store), (1..=6).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn vote_and_log_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, _sm) = crate::open(dir.path()).unwrap();
            put(&store, &(1..=3).map(blank).collect::<Vec<_>>());
            store.save_committed(Some(log_id(1, 0, 2))).await.unwrap();
            assert_eq!(store.committed_index().load(Ordering::Relaxed), 2);
            store.save_vote(&Vote::new(5, 2)).await.unwrap();
        }
        let (mut store, _sm) = crate::open(dir.path()).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(5, 2)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 0, 2)));
        // The index `/metrics` reads starts from the saved one.
        assert_eq!(store.committed_index().load(Ordering::Relaxed), 2);
        let entries = store.try_get_log_entries(2..).await.unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].log_id, log_id(1, 0, 3));
    }

    #[test]
    fn key_ranges() {
        assert_eq!(key_range(&(3..3)), None);
        assert_eq!(key_range(&(Bound::Included(4), Bound::Excluded(3))), None);
        assert!(key_range(&(0..=u64::MAX)).is_some());
        assert_eq!(
            key_range(&(2..=5)),
            Some((Bound::Included(key(2)), Bound::Excluded(key(6))))
        );
    }
}
