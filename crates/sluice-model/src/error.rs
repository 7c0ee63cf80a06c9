//! Why a command was refused: [`ModelError`], typed and serializable, so a
//! refusal crosses the log and the wire as itself and callers match on its
//! variants.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{DrainId, NodeId};

/// A command the model refuses. Each variant carries what an operator needs
/// to fix the call: the field, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ModelError {
    /// A number outside its allowed range.
    #[error("{field} = {value} is out of range {range}")]
    OutOfRange {
        /// The field at fault.
        field: Cow<'static, str>,
        /// The value given.
        value: String,
        /// The allowed range.
        range: Cow<'static, str>,
    },
    /// A value of the wrong form.
    #[error("{field} = {value:?} is invalid: expected {expected}")]
    Invalid {
        /// The field at fault.
        field: Cow<'static, str>,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: Cow<'static, str>,
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
    /// No listener on that port.
    #[error("no listener on port {port}")]
    ListenerNotFound {
        /// The port.
        port: u16,
    },
    /// The group is still used; delete with `force` to drain what uses it.
    #[error("group {group:?} is in use by {}: remove them first, or delete with force to drain them", in_use(*backends, listeners))]
    GroupInUse {
        /// The group.
        group: String,
        /// How many backends it has (active or draining).
        backends: usize,
        /// Ports of the listeners that forward to it.
        listeners: Vec<u16>,
    },
    /// The group is being deleted: it takes no new backend or listener.
    #[error("group {group:?} is being deleted (its backends are draining)")]
    GroupDeleting {
        /// The group.
        group: String,
    },
    /// The backend is draining: only re-adding it (R5) or its removal applies.
    #[error(
        "backend {backend} of group {group:?} is draining: add it again to keep it after the drain"
    )]
    BackendDraining {
        /// The group.
        group: String,
        /// The backend.
        backend: String,
    },
    /// An update that names nothing to change.
    #[error("nothing to update: give at least one of {fields}")]
    NothingToUpdate {
        /// What could have been given.
        fields: Cow<'static, str>,
    },
    /// No member node with that id.
    #[error("node {node} is not a member of the cluster")]
    NodeNotFound {
        /// The id asked for.
        node: NodeId,
    },
    /// The node does not drain.
    #[error("node {node} is not draining")]
    NodeNotDraining {
        /// The node.
        node: NodeId,
    },
    /// No certificate of that name.
    #[error("certificate {cert:?} does not exist")]
    CertNotFound {
        /// The name asked for.
        cert: String,
    },
    /// Listeners still terminate TLS with the certificate.
    #[error(
        "certificate {cert:?} is used by the listeners on ports {}: change or remove them first",
        ports(listeners)
    )]
    CertInUse {
        /// The certificate.
        cert: String,
        /// Ports of the listeners that use it.
        listeners: Vec<u16>,
    },
    /// A node reported a drain the state does not know.
    #[error("drain {drain} does not exist")]
    DrainNotFound {
        /// The drain.
        drain: DrainId,
    },
}

/// "80, 443".
fn ports(listeners: &[u16]) -> String {
    let ports: Vec<String> = listeners.iter().map(u16::to_string).collect();
    ports.join(", ")
}

/// "2 backends and the listener on port 80", for [`ModelError::GroupInUse`].
fn in_use(backends: usize, listeners: &[u16]) -> String {
    let mut parts = Vec::new();
    match backends {
        0 => {}
        1 => parts.push("1 backend".to_string()),
        n => parts.push(format!("{n} backends")),
    }
    match listeners {
        [] => {}
        [port] => parts.push(format!("the listener on port {port}")),
        ports => {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            parts.push(format!("the listeners on ports {}", ports.join(", ")));
        }
    }
    parts.join(" and ")
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
            ModelError::ListenerNotFound { .. } => "listener_not_found",
            ModelError::GroupInUse { .. } => "group_in_use",
            ModelError::GroupDeleting { .. } => "group_deleting",
            ModelError::BackendDraining { .. } => "backend_draining",
            ModelError::NothingToUpdate { .. } => "nothing_to_update",
            ModelError::NodeNotFound { .. } => "node_not_found",
            ModelError::NodeNotDraining { .. } => "node_not_draining",
            ModelError::CertNotFound { .. } => "cert_not_found",
            ModelError::CertInUse { .. } => "cert_in_use",
        }
    }

    /// The request field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ModelError::OutOfRange { field, .. } | ModelError::Invalid { field, .. } => Some(field),
            ModelError::GroupNotFound { .. }
            | ModelError::GroupExists { .. }
            | ModelError::GroupInUse { .. }
            | ModelError::GroupDeleting { .. } => Some("group"),
            ModelError::BackendDraining { .. } => Some("backend"),
            ModelError::ListenerNotFound { .. } => Some("port"),
            ModelError::NothingToUpdate { .. } => None,
            ModelError::BackendNotFound { .. } => Some("backend"),
            ModelError::ListenerExists { .. } => Some("port"),
            ModelError::DrainNotFound { .. } => Some("drain"),
            ModelError::NodeNotFound { .. } | ModelError::NodeNotDraining { .. } => Some("node"),
            ModelError::CertNotFound { .. } | ModelError::CertInUse { .. } => Some("cert"),
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
                | ModelError::ListenerNotFound { .. }
                | ModelError::NodeNotFound { .. }
                | ModelError::CertNotFound { .. }
        )
    }

    /// The HTTP status an API answers a refusal with this `code` by: 404
    /// for "no such thing", 409 for a conflict with the state, 400 for a
    /// bad value.
    pub fn status_of_code(code: &str) -> u16 {
        match code {
            c if c.ends_with("_not_found") => 404,
            c if c.ends_with("_exists") => 409,
            "group_in_use" | "group_deleting" | "backend_draining" | "node_not_draining"
            | "cert_in_use" => 409,
            _ => 400,
        }
    }

    /// Whether the error is a conflict with existing state (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ModelError::GroupExists { .. }
                | ModelError::ListenerExists { .. }
                | ModelError::GroupInUse { .. }
                | ModelError::GroupDeleting { .. }
                | ModelError::BackendDraining { .. }
                | ModelError::NodeNotDraining { .. }
                | ModelError::CertInUse { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal crosses the log and the wire as itself: the same variant,
    /// code, message and field on the other side.
    #[test]
    fn errors_survive_serialization() {
        let errors = [
            ModelError::OutOfRange {
                field: "weight".into(),
                value: "101".into(),
                range: "0..=100".into(),
            },
            ModelError::Invalid {
                field: "backend".into(),
                value: "x".into(),
                expected: "host:port".into(),
            },
            ModelError::GroupInUse {
                group: "web".into(),
                backends: 2,
                listeners: vec![80, 81],
            },
            ModelError::NothingToUpdate {
                fields: "weight, maintenance".into(),
            },
            ModelError::DrainNotFound { drain: DrainId(7) },
        ];
        for e in errors {
            let json = serde_json::to_string(&e).unwrap();
            let back: ModelError = serde_json::from_str(&json).unwrap();
            assert_eq!(back, e, "{json}");
            assert_eq!(
                (back.code(), back.to_string(), back.field()),
                (e.code(), e.to_string(), e.field())
            );
        }
    }
}
