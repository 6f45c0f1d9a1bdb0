//! `POST /v2/models/{name}[/versions/{version}]/infer`: one request through the
//! batching queue, JSON or binary tensors in, JSON tensors out.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::tensor::{
    self, InferRequest, InferResponse, OutputData, OutputTensor, ResponseParameters,
};
use super::{INPUT, outputs_of, resolve};
use crate::api::extract::read_limited;
use crate::api::{ApiError, AppState, deadline};
use crate::model::Prediction;
use crate::monitoring::ids::PredictionId;
use crate::quote::quoted;
use crate::serving::infer::{InferError, Predicted, Query, Rows};

/// Header of the binary tensor extension: the JSON part's length.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// `POST /v2/models/{name}/infer`.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "oip-v2",
    params(("name" = String, Path, description = "The model name")),
    request_body = InferRequest,
    responses((status = 200, description = "Outputs", body = InferResponse),
        (status = 400, description = "A malformed request or tensor", body = crate::api::error::ErrorBody),
        (status = 404, description = "Unknown model", body = crate::api::error::ErrorBody),
        (status = 413, description = "Too large", body = crate::api::error::ErrorBody),
        (status = 429, description = "The queue is full, or the request waited 100 ms to be read (Retry-After)", body = crate::api::error::ErrorBody),
        (status = 503, description = "Not ready", body = crate::api::error::ErrorBody)))]
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
        (status = 400, description = "A malformed request or tensor", body = crate::api::error::ErrorBody),
        (status = 404, description = "Unknown model or version", body = crate::api::error::ErrorBody),
        (status = 409, description = "The version cannot be loaded", body = crate::api::error::ErrorBody),
        (status = 413, description = "Too large", body = crate::api::error::ErrorBody),
        (status = 429, description = "The queue is full, or the request waited 100 ms to be read (Retry-After)", body = crate::api::error::ErrorBody),
        (status = 503, description = "Not ready", body = crate::api::error::ErrorBody)))]
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
) -> Result<Response, ApiError> {
    let result = infer_inner(&state, name, version, req).await;
    match result {
        Ok((status, served_by, first, body)) => {
            let mut response = (status, body).into_response();
            crate::api::predict::name_prediction(&mut response, first);
            if let Ok(v) = HeaderValue::from_str(&served_by) {
                response
                    .headers_mut()
                    .insert(crate::api::MODEL_VERSION_HEADER, v);
            }
            Ok(response)
        }
        Err(e) => {
            if let Some(reason) = e.reject_reason() {
                state.metrics.reject(reason, 1);
            }
            Err(e)
        }
    }
}

async fn infer_inner(
    state: &AppState,
    name: String,
    version: Option<String>,
    req: Request,
) -> Result<
    (
        StatusCode,
        String,
        Option<PredictionId>,
        Json<InferResponse>,
    ),
    ApiError,
> {
    crate::api::auth::check_predict(req.headers(), state)?;
    let mut _serving = None;
    if let Some(bundle) = state.bundle(&name) {
        let arrival = req
            .extensions()
            .get::<deadline::Arrival>()
            .copied()
            .unwrap_or(deadline::Arrival(tokio::time::Instant::now()));
        _serving = crate::api::loading::loaded_for(state, &bundle, req.headers(), arrival).await?;
    }
    let (bundle, model) = resolve(state, &name, version.as_deref()).await?;
    let header_length = header_length(req.headers())?;
    // As on /predict: no type is read as JSON, a declared one must be JSON (or
    // octet-stream, with binary tensors after a JSON header).
    if let Some(declared) = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !crate::api::extract::is_json(t) && !t.starts_with("application/octet-stream"))
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body is declared as {declared:?}; send JSON (Content-Type: application/json, or none), or application/octet-stream with {HEADER_LENGTH}"
        )));
    }
    let headers = req.headers().clone();
    let arrival = req
        .extensions()
        .get::<deadline::Arrival>()
        .copied()
        .unwrap_or(deadline::Arrival(tokio::time::Instant::now()));
    let inside =
        crate::api::door::read_at_door(&bundle.inference, &state.config.server, req, |r| {
            read_limited(r, &state.config.server)
        })
        .await?;
    let body = &inside.bytes;
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
    if let Some(body_name) = request.model_name.as_deref().filter(|n| !n.is_empty())
        && body_name != name
    {
        return Err(ApiError::BadRequest(format!(
            "the body names model {}, the URL {}",
            quoted(body_name),
            quoted(&name)
        )));
    }
    if let Some(body_version) = request.model_version.as_deref().filter(|v| !v.is_empty())
        && Some(body_version) != version.as_deref()
    {
        return Err(ApiError::BadRequest(match &version {
            Some(v) => format!(
                "the body names version {}, the URL {}",
                quoted(body_version),
                quoted(v)
            ),
            None => format!(
                "the body names version {}; pin a version with /v2/models/{name}/versions/<version>/infer",
                quoted(body_version)
            ),
        }));
    }
    let timeout = deadline::v2_timeout(request.parameters.as_ref())?
        .unwrap_or_else(|| bundle.inference.limits().default_timeout);
    let deadline = deadline::deadline(&headers, arrival, timeout)?;

    let [input] = request.inputs.as_slice() else {
        return Err(ApiError::BadRequest(format!(
            "expected exactly one input ({INPUT:?}), got {}",
            request.inputs.len()
        )));
    };
    if input.name != INPUT {
        return Err(ApiError::BadRequest(format!(
            "unknown input {}; the model's input is {INPUT:?}",
            quoted(&input.name)
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
    let rows = tensor::rows(input, &model.manifest().net.input_shape(), input_bytes)?;
    // Decoded: the door is free for the next body.
    drop(inside);

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
                            "unknown output {}; the model has {:?}",
                            quoted(&o.name),
                            available.iter().map(|a| a.0).collect::<Vec<_>>()
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let width = model.input_width();
    let query = Query {
        rows: Rows {
            values: rows.values,
            n: rows.n,
            width,
            shape: Vec::new(),
        },
        top_k: None,
        pinned: version.is_some().then(|| model.clone()),
        deadline,
    };
    // A value outside the computing version's domain is a malformed tensor by
    // the protocol: 400.
    let Predicted { answer, ids } = bundle.inference.predict(query).await.map_err(|e| match e {
        InferError::Invalid(e) => ApiError::BadRequest(format!("input {INPUT:?}: {e}")),
        other => other.into(),
    })?;
    // The answer is shaped by the version that computed it: a promotion between
    // admission and compute changes names, shapes and labels with it.
    let computed = &answer.model;
    let names = outputs_of(computed);
    let width = computed.output_width();
    let outputs = match &request.outputs {
        None => names
            .iter()
            .map(|n| output_tensor(n.0, &answer.predictions, width))
            .collect(),
        Some(_) => wanted
            .into_iter()
            .map(|wanted| {
                let name = names.iter().find(|n| n.0 == wanted).ok_or_else(|| {
                    ApiError::Conflict(format!(
                        "version {} answered, which has no output {wanted:?}; retry",
                        answer.version
                    ))
                })?;
                Ok(output_tensor(name.0, &answer.predictions, width))
            })
            .collect::<Result<Vec<_>, ApiError>>()?,
    };
    Ok((
        StatusCode::OK,
        answer.version.to_string(),
        ids.first().copied(),
        Json(InferResponse {
            model_name: name,
            model_version: answer.version.to_string(),
            id: request.id,
            parameters: ResponseParameters {
                prediction_ids: ids,
            },
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
