//! `POST /predict`: validate the instances, queue them for a batch, answer with the
//! predictions and the version that computed them.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, AppState, MODEL_VERSION_HEADER, auth};
use crate::batching::Work;
use crate::model::Prediction;

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// One row of features per instance.
    #[schema(value_type = Vec<Vec<f32>>)]
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
    pub model_version: String,
}

/// Predicts one answer per instance through the batching queue.
#[utoipa::path(post, path = "/predict", tag = "predict",
    request_body = PredictRequest,
    responses(
        (status = 200, description = "One prediction per instance", body = PredictResponse,
            headers(("x-model-version" = String, description = "The version that computed the answer"))),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.protect_predict is on and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 413, description = "Body or instance count over its limit", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "Valid JSON with the wrong content", body = crate::api::error::ErrorBody),
        (status = 429, description = "The queue is full (Retry-After)", body = crate::api::error::ErrorBody),
        (status = 503, description = "Loading or shutting down", body = crate::api::error::ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn predict(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<PredictRequest>, ApiError>,
) -> Result<Response, ApiError> {
    auth::check_predict(&headers, &state)?;
    let result: Result<Response, ApiError> = async {
        let ApiJson(body) = body?;
        let top_k = body.top_k;
        if top_k == Some(0) {
            return Err(ApiError::Unprocessable("top_k must be at least 1".into()));
        }
        let (rows, n, width) = validate(&state, body)?;
        let answer = state.batcher.submit(Work {
            rows,
            n_rows: n,
            width,
            top_k,
            model: None,
        })?;
        let answer = answer
            .await
            .map_err(|_| ApiError::NotReady("the server is shutting down".into()))??;
        tracing::Span::current().record("model_version", &*answer.version);
        let mut response = Json(PredictResponse {
            predictions: answer.predictions,
            model_version: answer.version.to_string(),
        })
        .into_response();
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

/// Checks the instances against the limits and the serving model; flattens them.
fn validate(state: &AppState, body: PredictRequest) -> Result<(Vec<f32>, usize, usize), ApiError> {
    let Instances {
        values,
        rows: n,
        width,
    } = body.instances;
    if n == 0 {
        return Err(ApiError::Unprocessable(
            "\"instances\" must hold at least one row".into(),
        ));
    }
    let limit = state.config.batching.max_request_rows;
    if n > limit {
        return Err(ApiError::TooLarge(format!(
            "{n} instances in one request; the limit is {limit} (batching.max_request_rows)"
        )));
    }
    let model = state
        .model
        .current()
        .ok_or_else(|| ApiError::NotReady("no model is loaded yet".into()))?;
    if width != model.input_width() {
        return Err(ApiError::Unprocessable(format!(
            "instances have {width} features; model version {} expects {}",
            model.version(),
            model.input_width()
        )));
    }
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(ApiError::Unprocessable(format!(
            "instance {}, feature {} is not a finite number",
            k / width,
            k % width
        )));
    }
    Ok((values, n, width))
}

/// `instances`, parsed straight into one row-major buffer (no `Vec` per row):
/// rows must all have the same width.
#[derive(Debug, Default)]
pub struct Instances {
    pub values: Vec<f32>,
    pub rows: usize,
    pub width: usize,
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};

        /// One row, appended to the shared buffer; yields its length.
        struct Row<'a>(&'a mut Vec<f32>);
        impl<'de> DeserializeSeed<'de> for Row<'_> {
            type Value = usize;
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
                d.deserialize_seq(self)
            }
        }
        impl<'de> Visitor<'de> for Row<'_> {
            type Value = usize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of numbers (one instance)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
                let mut n = 0;
                while let Some(v) = seq.next_element::<f32>()? {
                    self.0.push(v);
                    n += 1;
                }
                Ok(n)
            }
        }

        struct Rows;
        impl<'de> Visitor<'de> for Rows {
            type Value = Instances;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of instances, each an array of numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Instances, A::Error> {
                let mut out = Instances::default();
                while let Some(n) = seq.next_element_seed(Row(&mut out.values))? {
                    if out.rows == 0 {
                        out.width = n;
                    } else if n != out.width {
                        return Err(A::Error::custom(format!(
                            "instance {} has {n} features, instance 0 has {}",
                            out.rows, out.width
                        )));
                    }
                    out.rows += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Rows)
    }
}
