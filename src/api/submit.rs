//! The one way into the batcher for `/predict` and OIP v2 inference: the row
//! limit (413), the canary route, admission (429 when the queue is full), the
//! wait for the answer within the request's deadline (504 past it), the answer's
//! prediction ids (with the sampled requests handed to the prediction log), and
//! the shadow mirror, after the answer and only while the queue has room.

use axum::http::HeaderValue;
use axum::response::Response;

use super::deadline::{self, Deadline};
use super::{ApiError, AppState};
use crate::batching::{Answer, Work};
use crate::monitoring::ids::PredictionId;
use crate::monitoring::log::Logged;

/// The header naming a request's first prediction id.
pub const PREDICTION_ID_HEADER: &str = "x-prediction-id";

/// Queues `work` and waits for its answer; one prediction id per instance.
pub async fn compute(
    state: &AppState,
    mut work: Work,
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
    if work.model.is_none() {
        work.model = state.routing.canary_for_next();
    }
    // Neither pinned nor sent to the canary: the serving version answers. Only its
    // answers are compared with its training profile, and only they are mirrored.
    let serving = work.model.is_none();
    // A shadow never takes queue room live requests may need.
    let shadow = serving
        .then(|| state.routing.shadow_for_next())
        .flatten()
        .filter(|_| state.batcher.rows_in_flight() * 4 < state.config.batching.queue_capacity);
    let sampled = state.monitor.sample();
    // Only a sampled or mirrored request pays for a copy of its rows.
    let rows = (sampled || shadow.is_some()).then(|| work.rows.clone());
    let answer = state.batcher.submit(work)?;
    let answer = deadline::answer(answer, deadline).await?;
    let ids = PredictionId::batch(crate::clock::unix_now_ms(), n);
    if let Some(rows) = rows {
        let logged = Logged {
            ids: ids.clone(),
            model: answer.model.clone(),
            rows,
            predictions: answer.predictions.clone(),
            shadow: None,
            serving,
        };
        match shadow {
            Some(shadow) => {
                let mirror = Mirror {
                    state: state.clone(),
                    shadow,
                    logged,
                    sampled,
                };
                state.after_reply.spawn(mirror.run());
            }
            None => state.monitor.record(logged),
        }
    }
    Ok((answer, ids))
}

/// A request mirrored to the shadow version after it was answered.
struct Mirror {
    state: AppState,
    shadow: std::sync::Arc<crate::model::LoadedModel>,
    /// The request as served (logged with the shadow's answers when sampled).
    logged: Logged,
    sampled: bool,
}

impl Mirror {
    async fn run(mut self) {
        let served = &self.logged;
        let work = Work {
            rows: served.rows.clone(),
            n_rows: served.ids.len(),
            width: served.rows.len() / served.ids.len().max(1),
            top_k: None,
            model: Some(self.shadow.clone()),
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        };
        let shadowed = match self.state.batcher.submit(work) {
            Ok(rx) => rx.await.ok().and_then(Result::ok),
            Err(_) => None,
        };
        let monitor = &self.state.monitor;
        if let Some(shadowed) = shadowed {
            monitor.shadow_compared(
                &shadowed.version,
                &served.predictions,
                &shadowed.predictions,
            );
            self.logged.shadow = Some((shadowed.version.to_string(), shadowed.predictions));
        }
        if self.sampled {
            monitor.record(self.logged);
        }
    }
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
