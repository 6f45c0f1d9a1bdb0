//! `POST /models/{version}/canary` and `/shadow`: route a share of the unpinned
//! traffic to another version (canary: its answers are served), or mirror it
//! there (shadow: answers compared and scored, never served). Routing feeds
//! serving, so it needs the token. Routes are this replica's.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::auth::Authorized;
use super::{ApiError, ApiJson, AppState};
use crate::serving::routing::{Route, RouteInfo};

/// A route's share.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// Share of unpinned requests in whole percent, 0 to 100; 0 removes the route.
    #[schema(minimum = 0, maximum = 100)]
    pub percent: u32,
}

/// `POST /models/{version}/canary`: `percent`% of unpinned requests are answered
/// by `version`, decided per request; every answer names its version.
#[utoipa::path(post, path = "/models/{version}/canary", tag = "models",
    params(("version" = String, Path, description = "A version that is not active")),
    request_body = RouteRequest,
    responses((status = 200, description = "The route now in place (percent 0: none)", body = RouteInfo),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such version", body = crate::api::error::ErrorBody),
        (status = 409, description = "The active version, or one that cannot be loaded", body = crate::api::error::ErrorBody),
        (status = 413, description = "The body is over server.max_body_bytes", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "percent outside 0..=100, or unknown fields", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn canary(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
    body: Result<ApiJson<RouteRequest>, ApiError>,
) -> Result<Json<RouteInfo>, ApiError> {
    let ApiJson(body) = body?;
    set(&state, &state.routing.canary, version, body.percent).await
}

/// `POST /models/{version}/shadow`: `percent`% of unpinned requests are also
/// computed by `version` after they are answered (only while the queue has room);
/// its agreement with the served answers and its quality on feedback are tracked
/// (`GET /monitoring`).
#[utoipa::path(post, path = "/models/{version}/shadow", tag = "models",
    params(("version" = String, Path, description = "A version that is not active")),
    request_body = RouteRequest,
    responses((status = 200, description = "The route now in place (percent 0: none)", body = RouteInfo),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such version", body = crate::api::error::ErrorBody),
        (status = 409, description = "The active version, or one that cannot be loaded", body = crate::api::error::ErrorBody),
        (status = 413, description = "The body is over server.max_body_bytes", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "percent outside 0..=100, or unknown fields", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn shadow(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
    body: Result<ApiJson<RouteRequest>, ApiError>,
) -> Result<Json<RouteInfo>, ApiError> {
    let ApiJson(body) = body?;
    set(&state, &state.routing.shadow, version, body.percent).await
}

async fn set(
    state: &AppState,
    slot: &arc_swap::ArcSwapOption<Route>,
    version: String,
    percent: u32,
) -> Result<Json<RouteInfo>, ApiError> {
    let percent = f64::from(percent);
    if percent > 100.0 {
        return Err(ApiError::Unprocessable(format!(
            "percent must be between 0 and 100, got {percent}"
        )));
    }
    if state
        .model
        .current()
        .is_some_and(|m| m.version() == version)
    {
        return Err(ApiError::Conflict(format!(
            "{version} is the active version; route another one"
        )));
    }
    if percent == 0.0 {
        slot.store(None);
        return Ok(Json(RouteInfo { version, percent }));
    }
    let model = state.models.get(&version).await?;
    if let Some(active) = state.model.current()
        && (active.input_width() != model.input_width()
            || active.manifest().net.task != model.manifest().net.task)
    {
        return Err(ApiError::Conflict(format!(
            "{version} takes {} inputs for {:?}; the active {} takes {} for {:?}: a route must answer the same requests",
            model.input_width(),
            model.manifest().net.task,
            active.version(),
            active.input_width(),
            active.manifest().net.task
        )));
    }
    slot.store(Some(Arc::new(Route::new(model, percent))));
    tracing::info!(version, percent, "route set");
    Ok(Json(RouteInfo { version, percent }))
}
