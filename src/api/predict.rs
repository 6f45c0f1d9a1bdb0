//! `POST /predict`: validate the instances, queue them for a batch, answer with the
//! predictions and the version that computed them.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, AppState, MODEL_VERSION_HEADER, auth, deadline};
use crate::batching::Work;
use crate::model::{LoadedModel, Prediction};
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

/// Deepest nesting of one instance (its shape has at most 3 dimensions).
const MAX_DEPTH: usize = 4;

/// `instances`, parsed straight into one row-major buffer (no `Vec` per row). Each
/// instance is a flat array, or arrays nested in the instance's shape; all
/// instances must have the same shape.
#[derive(Debug, Default)]
pub struct Instances {
    pub values: Vec<f32>,
    pub rows: usize,
    /// Values per instance.
    pub width: usize,
    /// The instances' shape as sent (`[width]` when flat).
    pub shape: Vec<usize>,
}

impl Instances {
    /// Checks the instances against `model` (width, nesting, input domain) and
    /// returns their values.
    pub fn check(self, model: &LoadedModel) -> Result<Vec<f32>, ApiError> {
        let input_shape = model.manifest().net.input_shape();
        if self.width != model.input_width() {
            return Err(ApiError::Unprocessable(format!(
                "instances have {} values; model version {} expects {} (input shape {input_shape:?})",
                self.width,
                model.version(),
                model.input_width()
            )));
        }
        if self.shape.len() > 1 && self.shape != input_shape {
            return Err(ApiError::Unprocessable(format!(
                "instances are nested as {:?}; model version {} takes {input_shape:?} (or flat arrays of {})",
                self.shape,
                model.version(),
                model.input_width()
            )));
        }
        model
            .check_values(&self.values)
            .map_err(ApiError::Unprocessable)?;
        Ok(self.values)
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};

        /// One value (a number or nested arrays), appended to the shared buffer;
        /// yields its shape.
        struct Nested<'a> {
            out: &'a mut Vec<f32>,
            depth: usize,
        }
        impl<'de> DeserializeSeed<'de> for Nested<'_> {
            type Value = Vec<usize>;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Vec<usize>, D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for Nested<'_> {
            type Value = Vec<usize>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, or an array of numbers (one instance)")
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Vec<usize>, E> {
                self.out.push(v as f32);
                Ok(Vec::new())
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Vec<usize>, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Vec<usize>, E> {
                self.visit_f64(v as f64)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<usize>, A::Error> {
                if self.depth > MAX_DEPTH {
                    return Err(A::Error::custom(format!(
                        "an instance is nested more than {MAX_DEPTH} levels deep"
                    )));
                }
                let mut inner: Option<Vec<usize>> = None;
                let mut n = 0;
                while let Some(shape) = seq.next_element_seed(Nested {
                    out: &mut *self.out,
                    depth: self.depth + 1,
                })? {
                    match &inner {
                        None => inner = Some(shape),
                        Some(first) if *first != shape => {
                            return Err(A::Error::custom(format!(
                                "ragged instance: element {n} has shape {shape:?}, element 0 has {first:?}"
                            )));
                        }
                        Some(_) => {}
                    }
                    n += 1;
                }
                let mut shape = vec![n];
                shape.extend(inner.unwrap_or_default());
                Ok(shape)
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
                while let Some(shape) = seq.next_element_seed(Nested {
                    out: &mut out.values,
                    depth: 1,
                })? {
                    if shape.is_empty() {
                        return Err(A::Error::custom(format!(
                            "instance {} is a number; each instance is an array",
                            out.rows
                        )));
                    }
                    if out.rows == 0 {
                        out.width = shape.iter().product();
                        out.shape = shape;
                    } else if shape != out.shape {
                        return Err(A::Error::custom(format!(
                            "instance {} has shape {shape:?}, instance 0 has {:?}",
                            out.rows, out.shape
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
