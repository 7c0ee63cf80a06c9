//! API errors as JSON: a stable code, a message and the field at fault.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sluice_model::ModelError;
use sluice_raft::ClusterError;

use crate::api::{ErrorBody, ErrorDetail};
use crate::StoreError;

/// An error answer of the admin API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: String,
    /// One readable sentence.
    pub message: String,
    /// Field at fault.
    pub field: Option<String>,
}

impl ApiError {
    /// A 400 for a field of the request.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_value".into(),
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    /// A 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized".into(),
            message: message.into(),
            field: None,
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        let status = if e.is_not_found() {
            StatusCode::NOT_FOUND
        } else if e.is_conflict() {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError {
            status,
            code: e.code().into(),
            message: e.to_string(),
            field: e.field().map(String::from),
        }
    }
}

/// A chain or key that cannot be served: 400 naming `cert` or `key`.
impl From<sluice_tls::CertError> for ApiError {
    fn from(e: sluice_tls::CertError) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: e.code().into(),
            message: e.to_string(),
            field: Some(e.field().into()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(e) => e.into(),
            StoreError::Cluster(e) => e.into(),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        let (status, code) = match &e {
            ClusterError::NoLeader { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_leader"),
            ClusterError::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "node_unreachable"),
            ClusterError::NotInitialized => (StatusCode::CONFLICT, "not_initialized"),
            ClusterError::AlreadyInitialized => (StatusCode::CONFLICT, "already_initialized"),
            ClusterError::CommitTimeout { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "commit_timeout")
            }
            ClusterError::NodeNotFound { .. } => (StatusCode::NOT_FOUND, "node_not_found"),
            ClusterError::Open(_)
            | ClusterError::Raft(_)
            | ClusterError::ShuttingDown
            | ClusterError::BadAnswer { .. }
            | ClusterError::Encode { .. }
            | ClusterError::Mismatch { .. } => (StatusCode::SERVICE_UNAVAILABLE, "raft_error"),
        };
        ApiError {
            status,
            code: code.into(),
            message: e.to_string(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
