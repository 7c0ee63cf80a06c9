//! `/v1/debug/clock`, in test builds only (feature `test-clock`): shifts
//! this node's wall clock, which every drain deadline is read against, so
//! the fault harness can skew one node while the containers share the
//! host's clock. `PUT {"offset_ms": N}` (token) sets it, `0` heals; `GET`
//! answers the offset in force. A release build has no such route (404
//! like any unknown one).

use std::sync::Arc;

use axum::body::Bytes;
use axum::routing::put;
use axum::{Json, Router};

use crate::auth::Authorized;
use crate::context::AdminContext;
use crate::extract::json_body;
use crate::ApiError;

/// Path of the clock hook.
const CLOCK_PATH: &str = "/v1/debug/clock";

/// Body and answer of `/v1/debug/clock`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockOffset {
    /// Milliseconds added to every reading of this node's clock.
    offset_ms: i64,
}

/// The clock hook's route.
pub(crate) fn routes() -> Router<Arc<AdminContext>> {
    Router::new().route(CLOCK_PATH, put(set_offset).get(offset))
}

async fn set_offset(_: Authorized, bytes: Bytes) -> Result<Json<ClockOffset>, ApiError> {
    let body: ClockOffset = json_body(&bytes)?;
    tracing::warn!(
        offset_ms = body.offset_ms,
        "test clock: this node's wall clock is shifted"
    );
    sluice_clock::set_offset_ms(body.offset_ms);
    Ok(Json(ClockOffset {
        offset_ms: sluice_clock::offset_ms(),
    }))
}

async fn offset() -> Json<ClockOffset> {
    Json(ClockOffset {
        offset_ms: sluice_clock::offset_ms(),
    })
}
