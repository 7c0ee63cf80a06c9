//! Why a command was refused.

use thiserror::Error;

use crate::DrainId;

/// A command the model refuses. Each variant carries what an operator needs
/// to fix the call: the field, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// A number outside its allowed range.
    #[error("{field} = {value} is out of range {range}")]
    OutOfRange {
        /// The field at fault.
        field: &'static str,
        /// The value given.
        value: String,
        /// The allowed range.
        range: &'static str,
    },
    /// A value of the wrong form.
    #[error("{field} = {value:?} is invalid: expected {expected}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// No group of that name.
    #[error("group {group:?} does not exist")]
    GroupNotFound {
        /// The name asked for.
        group: String,
    },
    /// A group of that name exists already.
    #[error("group {group:?} already exists")]
    GroupExists {
        /// The name asked for.
        group: String,
    },
    /// The group has no such backend.
    #[error("group {group:?} has no backend {backend}")]
    BackendNotFound {
        /// The group.
        group: String,
        /// The backend asked for.
        backend: String,
    },
    /// A listener on that port exists already.
    #[error("a listener on port {port} already exists")]
    ListenerExists {
        /// The port.
        port: u16,
    },
    /// A node reported a drain the state does not know.
    #[error("drain {drain} does not exist")]
    DrainNotFound {
        /// The drain.
        drain: DrainId,
    },
}

impl ModelError {
    /// A stable, machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::OutOfRange { .. } => "out_of_range",
            ModelError::Invalid { .. } => "invalid_value",
            ModelError::GroupNotFound { .. } => "group_not_found",
            ModelError::GroupExists { .. } => "group_exists",
            ModelError::BackendNotFound { .. } => "backend_not_found",
            ModelError::ListenerExists { .. } => "listener_exists",
            ModelError::DrainNotFound { .. } => "drain_not_found",
        }
    }

    /// The request field at fault, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ModelError::OutOfRange { field, .. } | ModelError::Invalid { field, .. } => Some(field),
            ModelError::GroupNotFound { .. } | ModelError::GroupExists { .. } => Some("group"),
            ModelError::BackendNotFound { .. } => Some("backend"),
            ModelError::ListenerExists { .. } => Some("port"),
            ModelError::DrainNotFound { .. } => Some("drain"),
        }
    }

    /// Whether the error means "no such thing" (HTTP 404) rather than a
    /// bad value (400) or a conflict (409).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ModelError::GroupNotFound { .. }
                | ModelError::BackendNotFound { .. }
                | ModelError::DrainNotFound { .. }
        )
    }

    /// Whether the error is a conflict with existing state (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ModelError::GroupExists { .. } | ModelError::ListenerExists { .. }
        )
    }
}
