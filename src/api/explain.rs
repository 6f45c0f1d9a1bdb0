//! `POST /explain`: which input values drove each prediction, by the version that
//! serves (gradient x input, or integrated gradients), computed on the explainer
//! thread.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::instances::Instances;
use super::{ApiError, ApiJson, AppState, MODEL_VERSION_HEADER, auth};
use crate::model::explain::{Explanation, Method};
use crate::serving::infer::{ExplainQuery, Explained};

fn default_steps() -> usize {
    32
}

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// Instances as for `/predict` (flat, or nested in the model's input shape);
    /// at least one, at most `explain.max_rows`.
    #[schema(value_type = Vec<Vec<f32>>, min_items = 1)]
    pub instances: Instances,
    pub method: Method,
    /// Gauss-Legendre nodes `integrated_gradients` starts from (default 32);
    /// they double while the integration error is over 0.5% of
    /// `max(|output - baseline_output|, |output|, |baseline_output|)`, up to
    /// `explain.max_steps`.
    #[serde(default = "default_steps")]
    #[schema(minimum = 1)]
    pub steps: usize,
    /// The reference input, one raw value per input (default: the training
    /// mean, or zeros for a model without standardization).
    #[serde(default)]
    pub baseline: Option<Vec<f32>>,
    /// The class to explain (classifiers; default: the predicted one), or the
    /// output index (multi-output regression; default 0).
    #[serde(default)]
    pub target: Option<String>,
}

/// The response body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExplainResponse {
    pub explanations: Vec<Explanation>,
    pub model_version: String,
}

/// Explains each instance's prediction.
#[utoipa::path(post, path = "/explain", tag = "predict",
    request_body = ExplainRequest,
    responses(
        (status = 200, description = "One explanation per instance", body = ExplainResponse,
            headers(("x-model-version" = String, description = "The version explained"))),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.protect_predict is on and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 413, description = "More instances than explain.max_rows", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "Wrong widths, a bad baseline, target or steps, or a model whose inputs are ids", body = crate::api::error::ErrorBody),
        (status = 429, description = "Too many explanations waiting (Retry-After)", body = crate::api::error::ErrorBody),
        (status = 503, description = "Loading or shutting down", body = crate::api::error::ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn explain(
    _: auth::PredictAuthorized,
    State(state): State<AppState>,
    body: Result<ApiJson<ExplainRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(body) = body?;
    let Explained {
        version,
        explanations,
    } = state
        .inference
        .explain(ExplainQuery {
            rows: body.instances.into(),
            method: body.method,
            steps: body.steps,
            baseline: body.baseline,
            target: body.target,
        })
        .await?;
    let mut response = Json(ExplainResponse {
        explanations,
        model_version: version.clone(),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&version) {
        response.headers_mut().insert(MODEL_VERSION_HEADER, v);
    }
    Ok(response)
}
