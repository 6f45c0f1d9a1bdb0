//! Bearer-token checks: [`Authorized`] guards the mutating endpoints when
//! `auth.token` is set; [`check_predict`] guards `/predict` when
//! `auth.protect_predict` is set too. Comparison is constant-time.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, header, request::Parts};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

/// Proof that the request carried the configured token (or that none is configured).
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check(&parts.headers, state.config.auth.token.as_deref()).map_err(ApiError::before_body)?;
        Ok(Authorized)
    }
}

/// [`check_predict`] as an extractor: listed before the body, it refuses a request
/// before a byte of the body is read.
pub struct PredictAuthorized;

impl FromRequestParts<AppState> for PredictAuthorized {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_predict(&parts.headers, state).map_err(ApiError::before_body)?;
        Ok(PredictAuthorized)
    }
}

/// The `/predict` check: only when `auth.protect_predict` is set.
pub fn check_predict(headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    if state.config.auth.protect_predict {
        check(headers, state.config.auth.token.as_deref())?;
    }
    Ok(())
}

fn check(headers: &HeaderMap, token: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::Unauthorized(
            "this endpoint needs the header \"Authorization: Bearer <token>\"",
        ));
    };
    // The scheme is case-insensitive (RFC 9110 section 11.1).
    let given = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim_start());
    let Some(given) = given else {
        return Err(ApiError::Unauthorized(
            "the Authorization header must read \"Bearer <token>\" (the Bearer scheme is missing)",
        ));
    };
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong bearer token"))
    }
}
