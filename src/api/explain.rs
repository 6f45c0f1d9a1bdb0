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

/// What `/explain` answers (the default model's route and named models').
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes the OpenAPI responses; never built
pub enum ExplainAnswers {
    /// One explanation per instance
    #[response(status = 200, headers(("x-model-version" = String, description = "The version explained")))]
    Explained(ExplainResponse),
    /// Not valid JSON
    #[response(status = 400)]
    NotJson(crate::api::error::ErrorBody),
    /// auth.protect_predict is on and the token is missing or wrong
    #[response(status = 401)]
    Unauthorized(crate::api::error::ErrorBody),
    /// No such model (`/models/{name}/explain`)
    #[response(status = 404)]
    NotFound(crate::api::error::ErrorBody),
    /// More instances than explain.max_rows
    #[response(status = 413)]
    TooLarge(crate::api::error::ErrorBody),
    /// Not JSON
    #[response(status = 415)]
    NotJsonType(crate::api::error::ErrorBody),
    /// Wrong widths, a bad baseline, target or steps, or a model whose inputs are ids
    #[response(status = 422)]
    Unprocessable(crate::api::error::ErrorBody),
    /// Too many explanations waiting (Retry-After)
    #[response(status = 429)]
    Busy(crate::api::error::ErrorBody),
    /// Loading or shutting down
    #[response(status = 503)]
    NotReady(crate::api::error::ErrorBody),
}

/// Explains each instance's prediction.
#[utoipa::path(post, path = "/explain", tag = "predict",
    request_body = ExplainRequest,
    responses(ExplainAnswers),
    security((), ("bearer" = [])))]
pub async fn explain(
    _: auth::PredictAuthorized,
    State(state): State<AppState>,
    body: Result<ApiJson<ExplainRequest>, ApiError>,
) -> Result<Response, ApiError> {
    explain_with(&state.inference, body).await
}

/// `/explain` for the model `inference` serves.
pub async fn explain_with(
    inference: &crate::serving::infer::Inference,
    body: Result<ApiJson<ExplainRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(body) = body?;
    let Explained {
        version,
        explanations,
    } = inference
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
