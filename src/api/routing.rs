//! `POST /models/{version}/canary` and `/shadow`: route a share of the unpinned
//! traffic to another version (canary: its answers are served), or mirror it
//! there (shadow: answers compared and scored, never served). Routing feeds
//! serving, so it needs the token. Routes are this replica's, owned by the model
//! manager: a route is removed by the version it names (percent 0), and goes
//! with its version when that version is promoted, rolled back to or deleted.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::auth::Authorized;
use super::{ApiError, ApiJson, AppState};
use crate::serving::routing::{RouteInfo, RouteKind};

/// A route's share.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// Share of unpinned requests in whole percent, 0 to 100; 0 removes the route
    /// to this version.
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
        (status = 409, description = "The active version, one that cannot be loaded or takes other inputs, or (percent 0) the route is to another version", body = crate::api::error::ErrorBody),
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
    set(&state, RouteKind::Canary, version, body.percent).await
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
        (status = 409, description = "The active version, one that cannot be loaded or takes other inputs, or (percent 0) the route is to another version", body = crate::api::error::ErrorBody),
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
    set(&state, RouteKind::Shadow, version, body.percent).await
}

async fn set(
    state: &AppState,
    kind: RouteKind,
    version: String,
    percent: u32,
) -> Result<Json<RouteInfo>, ApiError> {
    let info = state
        .models
        .route(kind, &version, f64::from(percent))
        .await?;
    Ok(Json(info))
}
