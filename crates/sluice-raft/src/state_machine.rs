//! The replicated state machine: sluice's model state, applied from the Raft
//! log, held in memory and persisted as snapshots in sled.
//!
//! What: [`StateMachineStore`] implements openraft's `RaftStateMachine` and
//! `RaftSnapshotBuilder`. It is a cheap-clone handle: openraft owns one clone,
//! the rest of the node keeps another to read the state ([`current`]) and to
//! hear of every change ([`subscribe`]).
//!
//! How: `apply` runs each normal entry's commands through the pure
//! `State::apply`; a refused command still counts as applied (its outcome is
//! `Outcome::Rejected`). A membership entry is stored and also sets the
//! model's node set to the voters (`Command::SetNodes`), so "every member
//! finished its drain" follows Raft membership on every node alike. After
//! each batch the state is published on the watch channels; `apply` writes
//! nothing, so its cost does not grow with the state. What is on disk: the
//! log and the committed log id (the log store flushes both before openraft
//! applies an entry) and the current snapshot (image and applied-ids table,
//! tree `sm`), built every `snapshot_every` entries in a task of its own. A
//! restarted node loads the snapshot here, then `Raft::new` applies the
//! committed entries after it again: the node has its state before it serves
//! (C5).
//!
//! Exactly once: a command that carries a [`RequestId`] is applied only if
//! that id is not among the last [`DEDUP_WINDOW`] ids applied; a repeat (a
//! write re-sent after a leader change) answers the outcome stored with the
//! id. The table changes only by applying entries, so it is the same on every
//! node; it travels in snapshots, and the replay after a restart rebuilds it
//! along with the state.
//!
//! Older data dirs: a version that wrote the whole image after every apply
//! left an `image` key and one `id/` key per request id. They are loaded
//! unless a newer snapshot exists, and dropped by the first snapshot written.
//!
//! [`current`]: StateMachineStore::current
//! [`subscribe`]: StateMachineStore::subscribe

use std::collections::{HashMap, VecDeque};
use std::io::{self, Cursor};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use sluice_model::{Command, State};
use tokio::sync::watch;

use crate::codec::{decode, encode, CodecError};
use crate::legacy_outcome::{decode_row, LegacyOutcome};
use crate::types::{
    Entry, LogId, Outcome, RequestId, Response, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig,
};

/// How many of the most recently applied request ids the state machine
/// remembers, with their outcomes. A re-sent write comes within seconds of
/// the first; this covers well over a minute of sustained writes.
pub const DEDUP_WINDOW: usize = 4096;

const SM_TREE: &str = "sm";
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";
/// The whole image, as older versions wrote it after every apply.
const LEGACY_KEY_IMAGE: &[u8] = b"image";
/// Prefix of the keys of older versions' applied-ids table (`id/` +
/// big-endian number, in the order applied).
const LEGACY_ID_PREFIX: &[u8] = b"id/";

/// The state machine's image, as a snapshot's bytes carry it.
#[derive(Serialize)]
struct ImageRef<'a> {
    last_applied: &'a Option<LogId>,
    last_membership: &'a StoredMembership,
    #[serde(with = "crate::codec::as_json")]
    state: &'a State,
}

/// The owned form of [`ImageRef`], for decoding.
#[derive(Deserialize)]
struct Image {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    #[serde(with = "crate::codec::as_json")]
    state: State,
}

/// A snapshot's bytes: the image and the applied-ids table, oldest first.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    image: ImageRef<'a>,
    applied_ids: &'a [(RequestId, Outcome)],
}

/// The owned form of [`SnapshotRef`].
#[derive(Deserialize)]
struct SnapshotImage {
    image: Image,
    applied_ids: Vec<(RequestId, Outcome)>,
}

/// A snapshot made before refusals were typed (see [`LegacyOutcome`]).
#[derive(Deserialize)]
struct LegacySnapshotImage {
    image: Image,
    applied_ids: Vec<(RequestId, LegacyOutcome)>,
}

// === impl SnapshotImage ===

impl SnapshotImage {
    /// Decodes a snapshot; one made before refusals were typed keeps the
    /// rows it can (see [`LegacyOutcome`]), one made before snapshots
    /// carried the table is the bare image.
    fn decode(bytes: &[u8]) -> Result<SnapshotImage, CodecError> {
        decode::<SnapshotImage>(bytes).or_else(|e| {
            if let Ok(old) = decode::<LegacySnapshotImage>(bytes) {
                let applied_ids = old
                    .applied_ids
                    .into_iter()
                    .filter_map(|(id, outcome)| Some((id, outcome.upgrade()?)))
                    .collect();
                return Ok(SnapshotImage {
                    image: old.image,
                    applied_ids,
                });
            }
            match decode::<Image>(bytes) {
                Ok(image) => Ok(SnapshotImage {
                    image,
                    applied_ids: Vec::new(),
                }),
                Err(_) => Err(e),
            }
        })
    }
}

/// The recently applied request ids and their outcomes.
#[derive(Debug, Clone, Default)]
struct Dedup {
    /// The ids, oldest first.
    order: VecDeque<RequestId>,
    outcomes: HashMap<RequestId, Outcome>,
}

// === impl Dedup ===

impl Dedup {
    fn get(&self, id: &RequestId) -> Option<&Outcome> {
        self.outcomes.get(id)
    }

    /// Remembers that `id` was applied with `outcome`, forgetting the oldest
    /// beyond [`DEDUP_WINDOW`].
    fn record(&mut self, id: RequestId, outcome: Outcome) {
        self.order.push_back(id);
        self.outcomes.insert(id, outcome);
        while self.order.len() > DEDUP_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }

    /// The entries, oldest first.
    fn entries(&self) -> Vec<(RequestId, Outcome)> {
        self.order
            .iter()
            .filter_map(|id| self.outcomes.get(id).map(|o| (*id, o.clone())))
            .collect()
    }

    /// A table holding `entries` (oldest first).
    fn from_entries(entries: impl IntoIterator<Item = (RequestId, Outcome)>) -> Dedup {
        let mut dedup = Dedup::default();
        for (id, outcome) in entries {
            if dedup.get(&id).is_none() {
                dedup.record(id, outcome);
            }
        }
        dedup
    }

    /// Reads the table an older version stored key by key in `tree`; an
    /// old refusal, whose outcome is unknown, is left out.
    fn load_legacy(tree: &sled::Tree) -> Result<Dedup, LoadError> {
        let mut rows = Vec::new();
        for item in tree.scan_prefix(LEGACY_ID_PREFIX) {
            let (_, value) = item?;
            if let (id, Some(outcome)) = decode_row(&value)? {
                rows.push((id, outcome));
            }
        }
        Ok(Dedup::from_entries(rows))
    }
}

/// What the lock guards. `state` is shared (copy-on-write) with readers.
#[derive(Debug, Clone, Default)]
struct Data {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    state: Arc<State>,
    dedup: Dedup,
}

// === impl Data ===

impl Data {
    fn encode_snapshot(&self) -> Result<Vec<u8>, CodecError> {
        encode(&SnapshotRef {
            image: ImageRef {
                last_applied: &self.last_applied,
                last_membership: &self.last_membership,
                state: &self.state,
            },
            applied_ids: &self.dedup.entries(),
        })
    }

    /// The data a snapshot holds.
    fn from_snapshot(snapshot: SnapshotImage) -> Data {
        let SnapshotImage { image, applied_ids } = snapshot;
        Data {
            last_applied: image.last_applied,
            last_membership: image.last_membership,
            state: Arc::new(image.state),
            dedup: Dedup::from_entries(applied_ids),
        }
    }

    /// What `tree` holds: the current snapshot, or an older version's image
    /// and table when they are newer (or there is no snapshot); empty data in
    /// a new store.
    fn load(tree: &sled::Tree) -> Result<Data, LoadError> {
        let snapshot_at = match tree.get(KEY_SNAPSHOT_META)? {
            Some(meta) => Some(decode::<SnapshotMeta>(&meta)?.last_log_id),
            None => None,
        };
        if let Some(bytes) = tree.get(LEGACY_KEY_IMAGE)? {
            let image: Image = decode(&bytes)?;
            if snapshot_at.is_none_or(|at| at <= image.last_applied) {
                tracing::info!(last_applied = ?image.last_applied, "state machine loaded from an older version's image");
                return Ok(Data {
                    last_applied: image.last_applied,
                    last_membership: image.last_membership,
                    state: Arc::new(image.state),
                    dedup: Dedup::load_legacy(tree)?,
                });
            }
        }
        match tree.get(KEY_SNAPSHOT_DATA)? {
            Some(bytes) if snapshot_at.is_some() => {
                Ok(Data::from_snapshot(SnapshotImage::decode(&bytes)?))
            }
            _ => Ok(Data::default()),
        }
    }
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    data: Mutex<Data>,
    /// Serializes replacing the current snapshot: openraft builds snapshots
    /// in a task of their own, concurrently with `install_snapshot`.
    snapshot_write: Mutex<()>,
    published: watch::Sender<Arc<State>>,
    /// The same states with the index of the log entry they end at.
    indexed: watch::Sender<(u64, Arc<State>)>,
}

/// sluice's Raft state machine on sled; a cheap-clone handle.
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    inner: Arc<Inner>,
}

/// Loading the persisted state machine failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// sled could not be read.
    #[error(transparent)]
    Sled(#[from] sled::Error),
    /// The stored snapshot or image is not readable.
    #[error("stored state machine image: {0}")]
    Codec(#[from] CodecError),
}

/// The state machine's lock was poisoned by a panic during an earlier apply.
#[derive(Debug, thiserror::Error)]
#[error("state machine lock poisoned by an earlier panic")]
struct Poisoned;

fn sm_write(e: impl std::error::Error + 'static) -> StorageIOError<u64> {
    StorageIOError::write_state_machine(&e)
}

fn sm_read(e: impl std::error::Error + 'static) -> StorageIOError<u64> {
    StorageIOError::read_state_machine(&e)
}

/// A batch that stores `meta` + `bytes` as the current snapshot and drops
/// an older version's image and table from `tree`: from now on the
/// snapshot is newer.
fn snapshot_batch(
    tree: &sled::Tree,
    meta: &SnapshotMeta,
    bytes: &[u8],
) -> Result<sled::Batch, io::Error> {
    let mut batch = sled::Batch::default();
    batch.insert(KEY_SNAPSHOT_META, encode(meta).map_err(io::Error::other)?);
    batch.insert(KEY_SNAPSHOT_DATA, bytes);
    batch.remove(LEGACY_KEY_IMAGE);
    for key in tree.scan_prefix(LEGACY_ID_PREFIX).keys() {
        batch.remove(key?);
    }
    Ok(batch)
}

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

// === impl StateMachineStore ===

impl StateMachineStore {
    /// Opens the `sm` tree of `db` and loads the current snapshot (or an
    /// older version's image), if any.
    pub(crate) fn load(db: &sled::Db) -> Result<Self, LoadError> {
        let tree = db.open_tree(SM_TREE)?;
        let data = Data::load(&tree)?;
        tracing::debug!(last_applied = ?data.last_applied, "state machine loaded");
        let (published, _) = watch::channel(data.state.clone());
        let (indexed, _) = watch::channel((
            data.last_applied.map(|l| l.index).unwrap_or(0),
            data.state.clone(),
        ));
        Ok(StateMachineStore {
            inner: Arc::new(Inner {
                db: db.clone(),
                tree,
                data: Mutex::new(data),
                snapshot_write: Mutex::new(()),
                published,
                indexed,
            }),
        })
    }

    /// A receiver that sees every state this store applies. Its current
    /// value is the state at subscription.
    pub fn subscribe(&self) -> watch::Receiver<Arc<State>> {
        self.inner.published.subscribe()
    }

    /// Like [`subscribe`](Self::subscribe), each state paired with the index
    /// of the last log entry it includes (0 before any).
    pub fn subscribe_indexed(&self) -> watch::Receiver<(u64, Arc<State>)> {
        self.inner.indexed.subscribe()
    }

    /// The last applied state.
    pub fn current(&self) -> Arc<State> {
        self.inner.published.borrow().clone()
    }

    /// Id of the last applied log entry.
    pub fn last_applied(&self) -> Option<LogId> {
        self.lock().ok().and_then(|d| d.last_applied)
    }

    /// The data; fails only if an earlier apply panicked half-way.
    fn lock(&self) -> Result<MutexGuard<'_, Data>, Poisoned> {
        self.inner.data.lock().map_err(|_| Poisoned)
    }

    async fn flush(&self) -> sled::Result<()> {
        self.inner.db.flush_async().await.map(|_| ())
    }

    fn read_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, io::Error> {
        let tree = &self.inner.tree;
        let Some(meta) = tree.get(KEY_SNAPSHOT_META)? else {
            return Ok(None);
        };
        let meta: SnapshotMeta = decode(&meta).map_err(io::Error::other)?;
        let data = tree
            .get(KEY_SNAPSHOT_DATA)?
            .map(|d| d.to_vec())
            .unwrap_or_default();
        Ok(Some((meta, data)))
    }

    /// Replaces the current snapshot with `meta` + `bytes` — unless
    /// `keep_newer` and the stored snapshot is newer (a build that finished
    /// after an install). Returns whether it wrote. The caller flushes.
    fn replace_snapshot(
        &self,
        meta: &SnapshotMeta,
        bytes: &[u8],
        keep_newer: bool,
    ) -> io::Result<bool> {
        let _serial = self
            .inner
            .snapshot_write
            .lock()
            .map_err(|_| io::Error::other(Poisoned))?;
        if keep_newer {
            if let Some((stored, _)) = self.read_snapshot()? {
                if stored.last_log_id > meta.last_log_id {
                    return Ok(false);
                }
            }
        }
        let batch = snapshot_batch(&self.inner.tree, meta, bytes)?;
        self.inner.tree.apply_batch(batch)?;
        Ok(true)
    }

    /// Publishes `state`, which ends at log index `index`.
    fn publish(&self, index: u64, state: Arc<State>) {
        self.inner.indexed.send_replace((index, state.clone()));
        self.inner.published.send_replace(state);
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // A consistent copy under the lock (the state is an `Arc`), the
        // encoding outside it.
        let data = self.lock().map_err(sm_read)?.clone();
        let started = Instant::now();
        let bytes = data
            .encode_snapshot()
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let unique = self
            .inner
            .db
            .generate_id()
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let snapshot_id = match &data.last_applied {
            Some(id) => format!("{}-{}-{unique}", id.leader_id.term, id.index),
            None => format!("0-0-{unique}"),
        };
        let meta = SnapshotMeta {
            last_log_id: data.last_applied,
            last_membership: data.last_membership,
            snapshot_id,
        };
        let stored = self
            .replace_snapshot(&meta, &bytes, true)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        if !stored {
            tracing::debug!(%meta, "a newer snapshot was installed meanwhile; keeping it");
        }
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        tracing::info!(
            index,
            size = bytes.len(),
            took_ms = millis(started),
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

// === impl RaftStateMachine for StateMachineStore ===

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let data = self.lock().map_err(sm_read)?;
        Ok((data.last_applied, data.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut entries = entries.into_iter().peekable();
        if entries.peek().is_none() {
            return Ok(Vec::new());
        }
        let mut responses = Vec::with_capacity(entries.size_hint().0);
        let (last_applied, state) = {
            let mut guard = self.lock().map_err(sm_write)?;
            let Data {
                last_applied,
                last_membership,
                state,
                dedup,
            } = &mut *guard;
            // Copy-on-write: readers keep the state they hold.
            let state = Arc::make_mut(state);
            for entry in entries {
                *last_applied = Some(entry.log_id);
                let outcomes = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(request) => request
                        .commands
                        .iter()
                        .enumerate()
                        .map(|(i, command)| match request.id(i) {
                            None => Outcome::of(state, command),
                            Some(id) => match dedup.get(&id) {
                                Some(first) => {
                                    tracing::debug!(%id, "a repeated request: answering its first outcome");
                                    first.clone()
                                }
                                None => {
                                    let outcome: Outcome = Outcome::of(state, command);
                                    dedup.record(id, outcome.clone());
                                    outcome
                                }
                            },
                        })
                        .collect(),
                    EntryPayload::Membership(membership) => {
                        let nodes = membership.voter_ids().collect();
                        *last_membership = StoredMembership::new(Some(entry.log_id), membership);
                        vec![Outcome::of(state, &Command::SetNodes { nodes })]
                    }
                };
                responses.push(Response { outcomes });
            }
            (guard.last_applied, guard.state.clone())
        };
        tracing::trace!(?last_applied, n = responses.len(), "applied");
        self.publish(last_applied.map(|l| l.index).unwrap_or(0), state);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        let bytes = snapshot.into_inner();
        let bad = |e: &(dyn std::error::Error + 'static)| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::from_dyn(e, None))
        };
        let image = SnapshotImage::decode(&bytes).map_err(|e| bad(&e))?;
        if image.image.last_applied != meta.last_log_id {
            let e = std::io::Error::other(format!(
                "snapshot bytes are at {:?}, its meta says {:?}",
                image.image.last_applied, meta.last_log_id
            ));
            return Err(bad(&e).into());
        }
        let data = Data {
            last_membership: meta.last_membership.clone(),
            ..Data::from_snapshot(image)
        };
        // An installed snapshot is the state now: it is always the current one.
        self.replace_snapshot(meta, &bytes, false)
            .map_err(sm_write)?;
        self.flush().await.map_err(sm_write)?;
        let state = data.state.clone();
        let index = data.last_applied.map(|l| l.index).unwrap_or(0);
        *self.lock().map_err(sm_write)? = data;
        self.publish(index, state);
        tracing::info!(
            index,
            size = bytes.len(),
            took_ms = millis(started),
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let current = self
            .read_snapshot()
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(current.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::log_id;
    use sluice_model::{Applied, DrainId, DrainPolicy};

    fn meta(index: u64, id: &str) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(log_id(1, 0, index)),
            last_membership: StoredMembership::default(),
            snapshot_id: id.into(),
        }
    }

    fn id(seq: u64) -> RequestId {
        RequestId {
            node: 1,
            boot: 7,
            seq,
        }
    }

    /// A key of an older version's applied-ids table.
    fn legacy_id_key(n: u64) -> Vec<u8> {
        [LEGACY_ID_PREFIX, &n.to_be_bytes()].concat()
    }

    /// A state with one group, as an older version stored it at `index`:
    /// the image and a table of one applied id (and one old refusal).
    fn write_legacy_dir(tree: &sled::Tree, index: u64) -> State {
        let mut state = State::default();
        state
            .apply(&Command::CreateGroup {
                name: "web".into(),
                drain: DrainPolicy::default(),
                slow_start_ms: None,
            })
            .unwrap();
        let image = ImageRef {
            last_applied: &Some(log_id(1, 0, index)),
            last_membership: &StoredMembership::default(),
            state: &state,
        };
        tree.insert(LEGACY_KEY_IMAGE, encode(&image).unwrap())
            .unwrap();
        let applied = LegacyOutcome::Applied {
            applied: Applied::DrainCompleted { drain: DrainId(2) },
            excerpt: None,
        };
        let refused = LegacyOutcome::Rejected {
            code: "drain_not_found".into(),
            message: "drain d2 does not exist".into(),
            field: Some("drain".into()),
        };
        tree.insert(legacy_id_key(0), encode(&(id(0), applied)).unwrap())
            .unwrap();
        tree.insert(legacy_id_key(1), encode(&(id(1), refused)).unwrap())
            .unwrap();
        state
    }

    #[tokio::test]
    async fn a_late_build_does_not_replace_a_newer_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, sm) = crate::open(dir.path()).unwrap();
        let newer = meta(9, "installed");
        assert!(sm.replace_snapshot(&newer, b"new", false).unwrap());

        let older = meta(5, "built-late");
        assert!(!sm.replace_snapshot(&older, b"old", true).unwrap());
        let (stored, bytes) = sm.read_snapshot().unwrap().unwrap();
        assert_eq!((stored, bytes), (newer, b"new".to_vec()));
    }

    #[tokio::test]
    async fn an_empty_batch_changes_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut sm) = crate::open(dir.path()).unwrap();
        let rx = sm.subscribe();
        assert!(sm.apply(Vec::<Entry>::new()).await.unwrap().is_empty());
        assert!(!rx.has_changed().unwrap());
        assert_eq!(sm.last_applied(), None);
    }

    #[tokio::test]
    async fn apply_writes_nothing_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut sm) = crate::open(dir.path()).unwrap();
        let entry = Entry {
            log_id: log_id(1, 0, 1),
            payload: EntryPayload::Normal(crate::Request {
                commands: vec![Command::CreateGroup {
                    name: "web".into(),
                    drain: DrainPolicy::default(),
                    slow_start_ms: None,
                }],
                ids: vec![id(3)],
            }),
        };
        sm.apply(vec![entry]).await.unwrap();
        assert!(sm.current().groups.contains_key("web"));
        assert!(sm.inner.tree.is_empty(), "nothing stored per apply");
    }

    #[test]
    fn an_older_versions_image_and_table_load() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree(SM_TREE).unwrap();
        let state = write_legacy_dir(&tree, 4);

        let sm = StateMachineStore::load(&db).unwrap();
        assert_eq!(*sm.current(), state);
        assert_eq!(sm.last_applied(), Some(log_id(1, 0, 4)));
        let data = sm.lock().unwrap();
        assert!(data.dedup.get(&id(0)).is_some_and(Outcome::is_applied));
        assert!(
            data.dedup.get(&id(1)).is_none(),
            "an old refusal is forgotten"
        );
        assert_eq!(data.dedup.entries().len(), 1);
    }

    #[tokio::test]
    async fn the_first_snapshot_drops_an_older_versions_image_and_table() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let tree = db.open_tree(SM_TREE).unwrap();
            // An older snapshot than the image: the image is loaded.
            let bytes = encode(&SnapshotRef {
                image: ImageRef {
                    last_applied: &Some(log_id(1, 0, 2)),
                    last_membership: &StoredMembership::default(),
                    state: &State::default(),
                },
                applied_ids: &[],
            })
            .unwrap();
            tree.insert(KEY_SNAPSHOT_META, encode(&meta(2, "old")).unwrap())
                .unwrap();
            tree.insert(KEY_SNAPSHOT_DATA, bytes).unwrap();
            write_legacy_dir(&tree, 4);
            db.flush().unwrap();
        }
        let (_log, mut sm) = crate::open(dir.path()).unwrap();
        assert!(
            sm.current().groups.contains_key("web"),
            "the image is newer"
        );
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let tree = &sm.inner.tree;
        assert!(tree.get(LEGACY_KEY_IMAGE).unwrap().is_none());
        assert_eq!(tree.scan_prefix(LEGACY_ID_PREFIX).count(), 0);
        drop((_log, sm));

        // The snapshot carries what the image and table held.
        let (_log, sm) = crate::open(dir.path()).unwrap();
        assert!(sm.current().groups.contains_key("web"));
        assert_eq!(sm.last_applied(), Some(log_id(1, 0, 4)));
        assert!(sm.lock().unwrap().dedup.get(&id(0)).is_some());
    }
}
