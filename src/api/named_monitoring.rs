//! Named models' feedback, monitoring and routes: `POST /models/{name}/feedback`,
//! `GET /models/{name}/monitoring[/drift]`, and `POST
//! /models/{name}/versions/{version}/canary` and `/shadow`. Each does for the
//! model `name` what its default-model route does (`monitoring`, `routing`).

use axum::Json;
use axum::extract::{Path, State};

use super::auth::Authorized;
use super::monitoring::MonitoringReport;
use super::named::served;
use super::routing::{RouteAnswers, RouteRequest};
use super::{ApiError, ApiJson, AppState};
use crate::monitoring::drift::DriftReport;
use crate::monitoring::feedback::FeedbackRequest;
use crate::monitoring::join::FeedbackAccepted;
use crate::serving::routing::{RouteInfo, RouteKind};

/// `POST /models/{name}/feedback`: labels for the model's answered predictions.
#[utoipa::path(post, path = "/models/{name}/feedback", tag = "monitoring",
    params(("name" = String, Path, description = "A model name")),
    request_body = FeedbackRequest,
    responses(
        (status = 200, description = "Kept", body = FeedbackAccepted),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such model", body = crate::api::error::ErrorBody),
        (status = 413, description = "More items than monitoring.max_feedback_items", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "An unknown or expired id without its instance, a bad instance, or a target of the wrong type or class", body = crate::api::error::ErrorBody),
        (status = 503, description = "No version loaded yet, or the model store is unavailable (named)", body = crate::api::error::ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn feedback(
    _: Authorized,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<ApiJson<FeedbackRequest>, ApiError>,
) -> Result<Json<FeedbackAccepted>, ApiError> {
    let bundle = served(&state, &name)?;
    super::monitoring::feedback_to(&bundle, body).await
}

/// `GET /models/{name}/monitoring`: the model's live quality and routes.
#[utoipa::path(get, path = "/models/{name}/monitoring", tag = "monitoring",
    params(("name" = String, Path, description = "A model name")),
    responses((status = 200, description = "Live quality per version", body = MonitoringReport),
        (status = 404, description = "No such model", body = crate::api::error::ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<MonitoringReport>, ApiError> {
    let bundle = served(&state, &name)?;
    Ok(Json(super::monitoring::report_of(&bundle)))
}

/// `GET /models/{name}/monitoring/drift`: the model's drift.
#[utoipa::path(get, path = "/models/{name}/monitoring/drift", tag = "monitoring",
    params(("name" = String, Path, description = "A model name")),
    responses((status = 200, description = "Drift of the live window", body = DriftReport),
        (status = 404, description = "No such model", body = crate::api::error::ErrorBody)))]
pub async fn drift(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DriftReport>, ApiError> {
    Ok(Json(served(&state, &name)?.monitor.drift()))
}

/// `POST /models/{name}/versions/{version}/canary`.
#[utoipa::path(post, path = "/models/{name}/versions/{version}/canary", tag = "models",
    params(("name" = String, Path, description = "A model name"), ("version" = String, Path, description = "A version that is not active")),
    request_body = RouteRequest,
    responses(RouteAnswers),
    security((), ("bearer" = [])))]
pub async fn canary(
    _: Authorized,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    body: Result<ApiJson<RouteRequest>, ApiError>,
) -> Result<Json<RouteInfo>, ApiError> {
    route(&state, &name, RouteKind::Canary, version, body).await
}

/// `POST /models/{name}/versions/{version}/shadow`.
#[utoipa::path(post, path = "/models/{name}/versions/{version}/shadow", tag = "models",
    params(("name" = String, Path, description = "A model name"), ("version" = String, Path, description = "A version that is not active")),
    request_body = RouteRequest,
    responses(RouteAnswers),
    security((), ("bearer" = [])))]
pub async fn shadow(
    _: Authorized,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    body: Result<ApiJson<RouteRequest>, ApiError>,
) -> Result<Json<RouteInfo>, ApiError> {
    route(&state, &name, RouteKind::Shadow, version, body).await
}

async fn route(
    state: &AppState,
    name: &str,
    kind: RouteKind,
    version: String,
    body: Result<ApiJson<RouteRequest>, ApiError>,
) -> Result<Json<RouteInfo>, ApiError> {
    let bundle = served(state, name)?;
    let ApiJson(body) = body?;
    super::routing::set(&bundle.models, kind, version, body.percent).await
}
