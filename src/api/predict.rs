//! `POST /predict`: validate the instances, queue them for a batch, answer with the
//! predictions and the version that computed them.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::instances::Instances;
use super::{ApiError, ApiJson, AppState, MODEL_VERSION_HEADER, auth, deadline};
use crate::batching::Work;
use crate::model::Prediction;
use crate::monitoring::ids::PredictionId;

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
        (status = 429, description = "The queue is full (Retry-After)", body = crate::api::error::ErrorBody),
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
    body: Result<ApiJson<PredictRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let result: Result<Response, ApiError> = async {
        let deadline =
            deadline::deadline(&headers, arrival, state.config.batching.default_timeout())?;
        let ApiJson(body) = body?;
        let top_k = body.top_k;
        if top_k == Some(0) {
            return Err(ApiError::Unprocessable("top_k must be at least 1".into()));
        }
        if top_k.is_some()
            && let Some(model) = state.model.current()
            && model.manifest().net.task == crate::model::Task::Regression
        {
            return Err(ApiError::Unprocessable(format!(
                "top_k ranks class labels; version {} is a regression model (drop top_k)",
                model.version()
            )));
        }
        let (rows, n, width) = validate(&state, body)?;
        let work = Work {
            rows,
            n_rows: n,
            width,
            top_k,
            model: None,
            deadline: deadline.compute_by,
        };
        let (answer, ids) = super::submit::compute(&state, work, deadline).await?;
        let first = ids[..1.min(ids.len())].to_vec();
        tracing::Span::current().record("model_version", &*answer.version);
        let mut response = Json(PredictResponse {
            predictions: answer.predictions,
            prediction_ids: ids,
            model_version: answer.version.to_string(),
        })
        .into_response();
        super::submit::name_prediction(&mut response, &first);
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

/// Checks the instances against the serving model; flattens them (the row limit is
/// the batcher entry's, shared with OIP v2).
fn validate(state: &AppState, body: PredictRequest) -> Result<(Vec<f32>, usize, usize), ApiError> {
    let n = body.instances.rows;
    if n == 0 {
        return Err(ApiError::Unprocessable(
            "\"instances\" must hold at least one row".into(),
        ));
    }
    let model = state
        .model
        .current()
        .ok_or_else(|| ApiError::NotReady("no model is loaded yet".into()))?;
    let width = body.instances.width;
    let values = body.instances.check(&model)?;
    Ok((values, n, width))
}
