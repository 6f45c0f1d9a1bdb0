//! `POST /models`: import PyTorch weights over HTTP. A `multipart/form-data` body
//! with a `weights` part (a `torch.save` file or safetensors) and a `config` part
//! (the model config, TOML or JSON); `?activate=true` also promotes the new version
//! (default false). Same checks and messages as `kiln import`.
//!
//! The weights stream to a temporary file (Burn's PyTorch reader reads files), never
//! whole into memory; `server.max_upload_bytes` bounds the body.

use std::io::Write;

use axum::Json;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};

use super::auth::Authorized;
use super::extract::drain;
use super::{ApiError, AppState};
use crate::model::NetConfig;

/// Largest model-config part.
const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// `POST /models` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Make the new version the active one (default false).
    #[serde(default)]
    pub activate: bool,
}

/// `POST /models`'s form: both parts are required, and no other.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read part by part from the stream; here for the OpenAPI document
pub struct ImportForm {
    /// A `torch.save` state_dict (.pth/.pt) or a safetensors file.
    #[schema(value_type = String, format = Binary)]
    weights: Vec<u8>,
    /// The model config, TOML or JSON.
    config: String,
}

/// `POST /models`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// The new version.
    pub version: String,
    /// Whether it was promoted (`activate=true`).
    pub active: bool,
}

/// `POST /models`: a new version from uploaded PyTorch weights and a model config.
#[utoipa::path(post, path = "/models", tag = "models",
    params(ImportQuery),
    request_body(content = ImportForm, content_type = "multipart/form-data",
        description = "`weights`: a torch.save state_dict (.pth/.pt) or safetensors; `config`: the model config (TOML or JSON)"),
    responses(
        (status = 201, description = "Imported (and promoted, with activate=true)", body = Imported),
        (status = 400, description = "A malformed multipart body", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 409, description = "Imported, but the new version failed to load; the old one keeps serving", body = crate::api::error::ErrorBody),
        (status = 413, description = "The body is over server.max_upload_bytes", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not multipart/form-data", body = crate::api::error::ErrorBody),
        (status = 422, description = "A bad config, a missing part, or weights that do not fit the config", body = crate::api::error::ErrorBody),
        (status = 429, description = "Another import is running (Retry-After)", body = crate::api::error::ErrorBody),
        (status = 503, description = "The model manager has stopped", body = crate::api::error::ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn upload(
    _: Authorized,
    State(state): State<AppState>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<(StatusCode, Json<Imported>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let received = receive(&state, req).await?;
    let version = received.into(&state.models, query.activate).await?;
    Ok((
        StatusCode::CREATED,
        Json(Imported {
            version,
            active: query.activate,
        }),
    ))
}

/// An upload read and checked, holding the import slot.
pub struct Received {
    weights: tempfile::TempPath,
    file_name: String,
    config: NetConfig,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Received {
    /// Imports the upload as a new version of the model `models` manages.
    pub async fn into(
        self,
        models: &crate::serving::Models,
        activate: bool,
    ) -> Result<String, ApiError> {
        let version = models
            .import(self.weights, self.file_name, self.config, activate)
            .await?;
        tracing::info!(version, activate, "imported a version over HTTP");
        Ok(version)
    }
}

impl Received {
    /// Imports the upload as the first version of the new named model `name`
    /// (nothing of the model is started yet); the import slot comes back with
    /// it, for the caller to hold until the model is listed.
    pub async fn into_new(
        self,
        catalog: &crate::serving::catalog::Catalog,
        name: &crate::registry::ModelName,
    ) -> Result<(String, tokio::sync::OwnedSemaphorePermit), ApiError> {
        let (catalog, name) = (catalog.clone(), name.clone());
        let Self {
            weights,
            file_name,
            config,
            _slot,
        } = self;
        let version = tokio::task::spawn_blocking(move || {
            catalog.first_version(&name, &weights, &file_name, &config)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        Ok((version, _slot))
    }
}

/// Reads and checks a multipart upload (`weights` and `config`) within the
/// configured bounds, one at a time.
pub async fn receive(state: &AppState, req: Request) -> Result<Received, ApiError> {
    let limit = state.config.server.max_upload_bytes;
    let too_large = || {
        ApiError::TooLarge(format!(
            "the upload is over {limit} bytes (server.max_upload_bytes)"
        ))
    };
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::UnsupportedMediaType(
            "expected multipart/form-data with the parts `weights` and `config`".into(),
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        // Read on (bounded) so the client gets the answer, not a reset.
        drain(req, limit).await;
        return Err(too_large());
    }
    // One import at a time: a second one waits its turn on the client (429).
    let Ok(_slot) = state.imports.clone().try_acquire_owned() else {
        drain(req, limit).await;
        return Err(ApiError::QueueFull);
    };
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let part_error = |e: MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
        }
    };

    let mut weights: Option<(tempfile::NamedTempFile, String)> = None;
    let mut config_text: Option<(String, bool)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(part_error)? {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().unwrap_or_default().to_string();
        match name.as_str() {
            "weights" if weights.is_none() => {
                let mut file = tempfile::NamedTempFile::new()
                    .map_err(|e| ApiError::Internal(format!("temporary file: {e}")))?;
                while let Some(chunk) = field.chunk().await.map_err(part_error)? {
                    file.write_all(&chunk)
                        .map_err(|e| ApiError::Internal(format!("temporary file: {e}")))?;
                }
                weights = Some((file, file_name));
            }
            "config" if config_text.is_none() => {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(part_error)? {
                    text.extend_from_slice(&chunk);
                    if text.len() > MAX_CONFIG_BYTES {
                        return Err(ApiError::TooLarge(format!(
                            "the config part is over {MAX_CONFIG_BYTES} bytes"
                        )));
                    }
                }
                let text = String::from_utf8(text).map_err(|_| {
                    ApiError::Unprocessable("the config part is not UTF-8 text".into())
                })?;
                let json = file_name.ends_with(".json") || text.trim_start().starts_with('{');
                config_text = Some((text, json));
            }
            other => {
                return Err(ApiError::Unprocessable(format!(
                    "unexpected part {other:?}: send one `weights` and one `config`"
                )));
            }
        }
    }
    let (Some((file, file_name)), Some((text, json))) = (weights, config_text) else {
        return Err(ApiError::Unprocessable(
            "both parts are required: `weights` (the file) and `config` (the model config)".into(),
        ));
    };
    let net_config = NetConfig::parse(&text, json)
        .map_err(|e| ApiError::Unprocessable(format!("config: {}", e.0)))?;
    let file_name = if file_name.is_empty() {
        "weights".to_string()
    } else {
        file_name
    };
    Ok(Received {
        weights: file.into_temp_path(),
        file_name,
        config: net_config,
        _slot,
    })
}
