//! Liveness, readiness and the Prometheus scrape endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, AppState};

/// `GET /health/live`: the process is up and answering.
pub async fn live() -> impl IntoResponse {
    Json(json!({"status": "live"}))
}

/// `GET /health/ready`: a model is loaded and the server is not shutting down.
pub async fn ready(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    if state.draining.is_cancelled() {
        return Err(ApiError::NotReady("shutting down".into()));
    }
    let model = state
        .model
        .current()
        .ok_or_else(|| ApiError::NotReady("no model is loaded yet".into()))?;
    Ok(Json(
        json!({"status": "ready", "model_version": model.version()}),
    ))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
