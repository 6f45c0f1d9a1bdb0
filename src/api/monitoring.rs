//! `POST /feedback` (labels for answered predictions) and `GET /monitoring` (live
//! quality per version). Feedback feeds training, so it needs the token.

use axum::Json;
use axum::extract::State;

use super::auth::Authorized;
use super::{ApiError, ApiJson, AppState};
use crate::monitoring::Report;
use crate::monitoring::drift::DriftReport;
use crate::monitoring::feedback::FeedbackRequest;
use crate::monitoring::join::FeedbackAccepted;
use crate::serving::bundle::Bundle;
use crate::serving::routing::{RouteInfo, RouteKind};

/// `GET /monitoring`: live quality, and the routes it compares.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MonitoringReport {
    #[serde(flatten)]
    pub quality: Report,
    /// The canary route, if one is set.
    pub canary: Option<RouteInfo>,
    /// The shadow route, if one is set (`shadow_agreement` scores it).
    pub shadow: Option<RouteInfo>,
}

/// `POST /feedback`: labels joined to logged predictions (or to the instance sent
/// with them), kept for retraining and scored into live quality. All or nothing:
/// one bad item refuses the request.
#[utoipa::path(post, path = "/feedback", tag = "monitoring",
    request_body = FeedbackRequest,
    responses(
        (status = 200, description = "Kept", body = FeedbackAccepted),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 413, description = "More items than monitoring.max_feedback_items", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "An unknown or expired id without its instance, a bad instance, or a target of the wrong type or class", body = crate::api::error::ErrorBody),
        (status = 503, description = "No model loaded yet, or the model store is unavailable (named)", body = crate::api::error::ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn feedback(
    _: Authorized,
    State(state): State<AppState>,
    body: Result<ApiJson<FeedbackRequest>, ApiError>,
) -> Result<Json<FeedbackAccepted>, ApiError> {
    feedback_to(&state.default, body).await
}

/// `/feedback` for the model `bundle` serves.
pub async fn feedback_to(
    bundle: &Bundle,
    body: Result<ApiJson<FeedbackRequest>, ApiError>,
) -> Result<Json<FeedbackAccepted>, ApiError> {
    let ApiJson(body) = body?;
    let active = bundle
        .model
        .current()
        .ok_or_else(|| ApiError::NotReady("no model is loaded yet".into()))?;
    let accepted = bundle.monitor.clone().feedback(body.items, active).await?;
    Ok(Json(accepted))
}

/// `GET /monitoring/drift`: the sampled inputs and predictions against the
/// serving version's training profile (PSI per feature, largest first).
#[utoipa::path(get, path = "/monitoring/drift", tag = "monitoring",
    responses((status = 200, description = "Drift of the live window", body = DriftReport)))]
pub async fn drift(State(state): State<AppState>) -> Json<DriftReport> {
    Json(state.default.monitor.drift())
}

/// `GET /monitoring`: live quality per version.
#[utoipa::path(get, path = "/monitoring", tag = "monitoring",
    responses((status = 200, description = "Live quality per version", body = MonitoringReport)))]
pub async fn report(State(state): State<AppState>) -> Json<MonitoringReport> {
    Json(report_of(&state.default))
}

/// The live quality and routes of the model `bundle` serves.
pub fn report_of(bundle: &Bundle) -> MonitoringReport {
    let routing = bundle.models.routes();
    MonitoringReport {
        quality: bundle.monitor.report(),
        canary: routing.describe(RouteKind::Canary),
        shadow: routing.describe(RouteKind::Shadow),
    }
}
