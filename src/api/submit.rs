//! The one way into the batcher for `/predict` and OIP v2 inference: the row
//! limit (413), admission (429 when the queue is full), and the wait for the answer
//! within the request's deadline (504 past it).

use super::deadline::{self, Deadline};
use super::{ApiError, AppState};
use crate::batching::{Answer, Work};

/// Queues `work` and waits for its answer.
pub async fn compute(state: &AppState, work: Work, deadline: Deadline) -> Result<Answer, ApiError> {
    let limit = state.config.batching.max_request_rows;
    if work.n_rows > limit {
        return Err(ApiError::TooLarge(format!(
            "{} instances in one request; the limit is {limit} (batching.max_request_rows)",
            work.n_rows
        )));
    }
    let answer = state.batcher.submit(work)?;
    deadline::answer(answer, deadline).await
}
