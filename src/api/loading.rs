//! Named models load again on demand after an unload (`serving::residency`):
//! [`loaded`] waits for the load until the request's deadline, then answers 503
//! with Retry-After while the load goes on off the request path. And Triton's
//! repository extension's `POST /v2/repository/models/{name}/load` and
//! `/unload`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use tokio::time::Instant;

use axum::http::HeaderMap;

use super::auth::Authorized;
use super::deadline::Arrival;
use super::{ApiError, AppState};
use crate::serving::bundle::Bundle;
use crate::serving::residency::InFlight;

/// [`loaded`] by the deadline a request's headers set (else the default one); a
/// header that is not a timeout is a 400.
pub(super) async fn loaded_for(
    state: &AppState,
    bundle: &Arc<Bundle>,
    headers: &HeaderMap,
    arrival: Arrival,
) -> Result<Option<InFlight>, ApiError> {
    // A bad timeout header is the request's 400, before anything loads.
    let fallback = bundle.inference.limits().default_timeout;
    let by = super::deadline::deadline(headers, arrival, fallback)?.compute_by;
    loaded(state, bundle, by).await
}

/// `bundle` serving a version: at once when it holds one (the default model
/// always does); else its load, awaited until `by`. Hold the guard until the
/// answer: the model is not unloaded for room meanwhile.
pub(super) async fn loaded(
    state: &AppState,
    bundle: &Arc<Bundle>,
    by: Instant,
) -> Result<Option<InFlight>, ApiError> {
    if Arc::ptr_eq(bundle, &state.default) {
        return Ok(None);
    }
    let attempt = async {
        loop {
            if let Some(guard) = bundle.residency.enter()
                && bundle.model.current().is_some()
            {
                state.catalog.touch(bundle);
                return Ok(guard);
            }
            // Loaded off the request path: past the deadline the load goes on.
            let (catalog, loading) = (state.catalog.clone(), bundle.clone());
            tokio::spawn(async move { catalog.ready(&loading).await })
                .await
                .map_err(|e| ApiError::Internal(format!("a model load stopped: {e}")))??;
        }
    };
    match tokio::time::timeout_at(by, attempt).await {
        Ok(done) => done.map(Some),
        Err(_) => Err(ApiError::Loading(format!(
            "model {:?} is loading; retry shortly",
            bundle.name
        ))),
    }
}

/// An empty JSON object, Triton's answer to `load` and `unload`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Done {}

/// `POST /v2/repository/models/{name}/load`: loads the model's active version
/// (a model already loaded is left as it is), then unloads least recently used
/// ones past `serving.max_loaded_mb`.
#[utoipa::path(post, path = "/v2/repository/models/{name}/load", tag = "oip-v2",
    params(("name" = String, Path, description = "A model name")),
    responses((status = 200, description = "The model serves", body = Done),
        (status = 401, description = "Missing or wrong bearer token", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such model", body = crate::api::error::ErrorBody),
        (status = 409, description = "Its active version cannot be loaded", body = crate::api::error::ErrorBody),
        (status = 503, description = "The store is unreachable, or shutting down", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn load(
    _: Authorized,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Done>, ApiError> {
    let bundle = super::named::served(&state, &name)?;
    if !Arc::ptr_eq(&bundle, &state.default) {
        state.catalog.ready(&bundle).await?;
    }
    Ok(Json(Done {}))
}

/// `POST /v2/repository/models/{name}/unload`: drops a named model's loaded
/// versions; it loads again on its next request or `load`. The default model
/// always serves (409), and so does a model with a canary or shadow route.
#[utoipa::path(post, path = "/v2/repository/models/{name}/unload", tag = "oip-v2",
    params(("name" = String, Path, description = "A model name")),
    responses((status = 200, description = "The model holds no weights", body = Done),
        (status = 401, description = "Missing or wrong bearer token", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such model", body = crate::api::error::ErrorBody),
        (status = 409, description = "The default model, or a model with a route", body = crate::api::error::ErrorBody),
        (status = 503, description = "Shutting down", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn unload(
    _: Authorized,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Done>, ApiError> {
    let bundle = super::named::served(&state, &name)?;
    state.catalog.unload(&bundle).await?;
    Ok(Json(Done {}))
}
