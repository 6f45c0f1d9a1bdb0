//! `POST /models/{name}/train` and `GET /models/{name}/train`: training jobs for
//! one model. The body is `POST /train`'s; the job runs in the shared trainer,
//! under the same queue and budgets, and its worker writes the version into the
//! model's own store (`models/<name>/`).
//!
//! A first job under a new name creates the model when it succeeds: its version
//! is made active, as a first upload's is. The default model answers to its
//! name (`model.name`) here too, as `POST /train`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use super::auth::Authorized;
use super::train::{Admission, JobList};
use super::{ApiError, ApiJson, AppState};
use crate::registry::ModelName;
use crate::serving::catalog::Catalog;
use crate::training::jobs::{Activate, JobRecord, Served, Target};

/// `POST /models/{name}/train`.
#[utoipa::path(post, path = "/models/{name}/train", tag = "training",
    params(("name" = String, Path, description = "A model name; a new one is created by the job's version")),
    request_body(content = super::train::TrainRequest, description = "`dataset` plus any TrainSpec field", content_type = "application/json"),
    responses(
        (status = 202, description = "Queued: the job's record, with its `model`", body = JobRecord),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 409, description = "A new name while model.max_models named models are served", body = crate::api::error::ErrorBody),
        (status = 413, description = "Body or dataset file too large", body = crate::api::error::ErrorBody),
        (status = 422, description = "A bad name, recipe or data", body = crate::api::error::ErrorBody),
        (status = 429, description = "The training queue is full", body = crate::api::error::ErrorBody),
        (status = 503, description = "The trainer has stopped, or the store is unavailable", body = crate::api::error::ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn submit(
    _: Authorized,
    _admission: Admission,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let target = if name == state.config.model.name {
        None
    } else {
        Some(target(&state, &name)?)
    };
    let ApiJson(body) = body?;
    super::train::queue(state, body, target).await
}

/// `GET /models/{name}/train`: the model's jobs, in submission order.
#[utoipa::path(get, path = "/models/{name}/train", tag = "training",
    params(("name" = String, Path, description = "A model name")),
    responses((status = 200, description = "The model's jobs, in submission order (a new name's before its model exists)", body = JobList),
        (status = 404, description = "Not a model name", body = crate::api::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<JobList>, ApiError> {
    let model = if name == state.config.model.name {
        None
    } else {
        let name = ModelName::parse(&name).map_err(|e| ApiError::NotFound(e.to_string()))?;
        Some(name.to_string())
    };
    super::train::list_of(state, model).await
}

/// Where a job for `name` goes: the served model's store, or a new model's.
fn target(state: &AppState, name: &str) -> Result<Target, ApiError> {
    if let Some(bundle) = state.bundle(name) {
        return Ok(Target {
            model: name.into(),
            store: bundle.store.clone(),
            activate: Arc::new(Served(bundle.models.clone())),
        });
    }
    let parsed = ModelName::parse(name).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    state.catalog.room()?;
    Ok(Target {
        model: name.into(),
        store: state.catalog.store_of(&parsed)?,
        activate: Arc::new(New {
            catalog: state.catalog.clone(),
            name: parsed,
            runtime: tokio::runtime::Handle::current(),
        }),
    })
}

/// A model the job creates (unless an upload or an earlier job created it
/// meanwhile).
struct New {
    catalog: Catalog,
    name: ModelName,
    /// The server's runtime: the trainer thread opens the model through it.
    runtime: tokio::runtime::Handle,
}

impl Activate for New {
    fn activate(&self, version: &str, promote: bool) -> Result<bool, String> {
        if let Some(bundle) = self.catalog.get(&self.name) {
            return Served(bundle.models.clone()).activate(version, promote);
        }
        self.catalog.room().map_err(|e| e.to_string())?;
        self.runtime
            .block_on(self.catalog.open_created(&self.name))
            .map(|_| {
                tracing::info!(model = %self.name, version, "created a named model");
                true
            })
            .map_err(|e| e.to_string())
    }
}
