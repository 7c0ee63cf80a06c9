//! The cluster's bearer token check, shared by the Raft RPC server and the
//! admin API: `Authorization: Bearer <token>`, compared in constant time.

use http::HeaderMap;

/// Why a request's bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer …` header.
    #[error("missing bearer token")]
    Missing,
    /// A token, but not this node's.
    #[error("wrong bearer token")]
    Wrong,
}

/// Checks `Authorization: Bearer <token>` in constant time.
pub fn check_bearer(headers: &HeaderMap, token: &str) -> Result<(), BearerError> {
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(BearerError::Missing)?;
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err(BearerError::Wrong)
    }
}
