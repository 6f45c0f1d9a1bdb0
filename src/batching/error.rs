//! Why a request was not admitted ([`SubmitError`]) or got no answer
//! ([`PredictError`]); the API maps both to statuses in its one table.

use std::sync::Arc;

/// Why an admitted request got no answer. `Clone`: one failure fans out to a batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PredictError {
    /// The model changed between admission and compute and wants another width.
    #[error("model version {version} expects {expected} features per instance, got {got}")]
    WidthMismatch {
        version: Arc<str>,
        expected: usize,
        got: usize,
    },
    /// No model is loaded.
    #[error("no model is loaded yet")]
    NoModel,
    /// The outputs for an instance overflowed (its values are finite but far outside
    /// what the model was trained on).
    #[error(
        "model version {version} gives a non-finite output for instance {instance}: its values are far outside the range the model was trained on"
    )]
    NotFinite { version: Arc<str>, instance: usize },
    /// The forward pass failed (details are logged, not returned).
    #[error("the model failed to compute this batch")]
    Compute,
    /// The request's deadline passed, or would have before its answer was ready.
    #[error("the request's deadline passed before it could be computed")]
    DeadlineExceeded,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full")]
    QueueFull,
    #[error("the server is shutting down")]
    Closed,
}
