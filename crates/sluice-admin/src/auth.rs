//! The admin token: where it comes from, and the bearer check on writes —
//! the [`Authorized`] extractor a handler takes before its body.
//!
//! Precedence (flag, then environment, then config file, as everywhere):
//! `SLUICE_TOKEN`, then the config file's `[admin] token`, then the token
//! file in the data dir; with none of them the node generates one at first
//! start, stores it in `<data_dir>/token` (mode 0600) and says where.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::context::AdminContext;
use crate::ApiError;

/// Where the node's token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The `SLUICE_TOKEN` environment variable.
    Env,
    /// `[admin] token` in the config file.
    Config,
    /// An existing token file.
    File(PathBuf),
    /// Generated now and written to this file.
    Generated(PathBuf),
}

/// Finds or makes the node's admin token: `env` (`SLUICE_TOKEN`) wins over
/// `configured` (`[admin] token`), which wins over `<data_dir>/token`; an
/// empty value counts as unset.
pub fn resolve_token(
    configured: Option<String>,
    env: Option<String>,
    data_dir: &Path,
) -> std::io::Result<(String, TokenSource)> {
    if let Some(t) = env.filter(|t| !t.is_empty()) {
        return Ok((t, TokenSource::Env));
    }
    if let Some(t) = configured.filter(|t| !t.is_empty()) {
        return Ok((t, TokenSource::Config));
    }
    let path = data_dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => {
            return Ok((t.trim().to_string(), TokenSource::File(path)))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)?;
    write_private(&path, &token)?;
    Ok((token, TokenSource::Generated(path)))
}

#[cfg(unix)]
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    std::fs::write(path, token)
}

/// Checks `Authorization: Bearer <token>` in constant time (the cluster's
/// one check, [`sluice_raft::bearer`]); a refusal is `401 unauthorized`.
pub fn check_bearer(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    sluice_raft::bearer::check_bearer(headers, token)
        .map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// Proof that the request carries this node's bearer token: a handler that
/// takes it runs only then, else the request is answered `401`. Put it
/// after the path and query extractors and before the body, the order the
/// checks have always run in.
#[derive(Debug, Clone, Copy)]
pub struct Authorized;

impl FromRequestParts<Arc<AdminContext>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &Arc<AdminContext>,
    ) -> Result<Self, Self::Rejection> {
        check_bearer(&parts.headers, &ctx.token)?;
        Ok(Authorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_generation() {
        let dir = std::env::temp_dir().join(format!("sluice-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (t, s) =
            resolve_token(Some("from-config".into()), Some("from-env".into()), &dir).unwrap();
        assert_eq!((t.as_str(), s), ("from-env", TokenSource::Env));
        let (t, s) = resolve_token(None, Some("from-env".into()), &dir).unwrap();
        assert_eq!((t.as_str(), s), ("from-env", TokenSource::Env));
        let (t, s) = resolve_token(Some("from-config".into()), Some(String::new()), &dir).unwrap();
        assert_eq!((t.as_str(), s), ("from-config", TokenSource::Config));
        assert!(
            !dir.join("token").exists(),
            "nothing generated while one is set"
        );
        let (generated, s) = resolve_token(None, None, &dir).unwrap();
        assert!(matches!(s, TokenSource::Generated(_)));
        assert_eq!(generated.len(), 48);
        let (again, s) = resolve_token(None, None, &dir).unwrap();
        assert_eq!(again, generated);
        assert!(matches!(s, TokenSource::File(_)));
        // The environment and the config file both win over the token file.
        let (t, s) = resolve_token(Some("from-config".into()), None, &dir).unwrap();
        assert_eq!((t.as_str(), s), ("from-config", TokenSource::Config));
        let (t, s) =
            resolve_token(Some("from-config".into()), Some("from-env".into()), &dir).unwrap();
        assert_eq!((t.as_str(), s), ("from-env", TokenSource::Env));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bearer_check() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_bearer(&h, "abc").unwrap_err().message,
            "missing bearer token"
        );
        h.insert("authorization", "Bearer abd".parse().unwrap());
        assert_eq!(
            check_bearer(&h, "abc").unwrap_err().message,
            "wrong bearer token"
        );
        h.insert("authorization", "Bearer abc".parse().unwrap());
        check_bearer(&h, "abc").unwrap();
    }

    /// The body the Raft RPC server answers a refused token with too.
    #[tokio::test]
    async fn a_refused_token_answers_the_api_error_body() {
        use axum::response::IntoResponse;
        let answer = check_bearer(&HeaderMap::new(), "abc")
            .unwrap_err()
            .into_response();
        assert_eq!(answer.status(), 401);
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"error":{"code":"unauthorized","message":"missing bearer token","field":null}}"#
        );
    }
}
