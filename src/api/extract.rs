//! [`ApiJson`]: the JSON body extractor, with our error shape and a polite body limit.
//!
//! Unlike axum's `Json`, a body over `server.max_body_bytes` is read on and discarded
//! (up to [`DRAIN_LIMIT_FACTOR`] times the limit) before the 413 goes out, so a client
//! still writing its body reads the clear error instead of a reset connection. Memory
//! stays bounded: nothing past the limit is kept.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};

/// How much of an oversized body is drained (as a multiple of the limit) before the
/// connection is given up on.
pub const DRAIN_LIMIT_FACTOR: usize = 8;

/// A JSON request body of type `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_json(req, state).await?;
        let value = parse_json(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// The bytes of a JSON body, not yet parsed: [`ApiJson`]'s checks of the declared
/// type and of the body's size and time limits.
pub async fn read_json(req: Request, state: &AppState) -> Result<BytesMut, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // No type is read as JSON (as on /v2); a declared type must be JSON.
    if let Some(declared) = content_type.filter(|t| !is_json(t)) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body is declared as {declared:?}; send JSON, with Content-Type: application/json (or none)"
        )));
    }
    read_limited(req, &state.config.server).await
}

/// Parses a JSON body into `T`. The fast path is plain serde_json; only a body
/// that fails is parsed again, tracking the path, so the error can name the field
/// (`instances[3]: ...`) without every good request paying for the tracking.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let e = match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') && inner.classify() == serde_json::error::Category::Data {
        return Err(ApiError::Unprocessable(
            r#"the body is a JSON array; send an object, e.g. {"instances": [[5.1, 3.5, 1.4, 0.2]]} for /predict"#.into(),
        ));
    }
    if inner.is_syntax() && non_finite_literal(bytes) {
        return Err(ApiError::BadRequest(format!(
            "malformed JSON: NaN and Infinity are not JSON numbers (every value must be a finite number; {inner})"
        )));
    }
    // `?` is a path serde could not follow: it adds nothing for the reader.
    let text = if path == "." || path.starts_with('?') {
        inner.to_string()
    } else {
        format!("{path}: {inner}")
    };
    Err(match inner.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(text),
        _ => ApiError::BadRequest(format!("malformed JSON: {text}")),
    })
}

/// Whether the body holds a bare `NaN` or `Infinity` (outside strings).
fn non_finite_literal(bytes: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'N' | b'I' if !in_string => {
                let rest = &bytes[i..];
                if rest.starts_with(b"NaN") || rest.starts_with(b"Infinity") {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// `application/json` or `application/<something>+json`, any parameters.
pub(super) fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads the body up to `server.max_body_bytes`; past it, drains and answers 413.
/// The whole body must arrive within `server.body_timeout_ms` (504 after), so a
/// client trickling its body cannot hold a request open.
pub(super) async fn read_limited(
    req: Request,
    server: &crate::config::ServerConfig,
) -> Result<BytesMut, ApiError> {
    let timeout = server.body_timeout();
    tokio::time::timeout(timeout, read_body(req, server.max_body_bytes))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::DeadlineExceeded(format!(
                "the request body did not arrive within {} ms (server.body_timeout_ms)",
                timeout.as_millis()
            )))
        })
}

async fn read_body(req: Request, limit: usize) -> Result<BytesMut, ApiError> {
    let too_large = || {
        ApiError::TooLarge(format!(
            "the body is over {limit} bytes (server.max_body_bytes)"
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit.saturating_mul(DRAIN_LIMIT_FACTOR)) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("reading the body failed: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen > limit {
            // Drain (bounded) so the client reads our answer, keep nothing.
            if seen > limit.saturating_mul(DRAIN_LIMIT_FACTOR) {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// Reads and discards a body the server will refuse, up to [`DRAIN_LIMIT_FACTOR`]
/// times `limit`, so the client is not reset before it reads the answer.
pub(super) async fn drain(req: Request, limit: usize) {
    let mut body = req.into_body();
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > limit.saturating_mul(DRAIN_LIMIT_FACTOR) {
                break;
            }
        }
    }
}
