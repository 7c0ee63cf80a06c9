//! Certificates: `GET|POST /v1/certs`, `GET|PUT|DELETE /v1/certs/{name}`.
//!
//! The node that takes an upload checks it with [`sluice_tls::inspect`]
//! (PEM, key matches the leaf, dates) before it proposes anything, so a
//! chain or key that cannot be served is refused with `400` and never
//! reaches the log. Answers show what the leaf says ([`CertView`]), never
//! the key nor the PEM.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Json, Router};
use sluice_clock::now_ms;
use sluice_model::{validate_cert_name, Cert, Command, ModelError};

use crate::api::{AddCert, CertView, RemovedCert, UpdateCert};
use crate::auth::Authorized;
use crate::consistent::consistent_reads;
use crate::context::{AdminContext, ApiResult, Ctx};
use crate::extract::json_body;
use crate::views::cert_view;
use crate::writes::{missing, status_of, Committed};
use crate::Submitted;

/// Routes of certificates.
pub(crate) fn routes(ctx: Arc<AdminContext>) -> Router<Arc<AdminContext>> {
    let consistent = || from_fn_with_state(ctx.clone(), consistent_reads);
    Router::new()
        .route(
            "/v1/certs",
            get(list_certs.layer(consistent())).post(add_cert),
        )
        .route(
            "/v1/certs/{name}",
            get(show_cert.layer(consistent()))
                .put(update_cert)
                .delete(remove_cert),
        )
}

async fn list_certs(AxState(ctx): Ctx) -> ApiResult<Json<Vec<CertView>>> {
    let s = ctx.store.current();
    Ok(Json(s.certs.values().map(|c| cert_view(&s, c)).collect()))
}

async fn show_cert(AxState(ctx): Ctx, Path(name): Path<String>) -> ApiResult<Json<CertView>> {
    let s = ctx.store.current();
    let c = s
        .certs
        .get(&name)
        .ok_or(ModelError::CertNotFound { cert: name })?;
    Ok(Json(cert_view(&s, c)))
}

/// The upload checked and read, ready to propose.
fn checked(name: &str, chain_pem: &str, key_pem: &str) -> ApiResult<Cert> {
    validate_cert_name(name)?;
    Ok(sluice_tls::inspect(name, chain_pem, key_pem, now_ms())?)
}

fn cert_answer(s: &Submitted, name: &str) -> ApiResult<CertView> {
    let c = s
        .excerpt
        .certs
        .get(name)
        .ok_or_else(|| missing(format!("certificate {name:?}")))?;
    let mut view = cert_view(&s.excerpt, c);
    view.pending_nodes = s.pending.clone();
    Ok(view)
}

async fn add_cert(
    AxState(ctx): Ctx,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<CertView>)> {
    let req: AddCert = json_body(&bytes)?;
    let cert = checked(&req.name, &req.chain_pem, &req.key_pem.0)?;
    let s = ctx.store.submit(Command::AddCert { cert }).await?;
    let view = cert_answer(&s, &req.name)?;
    Ok((
        status_of(StatusCode::CREATED, &s),
        Committed::of(&s),
        Json(view),
    ))
}

async fn update_cert(
    AxState(ctx): Ctx,
    Path(name): Path<String>,
    _: Authorized,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Committed, Json<CertView>)> {
    let req: UpdateCert = json_body(&bytes)?;
    let cert = checked(&name, &req.chain_pem, &req.key_pem.0)?;
    let s = ctx.store.submit(Command::UpdateCert { cert }).await?;
    let view = cert_answer(&s, &name)?;
    Ok((status_of(StatusCode::OK, &s), Committed::of(&s), Json(view)))
}

async fn remove_cert(
    AxState(ctx): Ctx,
    Path(name): Path<String>,
    _: Authorized,
) -> ApiResult<(StatusCode, Committed, Json<RemovedCert>)> {
    let s = ctx
        .store
        .submit(Command::RemoveCert { name: name.clone() })
        .await?;
    let answer = RemovedCert {
        name,
        state: "removed".into(),
        pending_nodes: s.pending.clone(),
    };
    Ok((
        status_of(StatusCode::OK, &s),
        Committed::of(&s),
        Json(answer),
    ))
}
