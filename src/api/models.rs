//! `GET /models`, `GET /models/{version}`, `POST /models/{version}/promote`, `POST /models/rollback`,
//! `DELETE /models/{version}`. Changes go through the model manager, one at a time.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::auth::Authorized;
use super::{ApiError, AppState};
use crate::registry::ActiveRecord;

/// One version, as `GET /models` lists it and `GET /models/{version}` answers it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub version: String,
    pub active: bool,
    /// Seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::model::Task>,
    /// The network as its model config describes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub architecture: Option<Value>,
    /// Values per instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Validation metrics (`accuracy` or `r2`, `val_loss`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<serde_json::Map<String, Value>>,
    /// The training summary (recipe, rows, best epoch); `GET /models/{version}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub training: Option<Value>,
    /// Why the version's files cannot be read (`GET /models` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VersionInfo {
    fn of(version: &str, active: bool, m: &crate::model::Manifest) -> Self {
        Self {
            version: version.into(),
            active,
            created_at: Some(m.created_at),
            source: Some(m.source.clone()),
            task: Some(m.net.task),
            architecture: serde_json::to_value(&m.net.architecture).ok(),
            inputs: Some(m.net.input_width()),
            input_shape: Some(m.net.input_shape()),
            labels: m.labels.clone(),
            metrics: Some(m.metrics.clone()),
            training: None,
            error: None,
        }
    }

    fn unreadable(version: &str, active: bool, error: String) -> Self {
        Self {
            version: version.into(),
            active,
            created_at: None,
            source: None,
            task: None,
            architecture: None,
            inputs: None,
            input_shape: None,
            labels: None,
            metrics: None,
            training: None,
            error: Some(error),
        }
    }
}

/// `GET /models`'s body.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// `GET /models` only: every model this process serves, the default one
    /// (`model.name`, whose versions these are) first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    pub active: Option<String>,
    pub previous: Option<String>,
    /// Oldest first.
    pub versions: Vec<VersionInfo>,
}

/// `GET /models`: every version with its metrics, and which one is active.
#[utoipa::path(get, path = "/models", tag = "models",
    responses((status = 200, description = "Versions and which is active", body = ModelList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let mut listing = listing(state.store.clone()).await?;
    listing.models = Some(
        std::iter::once(state.config.model.name.clone())
            .chain(state.catalog.all().iter().map(|b| b.name.clone()))
            .collect(),
    );
    Ok(Json(listing))
}

/// The versions in `store`, and which one is active.
pub async fn listing(store: crate::registry::Store) -> Result<ModelList, ApiError> {
    tokio::task::spawn_blocking(move || -> Result<ModelList, ApiError> {
        let active = store.active()?;
        let versions = store
            .list()?
            .into_iter()
            .map(|v| {
                let is_active = active.as_ref().is_some_and(|a| a.version == v);
                match store.manifest(&v) {
                    Ok(m) => VersionInfo::of(&v, is_active, &m),
                    Err(e) => VersionInfo::unreadable(&v, is_active, e.to_string()),
                }
            })
            .collect();
        Ok(ModelList {
            models: None,
            active: active.as_ref().map(|a| a.version.clone()),
            previous: active.and_then(|a| a.previous),
            versions,
        })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// `GET /models/{version}`: one version's record, with its training summary.
#[utoipa::path(get, path = "/models/{version}", tag = "models",
    params(("version" = String, Path, description = "A version, e.g. v3")),
    responses((status = 200, description = "The version", body = VersionInfo),
        (status = 404, description = "No such version", body = crate::api::error::ErrorBody),
        (status = 409, description = "The version's files are unreadable", body = crate::api::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<VersionInfo>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let manifest = store.manifest(&version).map_err(|e| match e {
            crate::registry::StoreError::NotFound(_) => {
                ApiError::NotFound(format!("no version {version}"))
            }
            other => other.into(),
        })?;
        let active = store.active()?.is_some_and(|a| a.version == version);
        let mut info = VersionInfo::of(&version, active, &manifest);
        info.training = manifest.training.clone();
        Ok(Json(info))
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

/// `DELETE /models/{version}` (not the active one), or `DELETE /models/{name}`:
/// a named model, with every version and record it has (once unloaded; a name
/// never looks like a version id).
#[utoipa::path(delete, path = "/models/{version}", tag = "models",
    params(("version" = String, Path, description = "A version of the default model that is not active, or a named model that is not loaded")),
    responses((status = 200, description = "Deleted", body = Deleted),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such version or model", body = crate::api::error::ErrorBody),
        (status = 409, description = "It is the active version, or a loaded or routed model", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn delete(
    _: Authorized,
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    if let Ok(name) = crate::registry::ModelName::parse(&version) {
        if version == state.config.model.name {
            return Err(ApiError::Conflict(
                "the default model cannot be deleted; delete its versions".into(),
            ));
        }
        let bundle = super::named::served(&state, &version)?;
        state.catalog.delete_async(&name, bundle).await?;
        return Ok(Json(Deleted { deleted: version }));
    }
    state.models.delete(&version).await?;
    Ok(Json(Deleted { deleted: version }))
}

/// `DELETE /models/{version}`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// The version (or named model) that is gone from the store.
    pub deleted: String,
}
