//! Request deadlines: when a request must be answered by, and the 504 past it.
//!
//! A request names its own timeout with `x-kiln-timeout-ms`, or, on OIP v2, with
//! `parameters.timeout` in microseconds (as Triton reads it); otherwise
//! `batching.default_timeout_ms` applies. The batcher skips a request whose deadline
//! passes while it waits (it is never computed), and the handler answers 504 at the
//! deadline whatever the request is doing. The clock starts when the request's head
//! arrives, and the batcher plans to finish computing with a tenth of the timeout to
//! spare for the reply, so answers reach the client inside its deadline.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName};
use tokio::time::Instant;

use super::ApiError;

/// The header a client sets its timeout with, in milliseconds.
pub const TIMEOUT_HEADER: HeaderName = HeaderName::from_static("x-kiln-timeout-ms");

/// The longest timeout a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The part of a timeout kept for what follows the compute (the reply's way back
/// to the client): the batcher plans to finish by 90% of it, at least 1 ms early.
fn reply_margin(timeout: Duration) -> Duration {
    (timeout / 10)
        .max(Duration::from_millis(1))
        .min(timeout / 2)
}

/// When the request arrived (its head, before the body was read): the clock every
/// deadline starts from. Set by the router's outermost middleware.
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// A request's two deadlines (the inference service's type: it waits on them).
pub use crate::serving::infer::Deadline;

/// The deadline of a request that arrived at `arrival`: the header's timeout, else
/// `fallback` (the protocol's own field, or the configured default).
pub fn deadline(
    headers: &HeaderMap,
    arrival: Arrival,
    fallback: Duration,
) -> Result<Deadline, ApiError> {
    let timeout = match headers.get(&TIMEOUT_HEADER) {
        None => fallback,
        Some(v) => {
            let ms = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{TIMEOUT_HEADER} must be a whole number of milliseconds"
                    ))
                })?;
            checked(Duration::from_millis(ms), TIMEOUT_HEADER.as_str())?
        }
    };
    Ok(Deadline {
        compute_by: arrival.0 + (timeout - reply_margin(timeout)),
        answer_by: arrival.0 + timeout,
    })
}

/// OIP v2's `parameters.timeout` (microseconds), if the request has one.
pub fn v2_timeout(
    parameters: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Option<Duration>, ApiError> {
    let Some(v) = parameters.and_then(|p| p.get("timeout")) else {
        return Ok(None);
    };
    let us = v.as_u64().ok_or_else(|| {
        ApiError::BadRequest("parameters.timeout must be a whole number of microseconds".into())
    })?;
    checked(Duration::from_micros(us), "parameters.timeout").map(Some)
}

fn checked(timeout: Duration, name: &str) -> Result<Duration, ApiError> {
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(ApiError::BadRequest(format!(
            "{name} must be more than 0 and at most {} s",
            MAX_TIMEOUT.as_secs()
        )));
    }
    Ok(timeout)
}
