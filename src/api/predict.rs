//! `POST /predict`: parse the instances, ask the inference service, answer with the
//! predictions, their ids and the version that computed them.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::instances::Instances;
use super::{ApiError, ApiJson, AppState, MODEL_VERSION_HEADER, auth, deadline};
use crate::model::Prediction;
use crate::monitoring::ids::PredictionId;
use crate::serving::infer::{Predicted, Query};

/// The header naming a request's first prediction id.
pub const PREDICTION_ID_HEADER: &str = "x-prediction-id";

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// One row of values per instance: flat, or nested in the model's input shape.
    /// At least one, at most `batching.max_request_rows`.
    #[schema(value_type = Vec<Vec<f32>>, min_items = 1)]
    pub instances: Instances,
    /// Classifiers also list this many most likely labels per instance.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub top_k: Option<usize>,
}

/// The response body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PredictResponse {
    pub predictions: Vec<Prediction>,
    /// One id per instance, in order: what `POST /feedback` labels.
    #[schema(value_type = Vec<String>)]
    pub prediction_ids: Vec<PredictionId>,
    pub model_version: String,
}

/// Predicts one answer per instance through the batching queue.
#[utoipa::path(post, path = "/predict", tag = "predict",
    request_body = PredictRequest,
    responses(
        (status = 200, description = "One prediction per instance", body = PredictResponse,
            headers(("x-model-version" = String, description = "The version that computed the answer"),
                ("x-prediction-id" = String, description = "The first instance's prediction id"))),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.protect_predict is on and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 413, description = "Body or instance count over its limit", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "Valid JSON with the wrong content", body = crate::api::error::ErrorBody),
        (status = 429, description = "The queue is full, or the request waited 100 ms to be read (Retry-After)", body = crate::api::error::ErrorBody),
        (status = 503, description = "Loading or shutting down", body = crate::api::error::ErrorBody),
        (status = 504, description = "The deadline (x-kiln-timeout-ms, else batching.default_timeout_ms) passed first", body = crate::api::error::ErrorBody),
    ),
    params(("x-kiln-timeout-ms" = Option<u64>, Header, nullable = false, minimum = 1, maximum = 3_600_000,
        description = "Answer within this many milliseconds or 504")),
    security((), ("bearer" = [])))]
pub async fn predict(
    _: auth::PredictAuthorized,
    State(state): State<AppState>,
    Extension(arrival): Extension<deadline::Arrival>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let body = admitted_body(&state, &state.inference, request).await;
    respond(&state, &state.inference, arrival, &headers, body).await
}

/// The body of a prediction request for the model `inference` serves, read and
/// parsed at the model's door ([`super::door`]).
pub async fn admitted_body(
    state: &AppState,
    inference: &crate::serving::infer::Inference,
    request: Request,
) -> Result<ApiJson<PredictRequest>, ApiError> {
    let inside = super::door::read_at_door(inference, &state.config.server, request, |r| {
        super::extract::read_json(r, state)
    })
    .await?;
    super::extract::parse_json(&inside.bytes).map(ApiJson)
}

/// `/predict` for the model `inference` serves.
pub async fn respond(
    state: &AppState,
    inference: &crate::serving::infer::Inference,
    arrival: deadline::Arrival,
    headers: &HeaderMap,
    body: Result<ApiJson<PredictRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let result: Result<Response, ApiError> = async {
        let deadline = deadline::deadline(headers, arrival, inference.limits().default_timeout)?;
        let ApiJson(body) = body?;
        let query = Query {
            rows: body.instances.into(),
            top_k: body.top_k,
            pinned: None,
            deadline,
        };
        let Predicted { answer, ids } = inference.predict(query).await?;
        let first = ids.first().copied();
        tracing::Span::current().record("model_version", &*answer.version);
        let mut response = Json(PredictResponse {
            predictions: answer.predictions,
            prediction_ids: ids,
            model_version: answer.version.to_string(),
        })
        .into_response();
        name_prediction(&mut response, first);
        if let Ok(v) = HeaderValue::from_str(&answer.version) {
            response.headers_mut().insert(MODEL_VERSION_HEADER, v);
        }
        Ok(response)
    }
    .await;
    if let Err(e) = &result
        && let Some(reason) = e.reject_reason()
    {
        state.metrics.reject(reason, 1);
    }
    result
}

/// Names the request's first prediction id in `response`'s headers.
pub fn name_prediction(response: &mut Response, first: Option<PredictionId>) {
    if let Some(v) = first.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response.headers_mut().insert(PREDICTION_ID_HEADER, v);
    }
}
