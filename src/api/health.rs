//! Liveness, readiness and the Prometheus scrape endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::{ApiError, AppState};
use crate::serving::routing::RouteKind;

/// `GET /health/live`: the process is up and answering.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health {
        status: "live",
        model_version: None,
    })
}

/// `/health/live` and `/health/ready`'s body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `live` or `ready`.
    pub status: &'static str,
    /// The version serving (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
}

/// `GET /health/ready`: a model is loaded and the server is not shutting down.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready, with the serving version", body = Health),
        (status = 503, description = "Loading or shutting down", body = crate::api::error::ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.draining.is_cancelled() {
        return Err(ApiError::NotReady("shutting down".into()));
    }
    let model = state
        .model
        .current()
        .ok_or_else(|| ApiError::NotReady("no model is loaded yet".into()))?;
    Ok(Json(Health {
        status: "ready",
        model_version: Some(model.version().to_owned()),
    }))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The drift and route series are computed when scraped, model by model.
    let named = state.catalog.all();
    for bundle in std::iter::once(&state.default).chain(&named) {
        scrape(bundle);
    }
    let labelled: Vec<(&str, &crate::metrics::Metrics)> = named
        .iter()
        .map(|b| (b.name.as_str(), b.model.metrics()))
        .collect();
    let text = crate::metrics::models::render(
        &state.config.model.name,
        &state.metrics,
        &labelled,
        state.config.metrics.max_models,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Sets a model's drift, route and shadow-agreement series from its monitor and
/// routes.
fn scrape(bundle: &crate::serving::bundle::Bundle) {
    bundle.monitor.drift();
    let routing = bundle.models.routes();
    let (canary, shadow) = (
        routing.get(RouteKind::Canary),
        routing.get(RouteKind::Shadow),
    );
    let routes = [("canary", canary.as_ref()), ("shadow", shadow.as_ref())]
        .into_iter()
        .filter_map(|(name, r)| Some((name, r?.model.version(), r?.percent)));
    let agreement = bundle
        .monitor
        .shadow_stats()
        .filter(|s| s.compared > 0)
        .map(|s| s.agreed as f64 / s.compared as f64);
    bundle
        .model
        .metrics()
        .monitoring
        .set_routes(routes, agreement);
}
