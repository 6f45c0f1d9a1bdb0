//! `GET /models`, `GET /models/{version}`, `POST /models/{version}/promote`, `POST /models/rollback`,
//! `DELETE /models/{version}`. Changes go through the model manager, one at a time.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::auth::Authorized;
use super::{ApiError, AppState};
use crate::registry::ActiveRecord;

/// `GET /models`: every version with its metrics, and which one is active.
#[utoipa::path(get, path = "/models", tag = "models",
    responses((status = 200, description = "Versions and which is active", body = Object)))]
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
                    Ok(m) => describe(&v, is_active, &m),
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

/// One version as `GET /models` lists it.
fn describe(version: &str, active: bool, m: &crate::model::Manifest) -> Value {
    json!({
        "version": version,
        "active": active,
        "created_at": m.created_at,
        "source": m.source,
        "task": m.net.task,
        "architecture": m.net.architecture,
        "inputs": m.net.input_width(),
        "input_shape": m.net.input_shape(),
        "labels": m.labels,
        "metrics": m.metrics,
    })
}

/// `GET /models/{version}`: one version's record, with its training summary.
#[utoipa::path(get, path = "/models/{version}", tag = "models",
    params(("version" = String, Path, description = "A version, e.g. v3")),
    responses((status = 200, description = "The version", body = Object),
        (status = 404, description = "No such version", body = crate::api::error::ErrorBody),
        (status = 409, description = "The version's files are unreadable", body = crate::api::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let manifest = store.manifest(&version).map_err(|e| match e {
            crate::registry::StoreError::NotFound(_) => {
                ApiError::NotFound(format!("no version {version}"))
            }
            other => ApiError::Conflict(other.to_string()),
        })?;
        let active = store
            .active()
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .is_some_and(|a| a.version == version);
        let mut record = describe(&version, active, &manifest);
        record["training"] = manifest.training.clone().unwrap_or(Value::Null);
        Ok(Json(record))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// `POST /models/{version}/promote`.
#[utoipa::path(post, path = "/models/{version}/promote", tag = "models",
    params(("version" = String, Path, description = "A version, e.g. v3")),
    responses((status = 200, description = "Now active", body = ActiveRecord),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such version", body = crate::api::error::ErrorBody),
        (status = 409, description = "The version cannot be loaded; the old one keeps serving", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn promote(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<ActiveRecord>, ApiError> {
    Ok(Json(state.models.promote(&version).await?))
}

/// `POST /models/rollback`: back to the previously active version.
#[utoipa::path(post, path = "/models/rollback", tag = "models",
    responses((status = 200, description = "The previous version is active again", body = ActiveRecord),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 409, description = "No previous version, or it cannot be loaded", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn rollback(
    _: Authorized,
    State(state): State<AppState>,
) -> Result<Json<ActiveRecord>, ApiError> {
    Ok(Json(state.models.rollback().await?))
}

/// `DELETE /models/{version}` (not the active one).
#[utoipa::path(delete, path = "/models/{version}", tag = "models",
    params(("version" = String, Path, description = "A version that is not active")),
    responses((status = 200, description = "Deleted", body = Object),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such version", body = crate::api::error::ErrorBody),
        (status = 409, description = "It is the active version", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn delete(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.models.delete(&version).await?;
    Ok(Json(json!({ "deleted": version })))
}
