//! Named models' routes: `POST /models/{name}/predict`, `GET` and `POST
//! /models/{name}/versions`, `POST /models/{name}/versions/{version}/promote`, and
//! Triton's `POST /v2/repository/index`.
//!
//! The default model answers to its name (`model.name`) here too. A first upload
//! under a new name creates the model; its first version is made active.
//! (The path's first parameter is `{version}` in the router, where
//! `/models/{version}` also lives; a name never looks like a version id.)

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, extract::rejection::QueryRejection};
use std::sync::Arc;

use super::auth::{Authorized, PredictAuthorized};
use super::import::{ImportQuery, Imported};
use super::models::ModelList;
use super::predict::PredictRequest;
use super::{ApiError, ApiJson, AppState, deadline};
use crate::registry::{ActiveRecord, ModelName};
use crate::serving::bundle::Bundle;

/// The model `name` names, or a 404 that says why.
pub(super) fn served(state: &AppState, name: &str) -> Result<Arc<Bundle>, ApiError> {
    state
        .bundle(name)
        .ok_or_else(|| match ModelName::parse(name) {
            Err(e) if name != state.config.model.name => ApiError::NotFound(e.to_string()),
            _ => ApiError::NotFound(format!(
                "no model {} (GET /models lists them)",
                crate::quote::quoted(name)
            )),
        })
}

/// `POST /models/{name}/predict`: `/predict` for the model `name`.
#[utoipa::path(post, path = "/models/{name}/predict", tag = "models",
    params(("name" = String, Path, description = "A model name (`model.name` for the default model)")),
    request_body = PredictRequest,
    responses((status = 200, description = "One prediction per instance", body = super::predict::PredictResponse,
            headers(("x-model-version" = String, description = "The version that computed the answer"),
                ("x-prediction-id" = String, description = "The first instance's prediction id"))),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.protect_predict is on and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such model", body = crate::api::error::ErrorBody),
        (status = 413, description = "Body or instance count over its limit", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "Valid JSON with the wrong content", body = crate::api::error::ErrorBody),
        (status = 429, description = "The queue is full, or the request waited 100 ms to be read (Retry-After)", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model's version is loading, or shutting down", body = crate::api::error::ErrorBody),
        (status = 504, description = "The deadline passed first", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn predict(
    _: PredictAuthorized,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(arrival): Extension<deadline::Arrival>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let bundle = served(&state, &name)?;
    let _serving = super::loading::loaded_for(&state, &bundle, &headers, arrival).await?;
    let body = super::predict::admitted_body(&state, &bundle.inference, request).await;
    super::predict::respond(&state, &bundle.inference, arrival, &headers, body).await
}

/// `POST /models/{name}/explain`: `/explain` for the model `name`.
#[utoipa::path(post, path = "/models/{name}/explain", tag = "predict",
    params(("name" = String, Path, description = "A model name")),
    request_body = super::explain::ExplainRequest,
    responses(super::explain::ExplainAnswers),
    security((), ("bearer" = [])))]
pub async fn explain(
    _: PredictAuthorized,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(arrival): Extension<deadline::Arrival>,
    headers: HeaderMap,
    body: Result<ApiJson<super::explain::ExplainRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let bundle = served(&state, &name)?;
    let _serving = super::loading::loaded_for(&state, &bundle, &headers, arrival).await?;
    super::explain::explain_with(&bundle.inference, body).await
}

/// `GET /models/{name}/versions`: the model's versions and which is active.
#[utoipa::path(get, path = "/models/{name}/versions", tag = "models",
    params(("name" = String, Path, description = "A model name")),
    responses((status = 200, description = "Versions and which is active", body = ModelList),
        (status = 404, description = "No such model", body = crate::api::error::ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelList>, ApiError> {
    let bundle = served(&state, &name)?;
    Ok(Json(super::models::listing(bundle.store.clone()).await?))
}

/// `POST /models/{name}/versions/{version}/promote`.
#[utoipa::path(post, path = "/models/{name}/versions/{version}/promote", tag = "models",
    params(("name" = String, Path, description = "A model name"), ("version" = String, Path, description = "A version, e.g. v3")),
    responses((status = 200, description = "Now active", body = ActiveRecord),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such model or version", body = crate::api::error::ErrorBody),
        (status = 409, description = "The version cannot be loaded", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn promote(
    _: Authorized,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ActiveRecord>, ApiError> {
    let bundle = served(&state, &name)?;
    Ok(Json(bundle.models.promote(&version).await?))
}

#[utoipa::path(post, path = "/models/{name}/versions", tag = "models",
    params(("name" = String, Path, description = "A model name: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter, not `v` and digits"),
        ("activate" = Option<bool>, Query, description = "Make the new version active (a new model's first version always is)")),
    request_body(content = super::import::ImportForm, content_type = "multipart/form-data",
        description = "`weights`: a torch.save state_dict (.pth/.pt) or safetensors; `config`: the model config (TOML or JSON)"),
    responses((status = 201, description = "Imported", body = Imported),
        (status = 400, description = "A malformed multipart body", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 413, description = "The body is over server.max_upload_bytes", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not multipart/form-data", body = crate::api::error::ErrorBody),
        (status = 429, description = "Another import is running (Retry-After)", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody),
        (status = 409, description = "model.max_models named models already served, or the version failed to load", body = crate::api::error::ErrorBody),
        (status = 422, description = "A bad name, config or upload", body = crate::api::error::ErrorBody)),
    security((), ("bearer" = [])))]
/// `POST /models/{name}/versions`: a multipart upload (`weights`, `config`) as
/// `POST /models` takes it, into the model `name`, created if it is new.
pub async fn upload(
    _: Authorized,
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    req: Request,
) -> Result<(StatusCode, Json<Imported>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    if state.bundle(&name).is_none() {
        ModelName::parse(&name).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    }
    // Uploads are read one at a time, and the model looked up after: two first
    // uploads under one name create it once.
    let received = super::import::receive(&state, req).await?;
    if let Some(bundle) = state.bundle(&name) {
        let version = received.into(&bundle.models, query.activate).await?;
        return Ok((
            StatusCode::CREATED,
            Json(Imported {
                version,
                active: query.activate,
            }),
        ));
    }
    let name = ModelName::parse(&name).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    state.catalog.room()?;
    // The version first: an upload that does not import starts nothing.
    let (version, _slot) = received.into_new(&state.catalog, &name).await?;
    state.catalog.open_created(&name).await?;
    tracing::info!(model = %name, version, "created a named model");
    Ok((
        StatusCode::CREATED,
        Json(Imported {
            version,
            active: true,
        }),
    ))
}

/// One entry of Triton's repository index.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IndexEntry {
    pub name: String,
    /// The active version, when one is loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `READY` or `UNAVAILABLE`.
    pub state: &'static str,
}

/// `POST /v2/repository/index`: every model this process serves.
#[utoipa::path(post, path = "/v2/repository/index", tag = "oip-v2",
    responses((status = 200, description = "The models and their state", body = Vec<IndexEntry>)))]
pub async fn index(State(state): State<AppState>) -> Json<Vec<IndexEntry>> {
    let entry = |b: &Bundle| {
        let version = b.model.current().map(|m| m.version().to_owned());
        IndexEntry {
            name: b.name.clone(),
            state: if version.is_some() {
                "READY"
            } else {
                "UNAVAILABLE"
            },
            version,
        }
    };
    Json(
        std::iter::once(entry(&state.default))
            .chain(state.catalog.all().iter().map(|b| entry(b)))
            .collect(),
    )
}
