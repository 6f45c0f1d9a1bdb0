//! The Open Inference Protocol v2 (KServe / Triton REST), served by the same
//! batching queue and executor as `/predict`, plus Triton's model-config endpoint.
//!
//! One model, named `model.name`; its versions are the store's. An unversioned
//! request gets the active version; a versioned one gets that version, loaded on
//! demand and then kept warm (a few at a time), or 404 if the store lacks it.
//! Inputs: one tensor named `input`, `[N, ..input_shape]` (or `[N, values]` flat),
//! FP32/FP64/integers, JSON (flat or nested) or the binary tensor extension. Outputs (always JSON):
//! `output` (FP32 `[N, outputs]`) for regression; `label` (BYTES `[N]`) and
//! `probabilities` (FP32 `[N, classes]`) for classifiers.

mod infer;
mod schema;
pub mod tensor;

pub use infer::{__path_infer, __path_infer_version, infer, infer_version};
pub use schema::*;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use super::{ApiError, AppState};
use crate::model::{LoadedModel, Task};
use crate::serving::bundle::Bundle;

/// The only input tensor's name.
pub const INPUT: &str = "input";

/// `GET /v2`: server metadata.
#[utoipa::path(get, path = "/v2", tag = "oip-v2",
    responses((status = 200, description = "Server metadata", body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "kiln",
        version: env!("CARGO_PKG_VERSION"),
        extensions: &["binary_tensor_data", "model_configuration"],
    })
}

/// `GET /v2/health/live`.
#[utoipa::path(get, path = "/v2/health/live", tag = "oip-v2",
    responses((status = 200, description = "The server is live", body = ServerLive)))]
pub async fn live() -> Json<ServerLive> {
    Json(ServerLive { live: true })
}

/// `GET /v2/health/ready`.
#[utoipa::path(get, path = "/v2/health/ready", tag = "oip-v2",
    responses((status = 200, description = "Ready", body = ServerReady),
        (status = 503, description = "Loading or shutting down", body = super::error::ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<ServerReady>, ApiError> {
    if state.draining.is_cancelled() || state.model.current().is_none() {
        return Err(ApiError::NotReady("not ready".into()));
    }
    Ok(Json(ServerReady { ready: true }))
}

/// Resolves the model a path names: the active version, or a stored one.
pub(super) async fn resolve(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<(Arc<Bundle>, Arc<LoadedModel>), ApiError> {
    let Some(bundle) = state.bundle(name) else {
        return Err(ApiError::NotFound(format!(
            "no model {}; this server serves {:?} and the models `POST /v2/repository/index` lists",
            crate::quote::quoted(name),
            state.config.model.name
        )));
    };
    let active = bundle
        .model
        .current()
        .ok_or_else(|| ApiError::NotReady("no model is loaded yet".into()))?;
    // Triton's clients number versions (`model_version="3"`); kiln names them `v3`.
    let numbered = version
        .filter(|v| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| format!("v{}", v.trim_start_matches('0')));
    let version = numbered.as_deref().or(version);
    let model = match version {
        None => Ok(active),
        Some(v) if v == active.version() => Ok(active),
        Some(v) => bundle.models.get(v).await.map_err(|e| match e {
            crate::serving::ManageError::NotFound(_) => ApiError::NotFound(format!(
                "model {name:?} has no version {}",
                crate::quote::quoted(v)
            )),
            other => ApiError::from(other),
        }),
    }?;
    Ok((bundle, model))
}

/// Tensor metadata of the model's outputs.
pub(super) fn outputs_of(model: &LoadedModel) -> Vec<(&'static str, &'static str, Vec<i64>)> {
    match model.manifest().net.task {
        Task::Regression => vec![("output", "FP32", vec![-1, model.output_width() as i64])],
        Task::Classification => vec![
            ("label", "BYTES", vec![-1]),
            (
                "probabilities",
                "FP32",
                vec![-1, model.output_width() as i64],
            ),
        ],
    }
}

/// The input tensor's dimensions: `[-1, ..input_shape]` with the batch, or the
/// instance shape alone (Triton's `dims`).
fn input_dims(model: &LoadedModel, batch: bool) -> Vec<i64> {
    let shape = model.manifest().net.input_shape();
    batch
        .then_some(-1)
        .into_iter()
        .chain(shape.iter().map(|d| *d as i64))
        .collect()
}

async fn metadata(bundle: &Bundle, model: &LoadedModel) -> ModelMetadata {
    // A listing is a request to the store (a bucket, perhaps): off the workers.
    let store = bundle.store.clone();
    let versions = tokio::task::spawn_blocking(move || store.list().unwrap_or_default())
        .await
        .unwrap_or_default();
    ModelMetadata {
        name: bundle.name.clone(),
        versions,
        platform: "kiln_burn",
        inputs: vec![TensorMetadata {
            name: INPUT,
            datatype: "FP32",
            shape: input_dims(model, true),
        }],
        outputs: outputs_of(model)
            .into_iter()
            .map(|(name, datatype, shape)| TensorMetadata {
                name,
                datatype,
                shape,
            })
            .collect(),
    }
}

/// `GET /v2/models/{name}`: model metadata (the active version's tensors).
#[utoipa::path(get, path = "/v2/models/{name}", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name (model.name)")),
    responses((status = 200, description = "Model metadata", body = ModelMetadata),
        (status = 404, description = "Unknown model", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn model_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let (bundle, model) = resolve(&state, &name, None).await?;
    Ok(Json(metadata(&bundle, &model).await))
}

/// `GET /v2/models/{name}/versions/{version}`.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name"), ("version" = String, Path, description = "A version, e.g. v3")),
    responses((status = 200, description = "Model metadata", body = ModelMetadata),
        (status = 401, description = "auth.protect_predict is on and the token is missing or wrong (these load a version on demand)", body = super::error::ErrorBody),
        (status = 404, description = "Unknown model or version", body = super::error::ErrorBody),
        (status = 409, description = "The version cannot be loaded", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn version_metadata(
    _: crate::api::auth::PredictAuthorized,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let (bundle, model) = resolve(&state, &name, Some(&version)).await?;
    Ok(Json(metadata(&bundle, &model).await))
}

/// `GET /v2/models/{name}/ready`.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name")),
    responses((status = 200, description = "Ready", body = ModelReady),
        (status = 404, description = "Unknown model", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelReady>, ApiError> {
    let (_, model) = resolve(&state, &name, None).await?;
    Ok(Json(ModelReady {
        name,
        version: model.version().to_owned(),
        ready: true,
    }))
}

/// `GET /v2/models/{name}/versions/{version}/ready`.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name"), ("version" = String, Path, description = "A version")),
    responses((status = 200, description = "Ready", body = ModelReady),
        (status = 401, description = "auth.protect_predict is on and the token is missing or wrong (these load a version on demand)", body = super::error::ErrorBody),
        (status = 404, description = "Unknown model or version", body = super::error::ErrorBody),
        (status = 409, description = "The version cannot be loaded", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn version_ready(
    _: crate::api::auth::PredictAuthorized,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelReady>, ApiError> {
    let (_, model) = resolve(&state, &name, Some(&version)).await?;
    Ok(Json(ModelReady {
        name,
        version: model.version().to_owned(),
        ready: true,
    }))
}

/// `GET /v2/models/{name}/config`: Triton's model configuration, for
/// `perf_analyzer` and other Triton tooling.
#[utoipa::path(get, path = "/v2/models/{name}/config", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name")),
    responses((status = 200, description = "Triton model configuration", body = TritonConfig),
        (status = 404, description = "Unknown model", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn model_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TritonConfig>, ApiError> {
    let (bundle, model) = resolve(&state, &name, None).await?;
    let batching = &state.config.batching;
    Ok(Json(TritonConfig {
        name: bundle.name.clone(),
        platform: "kiln_burn",
        backend: "kiln",
        max_batch_size: batching.max_request_rows,
        input: vec![TritonTensor {
            name: INPUT,
            data_type: "TYPE_FP32",
            dims: input_dims(&model, false),
            reshape: None,
        }],
        output: outputs_of(&model)
            .into_iter()
            .map(|(name, datatype, shape)| TritonTensor {
                name,
                data_type: if datatype == "BYTES" {
                    "TYPE_STRING"
                } else {
                    "TYPE_FP32"
                },
                dims: if shape.len() > 1 {
                    shape[1..].to_vec()
                } else {
                    vec![1]
                },
                reshape: (shape.len() == 1).then(|| Reshape { shape: Vec::new() }),
            })
            .collect(),
        dynamic_batching: DynamicBatching {
            preferred_batch_size: vec![batching.max_batch_size],
            max_queue_delay_microseconds: (batching.max_queue_delay_ms * 1000.0) as u64,
        },
    }))
}
