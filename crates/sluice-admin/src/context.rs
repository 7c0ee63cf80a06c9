//! [`AdminContext`]: what every handler of the admin API shares.

use std::sync::Arc;

use axum::extract::State as AxState;
use sluice_model::NodeId;

use crate::{ApiError, CommandStore};

/// What the handlers share.
pub struct AdminContext {
    /// This node's id.
    pub node_id: NodeId,
    /// The bearer token writes need.
    pub token: String,
    /// The command store (and through it the data plane).
    pub store: Arc<CommandStore>,
}

/// The shared context, as a handler takes it.
pub(crate) type Ctx = AxState<Arc<AdminContext>>;

/// A handler's answer or its JSON error.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
