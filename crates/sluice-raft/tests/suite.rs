//! openraft's own storage test suite against the sled stores.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use openraft::testing::{StoreBuilder, Suite};
use sluice_raft::{LogStore, StateMachineStore, StorageError, TypeConfig};
use tempfile::TempDir;

/// Opens both stores on a fresh temporary directory; the directory is the
/// guard the suite drops after each test.
struct TempStore;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempStore {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = sluice_raft::open(dir.path()).expect("open store");
        Ok((dir, log, sm))
    }
}

/// Runs every test of the suite; each one gets a fresh store and its own
/// tokio runtime (the suite makes them), so this is a plain `#[test]`.
#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(TempStore) {
        panic!("storage suite failed: {e}");
    }
}
