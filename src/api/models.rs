//! `GET /models`, `POST /models/{version}/promote`, `POST /models/rollback`,
//! `DELETE /models/{version}`. Changes go through the model manager, one at a time.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::auth::Authorized;
use super::{ApiError, AppState};
use crate::registry::ActiveRecord;

/// `GET /models`: every version with its metrics, and which one is active.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let listing = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let internal = |e: crate::registry::StoreError| ApiError::Internal(e.to_string());
        let active = store.active().map_err(internal)?;
        let versions: Vec<Value> = store
            .list()
            .map_err(internal)?
            .into_iter()
            .map(|v| {
                let is_active = active.as_ref().is_some_and(|a| a.version == v);
                match store.manifest(&v) {
                    Ok(m) => json!({
                        "version": v,
                        "active": is_active,
                        "created_at": m.created_at,
                        "source": m.source,
                        "task": m.net.task,
                        "architecture": m.net.architecture,
                        "inputs": m.net.input_width(),
                        "labels": m.labels,
                        "metrics": m.metrics,
                    }),
                    Err(e) => json!({"version": v, "active": is_active, "error": e.to_string()}),
                }
            })
            .collect();
        Ok(json!({
            "active": active.as_ref().map(|a| &a.version),
            "previous": active.as_ref().and_then(|a| a.previous.as_ref()),
            "versions": versions,
        }))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(listing))
}

/// `POST /models/{version}/promote`.
pub async fn promote(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<ActiveRecord>, ApiError> {
    Ok(Json(state.models.promote(&version).await?))
}

/// `POST /models/rollback`: back to the previously active version.
pub async fn rollback(
    _: Authorized,
    State(state): State<AppState>,
) -> Result<Json<ActiveRecord>, ApiError> {
    Ok(Json(state.models.rollback().await?))
}

/// `DELETE /models/{version}` (not the active one).
pub async fn delete(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.models.delete(&version).await?;
    Ok(Json(json!({ "deleted": version })))
}
