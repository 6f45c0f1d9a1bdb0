//! The one way into the batcher for `/predict` and OIP v2 inference: the row
//! limit (413), admission (429 when the queue is full), the wait for the answer
//! within the request's deadline (504 past it), and the answer's prediction ids
//! (with the sampled requests handed to the prediction log).

use axum::http::HeaderValue;
use axum::response::Response;

use super::deadline::{self, Deadline};
use super::{ApiError, AppState};
use crate::batching::{Answer, Work};
use crate::monitoring::ids::PredictionId;

/// The header naming a request's first prediction id.
pub const PREDICTION_ID_HEADER: &str = "x-prediction-id";

/// Queues `work` and waits for its answer; one prediction id per instance.
pub async fn compute(
    state: &AppState,
    work: Work,
    deadline: Deadline,
) -> Result<(Answer, Vec<PredictionId>), ApiError> {
    let limit = state.config.batching.max_request_rows;
    if work.n_rows > limit {
        return Err(ApiError::TooLarge(format!(
            "{} instances in one request; the limit is {limit} (batching.max_request_rows)",
            work.n_rows
        )));
    }
    let n = work.n_rows;
    // Only a sampled request pays for a copy of its rows.
    let logged = state.monitor.sample().then(|| work.rows.clone());
    let answer = state.batcher.submit(work)?;
    let answer = deadline::answer(answer, deadline).await?;
    let ids = PredictionId::batch(crate::clock::unix_now_ms(), n);
    if let Some(rows) = logged {
        state
            .monitor
            .record(&ids, &answer.model, &rows, &answer.predictions);
    }
    Ok((answer, ids))
}

/// Names the request's first prediction id in `response`'s headers.
pub fn name_prediction(response: &mut Response, ids: &[PredictionId]) {
    if let Some(v) = ids
        .first()
        .and_then(|id| HeaderValue::from_str(&id.to_string()).ok())
    {
        response.headers_mut().insert(PREDICTION_ID_HEADER, v);
    }
}
