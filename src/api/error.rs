//! [`ApiError`]: every way a request can fail, and the one table mapping each to an
//! HTTP status. Bodies are always `{"error": "..."}`; 5xx details go to the log only,
//! and client text quoted in a 4xx is bounded ([`crate::quote`]).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::batching::{PredictError, RETRY_AFTER, SubmitError};
use crate::explainer::ExplainFailure;
use crate::metrics::RejectReason;
use crate::monitoring::join::FeedbackError;
use crate::serving::ManageError;
use crate::serving::infer::InferError;
use crate::training::error::TrainError;
use crate::training::jobs::JobError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON (or JSON nested too deep).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed JSON with the wrong content (types, widths, non-finite numbers).
    #[error("{0}")]
    Unprocessable(String),
    /// The body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body or its row count is over a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The queue's row budget is spent; try again shortly.
    #[error("the queue is full, retry later")]
    QueueFull,
    /// The training queue is full (or submissions are being read): retry after
    /// the given seconds.
    #[error("{0}")]
    TrainingBusy(String, u64),
    /// No model yet, or shutting down.
    #[error("{0}")]
    NotReady(String),
    /// The model is loading (it was unloaded); retry in a second.
    #[error("{0}")]
    Loading(String),
    #[error("{0}")]
    NotFound(String),
    /// The model store is unreachable or refusing (serving goes on; retry).
    #[error("{0}")]
    StoreUnavailable(String),
    /// A protected endpoint without the configured bearer token: what was wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The request is valid but the resource's state forbids it.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request's deadline passed before its answer was ready.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A server fault; the message is logged, the client sees a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A 4xx answer's error text, for the access log.
#[derive(Debug, Clone)]
pub struct Reason(pub String);

/// Every error response's body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
}

impl ApiError {
    /// The status table.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::QueueFull | Self::TrainingBusy(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::NotReady(_) | Self::Loading(_) | Self::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The rejection counter this error feeds, if it is a rejection.
    pub fn reject_reason(&self) -> Option<RejectReason> {
        match self {
            Self::QueueFull => Some(RejectReason::QueueFull),
            Self::NotReady(_) | Self::Loading(_) => Some(RejectReason::NotReady),
            Self::TooLarge(_) => Some(RejectReason::TooLarge),
            Self::DeadlineExceeded(_) => Some(RejectReason::Deadline),
            Self::BadRequest(_) | Self::Unprocessable(_) | Self::UnsupportedMediaType(_) => {
                Some(RejectReason::InvalidInput)
            }
            Self::NotFound(_)
            | Self::TrainingBusy(..)
            | Self::StoreUnavailable(_)
            | Self::MethodNotAllowed(_)
            | Self::Internal(_)
            | Self::Unauthorized(_)
            | Self::Conflict(_) => None,
        }
    }
}

impl ApiError {
    /// The answer to a request refused before its body was read: it says
    /// `Connection: close`, since the unread body leaves the connection unusable
    /// (a client must not send its next request there).
    pub fn before_body(self) -> Response {
        let mut response = self.into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = match &self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal server error".to_string()
            }
            // Whatever client text a message quotes, at most a bounded part of it
            // comes back (see `crate::quote`).
            other => crate::quote::bound_message(&other.to_string()),
        };
        let reason = status.is_client_error().then(|| Reason(text.clone()));
        let mut response = (status, Json(ErrorBody { error: text })).into_response();
        if let Some(reason) = reason {
            response.extensions_mut().insert(reason);
        }
        if matches!(self, Self::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, Self::QueueFull) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER.as_secs()),
            );
        }
        if matches!(self, Self::Loading(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        if let Self::TrainingBusy(_, seconds) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::QueueFull => Self::QueueFull,
            SubmitError::Closed => Self::NotReady(e.to_string()),
        }
    }
}

impl From<PredictError> for ApiError {
    fn from(e: PredictError) -> Self {
        match e {
            PredictError::WidthMismatch { .. } | PredictError::NotFinite { .. } => {
                Self::Unprocessable(e.to_string())
            }
            PredictError::NoModel => Self::NotReady(e.to_string()),
            PredictError::Compute => Self::Internal(e.to_string()),
            PredictError::DeadlineExceeded => Self::DeadlineExceeded(e.to_string()),
        }
    }
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::NotFound(_) => Self::NotFound(e.to_string()),
            ManageError::Unusable { .. }
            | ManageError::IsActive(_)
            | ManageError::NoPrevious
            | ManageError::PreviousGone(_)
            | ManageError::RouteToActive(_)
            | ManageError::Incompatible { .. }
            | ManageError::RoutedElsewhere { .. }
            | ManageError::InUse(_) => Self::Conflict(e.to_string()),
            ManageError::BadPercent(_) => Self::Unprocessable(e.to_string()),
            ManageError::Stopped => Self::NotReady(e.to_string()),
            ManageError::Import(_) => Self::Unprocessable(e.to_string()),
            ManageError::Crashed(_) => Self::Internal(e.to_string()),
            ManageError::Store(
                crate::registry::StoreError::Busy(_) | crate::registry::StoreError::Conflict(_),
            ) => Self::Conflict(e.to_string()),
            ManageError::Store(crate::registry::StoreError::Remote { .. }) => {
                Self::StoreUnavailable(e.to_string())
            }
            ManageError::Store(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::NoRows
            | InferError::Steps { .. }
            | InferError::ZeroTopK
            | InferError::TopKOnRegression(_)
            | InferError::Invalid(_) => Self::Unprocessable(e.to_string()),
            InferError::TooManyRows { .. } | InferError::TooManyToExplain { .. } => {
                Self::TooLarge(e.to_string())
            }
            InferError::NoModel | InferError::ShuttingDown => Self::NotReady(e.to_string()),
            InferError::Submit(e) => e.into(),
            InferError::Predict(e) => e.into(),
            InferError::Explain(e) => match e {
                ExplainFailure::Invalid(e) => Self::Unprocessable(e.to_string()),
                ExplainFailure::QueueFull => Self::QueueFull,
                ExplainFailure::Stopped => Self::NotReady(e.to_string()),
                ExplainFailure::Compute => Self::Internal(e.to_string()),
            },
        }
    }
}

impl From<FeedbackError> for ApiError {
    fn from(e: FeedbackError) -> Self {
        match e {
            FeedbackError::Empty | FeedbackError::BadId { .. } | FeedbackError::Invalid { .. } => {
                Self::Unprocessable(e.to_string())
            }
            FeedbackError::TooMany { .. } => Self::TooLarge(e.to_string()),
            FeedbackError::Store(e) => e.into(),
            FeedbackError::Task(_) => Self::Internal(e.to_string()),
        }
    }
}

/// An input tensor that does not give the model's rows: a bad request.
impl From<crate::api::v2::tensor::TensorError> for ApiError {
    fn from(e: crate::api::v2::tensor::TensorError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<crate::registry::StoreError> for ApiError {
    fn from(e: crate::registry::StoreError) -> Self {
        use crate::registry::StoreError;
        match e {
            StoreError::NotFound(_) => Self::NotFound(e.to_string()),
            StoreError::Remote { .. } => Self::StoreUnavailable(e.to_string()),
            StoreError::Busy(_) | StoreError::Conflict(_) | StoreError::Corrupt { .. } => {
                Self::Conflict(e.to_string())
            }
            StoreError::Io { .. } | StoreError::Location { .. } => Self::Internal(e.to_string()),
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            // A queued job takes seconds to minutes: retry after half a minute.
            JobError::QueueFull(_) => Self::TrainingBusy(e.to_string(), 30),
            JobError::NotFound(_) => Self::NotFound(e.to_string()),
            JobError::Finished(..) | JobError::Elsewhere(..) => Self::Conflict(e.to_string()),
            JobError::Stopped => Self::NotReady(e.to_string()),
        }
    }
}

impl From<TrainError> for ApiError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Recipe(_) | TrainError::Data(_) | TrainError::OverBudget(_) => {
                Self::Unprocessable(e.to_string())
            }
            TrainError::TooLarge(_) => Self::TooLarge(e.to_string()),
            TrainError::Cancelled => Self::Conflict(e.to_string()),
            TrainError::Diverged { .. } => Self::Unprocessable(e.to_string()),
            TrainError::Store(_)
            | TrainError::WriteVersion(_)
            | TrainError::Device(_)
            | TrainError::Threads(_) => Self::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_training_queue_names_its_key_and_asks_for_a_later_retry() {
        let response = ApiError::from(JobError::QueueFull(4)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        let e = ApiError::from(JobError::QueueFull(4)).to_string();
        assert!(
            e.contains("training.max_queued_jobs") && e.contains("4 jobs waiting"),
            "{e}"
        );
    }

    #[test]
    fn a_training_fault_is_internal_and_keeps_its_text() {
        let e = TrainError::WriteVersion(crate::registry::StoreError::Busy("lock".into()));
        assert_eq!(
            e.to_string(),
            "writing the version failed: the model store is busy (lock lock held by another replica); retry"
        );
        assert_eq!(
            ApiError::from(e).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn a_bad_input_tensor_is_a_bad_request() {
        let e = crate::api::v2::tensor::TensorError::TooLarge(vec![1 << 40, 2]);
        let e = ApiError::from(e);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("is too large"), "{e}");
    }
}
