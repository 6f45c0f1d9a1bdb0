//! The Open Inference Protocol v2 (KServe / Triton REST), served by the same
//! batching queue and executor as `/predict`, plus Triton's model-config endpoint.
//!
//! One model, named `model.name`; its versions are the store's. An unversioned
//! request gets the active version; a versioned one gets that version, loaded on
//! demand and then kept warm (a few at a time), or 404 if the store lacks it.
//! Inputs: one tensor named `input`, `[N, features]`, FP32/FP64/integers, JSON
//! (flat or nested) or the binary tensor extension. Outputs (always JSON):
//! `output` (FP32 `[N, outputs]`) for regression; `label` (BYTES `[N]`) and
//! `probabilities` (FP32 `[N, classes]`) for classifiers.

pub mod tensor;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::extract::read_limited;
use super::{ApiError, AppState};
use crate::batching::Work;
use crate::model::{LoadedModel, Prediction, Task};
use tensor::{InferRequest, InferResponse, OutputData, OutputTensor};

/// The only input tensor's name.
pub const INPUT: &str = "input";
/// Header of the binary tensor extension: the JSON part's length.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// `GET /v2`: server metadata.
#[utoipa::path(get, path = "/v2", tag = "oip-v2",
    responses((status = 200, description = "Server metadata", body = Object)))]
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "kiln",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_configuration"],
    }))
}

/// `GET /v2/health/live`.
#[utoipa::path(get, path = "/v2/health/live", tag = "oip-v2",
    responses((status = 200, description = "The server is live", body = Object)))]
pub async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

/// `GET /v2/health/ready`.
#[utoipa::path(get, path = "/v2/health/ready", tag = "oip-v2",
    responses((status = 200, description = "Ready", body = Object),
        (status = 503, description = "Loading or shutting down", body = super::error::ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.draining.is_cancelled() || state.model.current().is_none() {
        return Err(ApiError::NotReady("not ready".into()));
    }
    Ok(Json(json!({"ready": true})))
}

/// Resolves the model a path names: the active version, or a stored one.
async fn resolve(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<LoadedModel>, ApiError> {
    if name != state.config.model.name {
        return Err(ApiError::NotFound(format!(
            "no model {name:?}; this server serves {:?}",
            state.config.model.name
        )));
    }
    let active = state
        .model
        .current()
        .ok_or_else(|| ApiError::NotReady("no model is loaded yet".into()))?;
    match version {
        None => Ok(active),
        Some(v) if v == active.version() => Ok(active),
        Some(v) => state.models.get(v).await.map_err(|e| match e {
            crate::registry::ManageError::NotFound(_) => {
                ApiError::NotFound(format!("model {name:?} has no version {v:?}"))
            }
            other => ApiError::from(other),
        }),
    }
}

/// Tensor metadata of the model's outputs.
fn outputs_of(model: &LoadedModel) -> Vec<(&'static str, &'static str, Vec<i64>)> {
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

fn metadata(state: &AppState, model: &LoadedModel) -> Value {
    let versions = state.store.list().unwrap_or_default();
    json!({
        "name": state.config.model.name,
        "versions": versions,
        "platform": "kiln_burn",
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, model.input_width()]}],
        "outputs": outputs_of(model)
            .into_iter()
            .map(|(name, datatype, shape)| json!({"name": name, "datatype": datatype, "shape": shape}))
            .collect::<Vec<_>>(),
    })
}

/// `GET /v2/models/{name}`: model metadata (the active version's tensors).
#[utoipa::path(get, path = "/v2/models/{name}", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name (model.name)")),
    responses((status = 200, description = "Model metadata", body = Object),
        (status = 404, description = "Unknown model", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn model_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let model = resolve(&state, &name, None).await?;
    Ok(Json(metadata(&state, &model)))
}

/// `GET /v2/models/{name}/versions/{version}`.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name"), ("version" = String, Path, description = "A version, e.g. v3")),
    responses((status = 200, description = "Model metadata", body = Object),
        (status = 404, description = "Unknown model or version", body = super::error::ErrorBody),
        (status = 409, description = "The version cannot be loaded", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn version_metadata(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let model = resolve(&state, &name, Some(&version)).await?;
    Ok(Json(metadata(&state, &model)))
}

/// `GET /v2/models/{name}/ready`.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name")),
    responses((status = 200, description = "Ready", body = Object),
        (status = 404, description = "Unknown model", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let model = resolve(&state, &name, None).await?;
    Ok(Json(
        json!({"name": name, "version": model.version(), "ready": true}),
    ))
}

/// `GET /v2/models/{name}/versions/{version}/ready`.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name"), ("version" = String, Path, description = "A version")),
    responses((status = 200, description = "Ready", body = Object),
        (status = 404, description = "Unknown model or version", body = super::error::ErrorBody),
        (status = 409, description = "The version cannot be loaded", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn version_ready(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let model = resolve(&state, &name, Some(&version)).await?;
    Ok(Json(
        json!({"name": name, "version": model.version(), "ready": true}),
    ))
}

/// `GET /v2/models/{name}/config`: Triton's model configuration, for
/// `perf_analyzer` and other Triton tooling.
#[utoipa::path(get, path = "/v2/models/{name}/config", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name")),
    responses((status = 200, description = "Triton model configuration", body = Object),
        (status = 404, description = "Unknown model", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn model_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let model = resolve(&state, &name, None).await?;
    let dims = |shape: &[i64]| shape[1..].to_vec();
    Ok(Json(json!({
        "name": state.config.model.name,
        "platform": "kiln_burn",
        "backend": "kiln",
        "max_batch_size": state.config.batching.max_request_rows,
        "input": [{"name": INPUT, "data_type": "TYPE_FP32", "dims": [model.input_width()]}],
        "output": outputs_of(&model)
            .into_iter()
            .map(|(name, datatype, shape)| json!({
                "name": name,
                "data_type": format!("TYPE_{}", if datatype == "BYTES" { "STRING" } else { datatype }),
                "dims": if shape.len() > 1 { dims(&shape) } else { vec![1] },
            }))
            .collect::<Vec<_>>(),
        "dynamic_batching": {
            "preferred_batch_size": [state.config.batching.max_batch_size],
            "max_queue_delay_microseconds": (state.config.batching.max_queue_delay_ms * 1000.0) as u64,
        },
    })))
}

/// `POST /v2/models/{name}/infer`.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name")),
    request_body = InferRequest,
    responses((status = 200, description = "Outputs", body = InferResponse),
        (status = 400, description = "A malformed request or tensor", body = super::error::ErrorBody),
        (status = 404, description = "Unknown model", body = super::error::ErrorBody),
        (status = 413, description = "Too large", body = super::error::ErrorBody),
        (status = 429, description = "The queue is full", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn infer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<impl IntoResponse, ApiError> {
    run_infer(state, name, None, req).await
}

/// `POST /v2/models/{name}/versions/{version}/infer`.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name"), ("version" = String, Path, description = "A version")),
    request_body = InferRequest,
    responses((status = 200, description = "Outputs", body = InferResponse),
        (status = 400, description = "A malformed request or tensor", body = super::error::ErrorBody),
        (status = 404, description = "Unknown model or version", body = super::error::ErrorBody),
        (status = 409, description = "The version cannot be loaded", body = super::error::ErrorBody),
        (status = 413, description = "Too large", body = super::error::ErrorBody),
        (status = 429, description = "The queue is full", body = super::error::ErrorBody),
        (status = 503, description = "Not ready", body = super::error::ErrorBody)))]
pub async fn infer_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    req: Request,
) -> Result<impl IntoResponse, ApiError> {
    run_infer(state, name, Some(version), req).await
}

async fn run_infer(
    state: AppState,
    name: String,
    version: Option<String>,
    req: Request,
) -> Result<(StatusCode, Json<InferResponse>), ApiError> {
    super::auth::check_predict(req.headers(), &state)?;
    let model = resolve(&state, &name, version.as_deref()).await?;
    let header_length = header_length(req.headers())?;
    let body = read_limited(req, state.config.server.max_body_bytes).await?;
    let (json_part, mut binary) = match header_length {
        Some(n) if n <= body.len() => (&body[..n], &body[n..]),
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "{HEADER_LENGTH} is {n} but the body has {} bytes",
                body.len()
            )));
        }
        None => (&body[..], &[][..]),
    };
    let request: InferRequest = serde_json::from_slice(json_part)
        .map_err(|e| ApiError::BadRequest(format!("invalid inference request: {e}")))?;

    let [input] = request.inputs.as_slice() else {
        return Err(ApiError::BadRequest(format!(
            "expected exactly one input ({INPUT:?}), got {}",
            request.inputs.len()
        )));
    };
    if input.name != INPUT {
        return Err(ApiError::BadRequest(format!(
            "unknown input {:?}; the model's input is {INPUT:?}",
            input.name
        )));
    }
    let binary_size = input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
        .map(|v| {
            v.as_u64().map(|n| n as usize).ok_or_else(|| {
                ApiError::BadRequest("binary_data_size must be a non-negative integer".into())
            })
        })
        .transpose()?;
    let input_bytes = match binary_size {
        Some(n) if n <= binary.len() => {
            let (mine, rest) = binary.split_at(n);
            binary = rest;
            Some(mine)
        }
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "binary_data_size is {n} but only {} bytes follow the header",
                binary.len()
            )));
        }
        None => None,
    };
    if !binary.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{} unclaimed bytes after the inputs",
            binary.len()
        )));
    }
    let rows =
        tensor::rows(input, model.input_width(), input_bytes).map_err(ApiError::BadRequest)?;

    let available = outputs_of(&model);
    let wanted: Vec<&str> = match &request.outputs {
        None => available.iter().map(|o| o.0).collect(),
        Some(outputs) => outputs
            .iter()
            .map(|o| {
                available
                    .iter()
                    .find(|a| a.0 == o.name)
                    .map(|a| a.0)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "unknown output {:?}; the model has {:?}",
                            o.name,
                            available.iter().map(|a| a.0).collect::<Vec<_>>()
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let limit = state.config.batching.max_request_rows;
    if rows.n > limit {
        return Err(ApiError::TooLarge(format!(
            "{} rows in one request; the limit is {limit} (batching.max_request_rows)",
            rows.n
        )));
    }
    let pinned = version.is_some().then(|| model.clone());
    let answer = state.batcher.submit(Work {
        rows: rows.values,
        n_rows: rows.n,
        width: model.input_width(),
        top_k: None,
        model: pinned,
    })?;
    let answer = answer
        .await
        .map_err(|_| ApiError::NotReady("the server is shutting down".into()))??;
    let outputs = wanted
        .into_iter()
        .map(|name| output_tensor(name, &answer.predictions, model.output_width()))
        .collect();
    Ok((
        StatusCode::OK,
        Json(InferResponse {
            model_name: name,
            model_version: answer.version.to_string(),
            id: request.id,
            outputs,
        }),
    ))
}

fn header_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    headers
        .get(HEADER_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("{HEADER_LENGTH} must be a byte count"))
                })
        })
        .transpose()
}

/// Builds one output tensor from the interpreted predictions.
fn output_tensor(name: &str, predictions: &[Prediction], width: usize) -> OutputTensor {
    let n = predictions.len();
    match name {
        "label" => OutputTensor {
            name: name.into(),
            datatype: "BYTES",
            shape: vec![n],
            data: OutputData::Strings(
                predictions
                    .iter()
                    .map(|p| match p {
                        Prediction::Class { label, .. } => label.clone(),
                        _ => String::new(),
                    })
                    .collect(),
            ),
        },
        _ => OutputTensor {
            name: name.into(),
            datatype: "FP32",
            shape: vec![n, width],
            data: OutputData::Floats(
                predictions
                    .iter()
                    .flat_map(|p| match p {
                        Prediction::Value(v) => vec![*v],
                        Prediction::Values(v) => v.clone(),
                        Prediction::Class { probabilities, .. } => {
                            probabilities.0.iter().map(|(_, p)| *p).collect()
                        }
                    })
                    .collect(),
            ),
        },
    }
}
