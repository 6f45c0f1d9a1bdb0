//! `POST /feedback` (labels for answered predictions) and `GET /monitoring` (live
//! quality per version). Feedback feeds training, so it needs the token.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::auth::Authorized;
use super::{ApiError, ApiJson, AppState};
use crate::model::Manifest;
use crate::monitoring::Report;
use crate::monitoring::drift::DriftReport;
use crate::monitoring::feedback::{FeedbackRequest, Finder, Labelled, judge};
use crate::monitoring::ids::PredictionId;
use crate::monitoring::log::Entry;

/// `POST /feedback`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackAccepted {
    /// Labelled rows kept.
    pub accepted: usize,
    /// Of those, rows joined to a logged prediction (and scored for its version).
    pub joined: usize,
}

/// `POST /feedback`: labels joined to logged predictions (or to the instance sent
/// with them), kept for retraining and scored into live quality. All or nothing:
/// one bad item refuses the request.
#[utoipa::path(post, path = "/feedback", tag = "monitoring",
    request_body = FeedbackRequest,
    responses(
        (status = 200, description = "Kept", body = FeedbackAccepted),
        (status = 400, description = "Not valid JSON", body = crate::api::error::ErrorBody),
        (status = 401, description = "auth.token is set and the token is missing or wrong", body = crate::api::error::ErrorBody),
        (status = 413, description = "More items than monitoring.max_feedback_items", body = crate::api::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::error::ErrorBody),
        (status = 422, description = "An unknown or expired id without its instance, a bad instance, or a target of the wrong type or class", body = crate::api::error::ErrorBody),
        (status = 503, description = "No model loaded yet", body = crate::api::error::ErrorBody),
    ),
    security((), ("bearer" = [])))]
pub async fn feedback(
    _: Authorized,
    State(state): State<AppState>,
    body: Result<ApiJson<FeedbackRequest>, ApiError>,
) -> Result<Json<FeedbackAccepted>, ApiError> {
    let ApiJson(body) = body?;
    let limit = state.monitor.config().max_feedback_items;
    if body.items.is_empty() {
        return Err(ApiError::Unprocessable(
            "\"items\" must hold at least one label".into(),
        ));
    }
    if body.items.len() > limit {
        return Err(ApiError::TooLarge(format!(
            "{} items in one request; the limit is {limit} (monitoring.max_feedback_items)",
            body.items.len()
        )));
    }
    let ids = body
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.prediction_id
                .parse::<PredictionId>()
                .map_err(|e| ApiError::Unprocessable(format!("items[{i}].prediction_id: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut found = lookup(&state, &ids).await?;
    // Ids answered a moment ago may still wait in this replica's log writer.
    if ids
        .iter()
        .zip(&found)
        .any(|(id, f)| f.is_none() && state.monitor.may_be_pending(id.t_ms()))
        && state.monitor.flush_log().await
    {
        found = lookup(&state, &ids).await?;
    }
    let active = state
        .model
        .current()
        .ok_or_else(|| ApiError::NotReady("no model is loaded yet".into()))?;
    let state2 = state.clone();
    tokio::task::spawn_blocking(move || -> Result<FeedbackAccepted, ApiError> {
        let mut manifests: HashMap<String, Option<Manifest>> = HashMap::new();
        let mut rows = Vec::with_capacity(ids.len());
        let mut outcomes = Vec::new();
        let mut joined = 0;
        for (i, ((item, id), entry)) in body.items.into_iter().zip(ids).zip(found).enumerate() {
            let bad = |e: String| ApiError::Unprocessable(format!("items[{i}]: {e}"));
            match entry {
                Some(entry) => {
                    let manifest = manifests
                        .entry(entry.version.clone())
                        .or_insert_with(|| state2.store.manifest(&entry.version).ok());
                    // A deleted version's label is checked against the serving one.
                    let (version, manifest) = match manifest {
                        Some(m) => (entry.version.as_str(), &*m),
                        None => (active.version(), active.manifest()),
                    };
                    if let Some(outcome) =
                        judge(version, manifest, &item.target, Some(&entry.prediction)).map_err(bad)?
                    {
                        outcomes.push((entry.version.clone(), outcome));
                    }
                    joined += 1;
                    // A shadow's answer to the same instance is scored for it too.
                    if let Some(shadow) = &entry.shadow
                        && let Some(Some(m)) = Some(
                            manifests
                                .entry(shadow.version.clone())
                                .or_insert_with(|| state2.store.manifest(&shadow.version).ok()),
                        )
                        && let Ok(Some(outcome)) =
                            judge(&shadow.version, m, &item.target, Some(&shadow.prediction))
                    {
                        outcomes.push((shadow.version.clone(), outcome));
                    }
                    rows.push(Labelled {
                        id,
                        t_ms: entry.t_ms,
                        version: Some(entry.version),
                        features: entry.features,
                        target: item.target,
                    });
                }
                None => {
                    let Some(instance) = item.instance else {
                        return Err(bad(format!(
                            "prediction id {id} is not in the prediction log (not sampled, or older than it keeps: monitoring.max_log_bytes); send its \"instance\" with the target"
                        )));
                    };
                    if instance.len() != active.input_width() {
                        return Err(bad(format!(
                            "instance has {} values; version {} takes {}",
                            instance.len(),
                            active.version(),
                            active.input_width()
                        )));
                    }
                    active.check_values(&instance).map_err(bad)?;
                    judge(active.version(), active.manifest(), &item.target, None).map_err(bad)?;
                    rows.push(Labelled {
                        id,
                        t_ms: id.t_ms(),
                        version: None,
                        features: instance,
                        target: item.target,
                    });
                }
            }
        }
        state2
            .monitor
            .accept(&rows, &outcomes)
            .map_err(|e| ApiError::Internal(format!("keeping feedback: {e}")))?;
        Ok(FeedbackAccepted {
            accepted: rows.len(),
            joined,
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("a feedback task failed: {e}")))?
    .map(Json)
}

/// The logged entry of each id, if the log holds it.
async fn lookup(state: &AppState, ids: &[PredictionId]) -> Result<Vec<Option<Entry>>, ApiError> {
    let (store, ids) = (state.store.clone(), ids.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut finder = Finder::new(&store);
        ids.iter().map(|id| finder.find(id)).collect()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("a feedback lookup failed: {e}")))
}

/// `GET /monitoring/drift`: the sampled inputs and predictions against the
/// serving version's training profile (PSI per feature, largest first).
#[utoipa::path(get, path = "/monitoring/drift", tag = "monitoring",
    responses((status = 200, description = "Drift of the live window", body = DriftReport)))]
pub async fn drift(State(state): State<AppState>) -> Json<DriftReport> {
    Json(state.monitor.drift())
}

/// `GET /monitoring`: live quality per version.
#[utoipa::path(get, path = "/monitoring", tag = "monitoring",
    responses((status = 200, description = "Live quality per version", body = Report)))]
pub async fn report(State(state): State<AppState>) -> Json<Report> {
    let mut report = state.monitor.report();
    report.canary = state.routing.canary.load().as_ref().map(|r| r.describe());
    report.shadow = state.routing.shadow.load().as_ref().map(|r| r.describe());
    report.shadow_agreement = state.monitor.shadow_stats();
    Json(report)
}
