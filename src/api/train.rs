//! `POST /train`, `GET /train`, `GET /train/{id}`, `DELETE /train/{id}`.
//!
//! Everything that can be checked before training is checked at submission (the
//! body, the recipe, the data: parsing, cleaning, task, classes, the model file, the
//! split), so a bad request gets a 4xx at once and nothing reaches the store.

use std::path::{Component, Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Authorized;
use super::{ApiError, ApiJson, AppState};
use crate::model::NetConfig;
use crate::training::budget::Budget;
use crate::training::input::{DataSource, JobInput};
use crate::training::jobs::{JobError, JobRecord, Submission, Target};
use crate::training::spec::{ModelChoice, TrainSpec};

/// `POST /train` bodies read and checked at once; more wait their turn as 429s.
pub const MAX_CONCURRENT_SUBMISSIONS: usize = 2;

/// Admission to `POST /train`, taken before the body is read: the queue has a
/// free slot, and one of [`MAX_CONCURRENT_SUBMISSIONS`] parse permits is held
/// until the job is queued. So rejected bodies are never read, and concurrent
/// large bodies cannot add up.
pub struct Admission(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl axum::extract::FromRequestParts<AppState> for Admission {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        _: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !state.trainer.has_room() {
            let max = state.config.training.max_queued_jobs;
            return Err(ApiError::from(JobError::QueueFull(max)).before_body());
        }
        state
            .train_parses
            .clone()
            .try_acquire_owned()
            .map(Admission)
            .map_err(|_| {
                ApiError::TrainingBusy(
                    format!("{MAX_CONCURRENT_SUBMISSIONS} training submissions are being read; retry in a second"),
                    1,
                )
                .before_body()
            })
    }
}

/// `POST /train`'s body, as the OpenAPI document states it: a `dataset` (required)
/// and any field of the recipe (`TrainSpec`: `target`, `model`, `optimizer`,
/// `epochs`, ...) beside it. The handler reads it as JSON and checks each part
/// itself, so the errors can name the field.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only
pub struct TrainRequest {
    /// `{"csv": "<text>"}`, `{"path": "<file in training.data_dir>"}` or
    /// `{"instances": [[...]], "targets": [...]}`.
    #[schema(value_type = Object)]
    dataset: Value,
}

/// Where the training rows come from.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DatasetSpec {
    Csv(CsvSource),
    Path(PathSource),
    Instances(InstancesSource),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvSource {
    csv: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathSource {
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstancesSource {
    instances: Vec<Vec<Option<f32>>>,
    targets: Vec<Value>,
}

/// `POST /train`: validate, queue, answer 202 with the job id.
#[utoipa::path(post, path = "/train", tag = "training",
    request_body(content = TrainRequest, description = "`dataset` plus any TrainSpec field", content_type = "application/json"),
    responses(
        (status = 202, description = "Queued: the job's record, as `GET /train/{id}` answers it", body = JobRecord),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 413, description = "Body or dataset file too large", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "A bad recipe or bad data", body = crate::api::error::ErrorBody),
        (status = 429, description = "The training queue is full", body = crate::api::error::ErrorBody),
        (status = 503, description = "The trainer has stopped, or the model store is unavailable (named)", body = crate::api::error::ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn submit(
    _: Authorized,
    _admission: Admission,
    State(state): State<AppState>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let ApiJson(body) = body?;
    queue(state, body, None).await
}

/// Checks and queues a job from a `/train` body, for the default model or the
/// named model of `target`.
pub(super) async fn queue(
    state: AppState,
    body: Value,
    target: Option<Target>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    // Parsing and cleaning a large CSV is CPU work, and queueing writes (and
    // fsyncs) the job record: both off the async workers.
    let record = tokio::task::spawn_blocking(move || {
        // A job needs the store for its record and its version: one that is
        // unreachable is a 503 naming it now (within one store timeout), not
        // a 202 for a job that then fails.
        state.store.active_tag()?;
        let mut prepared = prepare(&state, body)?;
        prepared.target = target;
        Ok::<_, ApiError>(state.trainer.submit(prepared)?)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("preparing the job panicked: {e}")))??;
    Ok((StatusCode::ACCEPTED, Json(record)))
}

/// `GET /train`: every job, in submission order (without per-epoch history).
#[utoipa::path(get, path = "/train", tag = "training",
    responses((status = 200, description = "Every job, in submission order", body = JobList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<JobList>, ApiError> {
    let jobs = blocking(move || Ok(state.trainer.list())).await?;
    Ok(Json(JobList { jobs }))
}

/// Every job of one model (`None`: the default model), in submission order.
pub(super) async fn list_of(
    state: AppState,
    model: Option<String>,
) -> Result<Json<JobList>, ApiError> {
    let mut jobs = blocking(move || Ok(state.trainer.list())).await?;
    jobs.retain(|j| j.model == model);
    Ok(Json(JobList { jobs }))
}

/// `GET /train`'s body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct JobList {
    /// In submission order; `history` is left out (ask for one job to see it).
    pub jobs: Vec<JobRecord>,
}

/// `GET /train/{id}`.
#[utoipa::path(get, path = "/train/{id}", tag = "training",
    params(("id" = String, Path, description = "A job id")),
    responses((status = 200, description = "The job", body = JobRecord),
        (status = 404, description = "No such job", body = crate::api::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<JobRecord>, ApiError> {
    blocking(move || {
        state
            .trainer
            .get(&id)
            .ok_or_else(|| ApiError::NotFound(format!("no training job {id}")))
    })
    .await
    .map(Json)
}

/// `DELETE /train/{id}`: cancel (a running job stops within one batch).
#[utoipa::path(delete, path = "/train/{id}", tag = "training",
    params(("id" = String, Path, description = "A job id")),
    responses((status = 200, description = "Cancelled, or cancelling within one batch", body = JobRecord),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such job", body = crate::api::error::ErrorBody),
        (status = 409, description = "The job has already finished", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn cancel(
    _: Authorized,
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<JobRecord>, ApiError> {
    blocking(move || Ok(state.trainer.cancel(&id)?))
        .await
        .map(Json)
}

/// Runs job-table work (it reads, writes and fsyncs records in the store) on
/// the blocking pool, off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("a job-table task failed: {e}")))?
}

fn prepare(state: &AppState, body: Value) -> Result<Submission, ApiError> {
    let bad = |e: String| ApiError::Unprocessable(e);
    let Value::Object(mut fields) = body else {
        return Err(bad(
            "the body must be a JSON object with a \"dataset\"".into()
        ));
    };
    let dataset = fields.remove("dataset");
    // The recipe first: a misspelt `datset` is named as an unknown field.
    let spec: TrainSpec = serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
        let path = e.path().to_string();
        let mut text = e.into_inner().to_string();
        if !path.contains(['.', '[']) {
            // A top-level field: the recipe's are listed, `dataset` is the body's own.
            text = text.replacen("expected one of ", "expected `dataset` or one of ", 1);
        }
        match path.as_str() {
            "." | "?" => bad(text),
            _ => bad(format!("{path}: {text}")),
        }
    })?;
    let dataset = dataset.ok_or_else(|| {
        bad(r#""dataset" is required: {"csv": "<csv text>"}, {"path": "<file in the data directory>"} or {"instances": [[...]], "targets": [...]}"#.into())
    })?;
    spec.validate()?;
    let dataset: DatasetSpec = serde_json::from_value(dataset).map_err(|_| {
        bad(r#"dataset must be {"csv": "<csv text>"}, {"path": "<file in the data directory>"} or {"instances": [[...]], "targets": [...]}"#.into())
    })?;
    let data = match dataset {
        DatasetSpec::Csv(CsvSource { csv }) => DataSource::Csv(csv),
        DatasetSpec::Path(PathSource { path }) => {
            DataSource::File(resolve_data_path(&state.config.training.data_dir, &path)?)
        }
        DatasetSpec::Instances(InstancesSource { instances, targets }) => {
            DataSource::Instances { instances, targets }
        }
    };
    let model_file = match &spec.model {
        ModelChoice::File(name) => Some(
            NetConfig::named(&state.config.training.config_dir, name)
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?,
        ),
        ModelChoice::Mlp(_) | ModelChoice::Sequential(_) => None,
    };
    let input = JobInput {
        spec,
        data,
        model_file,
        windows: Vec::new(),
        newest: None,
        delimiter: None,
    };
    // Every check the worker would make, now: a bad job never reaches the queue.
    let prepared = input.prepare(&Budget::from(&state.config.training))?;
    Ok(Submission {
        task: prepared.data.task,
        task_reason: prepared.data.task_reason.clone(),
        rows: prepared.rows,
        spec: prepared.spec,
        input,
        trigger: None,
        gate: None,
        target: None,
    })
}

/// `path` inside `data_dir`, or a 422: no absolute paths, no `..`, no symlinks out.
fn resolve_data_path(data_dir: &Path, path: &str) -> Result<PathBuf, ApiError> {
    let outside = || {
        ApiError::Unprocessable(format!(
            "dataset path {path:?} must name a file inside the data directory (training.data_dir)"
        ))
    };
    let relative = Path::new(path);
    if path.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(outside());
    }
    let root = data_dir.canonicalize().map_err(|_| {
        ApiError::Unprocessable(format!(
            "the data directory {} does not exist on the server",
            data_dir.display()
        ))
    })?;
    let file = root.join(relative).canonicalize().map_err(|_| {
        ApiError::Unprocessable(format!("no dataset file {path:?} in the data directory"))
    })?;
    if !file.starts_with(&root) || !file.is_file() {
        return Err(outside());
    }
    Ok(file)
}
