//! The command store of a one-node cluster: commands are applied in order
//! by the pure model, the new state is written to the data dir (atomic
//! rename after fsync) and handed to the data plane before the write is
//! acknowledged. A restarted node loads it before its listeners accept
//! traffic (C5). Replication replaces the ordering, not this shape.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sluice_model::{Applied, Command, ModelError, NodeId, State};
use sluice_proxy::DataPlane;
use thiserror::Error;
use tokio::sync::Mutex;

/// Why a command was not applied.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The model refused the command (bad value, unknown name, ...).
    #[error(transparent)]
    Rejected(#[from] ModelError),
    /// The state could not be written; nothing was acknowledged.
    #[error("cannot persist state to {path}: {source}")]
    Persist {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The state file exists but cannot be read.
    #[error("cannot load state from {path}: {reason}")]
    Load {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The data plane did not take the new state.
    #[error("data plane did not apply the state: {0}")]
    DataPlane(#[from] sluice_proxy::ProxyError),
}

/// Orders, applies and persists commands.
pub struct CommandStore {
    path: PathBuf,
    write: Mutex<()>,
    current: RwLock<Arc<State>>,
    data_plane: Arc<DataPlane>,
}

impl CommandStore {
    /// Loads `data_dir/state.json` (or starts empty with `node` as the only
    /// member) and hands the state to the data plane.
    pub async fn open(
        data_dir: &Path,
        node: NodeId,
        data_plane: Arc<DataPlane>,
    ) -> Result<CommandStore, StoreError> {
        let path = data_dir.join("state.json");
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<State>(&bytes).map_err(|e| StoreError::Load {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                return Err(StoreError::Load {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        if state.nodes.is_empty() {
            state.apply(&Command::SetNodes { nodes: vec![node] })?;
        }
        let state = Arc::new(state);
        data_plane.apply(state.clone()).await?;
        Ok(CommandStore {
            path,
            write: Mutex::new(()),
            current: RwLock::new(state),
            data_plane,
        })
    }

    /// The last applied state.
    pub fn current(&self) -> Arc<State> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The data plane this store feeds.
    pub fn data_plane(&self) -> &Arc<DataPlane> {
        &self.data_plane
    }

    /// Applies one command; returns once it is durable and routed by.
    pub async fn submit(&self, command: Command) -> Result<(Applied, Arc<State>), StoreError> {
        let _order = self.write.lock().await;
        let mut next = (*self.current()).clone();
        let applied = next.apply(&command)?;
        self.persist(&next)?;
        let next = Arc::new(next);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        self.data_plane.apply(next.clone()).await?;
        Ok((applied, next))
    }

    fn persist(&self, state: &State) -> Result<(), StoreError> {
        let err = |source| StoreError::Persist {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(state).expect("state serializes");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(&bytes).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}
