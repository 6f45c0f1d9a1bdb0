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
use crate::api::error::ErrorBody;
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

/// What setting a route answers (the default model's routes and named models').
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes the OpenAPI responses; never built
pub enum RouteAnswers {
    /// The route now in place (percent 0: none)
    #[response(status = 200)]
    Set(RouteInfo),
    /// Not valid JSON
    #[response(status = 400)]
    NotJson(ErrorBody),
    /// auth.token is set and the token is missing or wrong
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such model or version
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The active version, one that cannot be loaded or takes other inputs, or
    /// (percent 0) the route is to another version
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is over server.max_body_bytes
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Not JSON
    #[response(status = 415)]
    NotJsonType(ErrorBody),
    /// percent outside 0..=100, or unknown fields
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// The model manager has stopped
    #[response(status = 503)]
    Stopped(ErrorBody),
}

/// `POST /models/{version}/canary`: `percent`% of unpinned requests are answered
/// by `version`, decided per request; every answer names its version.
#[utoipa::path(post, path = "/models/{version}/canary", tag = "models",
    params(("version" = String, Path, description = "A version that is not active")),
    request_body = RouteRequest,
    responses(RouteAnswers),
    security((), ("bearer" = [])))]
pub async fn canary(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
    body: Result<ApiJson<RouteRequest>, ApiError>,
) -> Result<Json<RouteInfo>, ApiError> {
    let ApiJson(body) = body?;
    set(&state.models, RouteKind::Canary, version, body.percent).await
}

/// `POST /models/{version}/shadow`: `percent`% of unpinned requests are also
/// computed by `version` after they are answered (only while the queue has room);
/// its agreement with the served answers and its quality on feedback are tracked
/// (`GET /monitoring`).
#[utoipa::path(post, path = "/models/{version}/shadow", tag = "models",
    params(("version" = String, Path, description = "A version that is not active")),
    request_body = RouteRequest,
    responses(RouteAnswers),
    security((), ("bearer" = [])))]
pub async fn shadow(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
    body: Result<ApiJson<RouteRequest>, ApiError>,
) -> Result<Json<RouteInfo>, ApiError> {
    let ApiJson(body) = body?;
    set(&state.models, RouteKind::Shadow, version, body.percent).await
}

/// Sets `kind`'s route to `version` on the model `models` manages.
pub async fn set(
    models: &crate::serving::Models,
    kind: RouteKind,
    version: String,
    percent: u32,
) -> Result<Json<RouteInfo>, ApiError> {
    let info = models.route(kind, &version, f64::from(percent)).await?;
    Ok(Json(info))
}
