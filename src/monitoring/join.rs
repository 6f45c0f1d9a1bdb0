//! The feedback join: `POST /feedback`'s labels joined to the logged predictions
//! (or to the instance sent with them), checked against the version that
//! answered, kept for retraining and scored into live quality. All or nothing: one
//! bad item refuses the request and keeps nothing.
//!
//! The store is read and written on the blocking pool. An unreachable store fails
//! the request at its first call (the listing of the log), so the answer comes
//! within one store timeout, naming the store.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::Monitor;
use super::feedback::{FeedbackItem, Labelled, find_logged, judge};
use super::ids::PredictionId;
use super::item_error::{BadPredictionId, ItemFault};
use super::log::Entry;
use crate::model::{LoadedModel, Manifest};
use crate::registry::{Store, StoreError};

/// How far ahead of this server's clock a prediction id's millisecond may be
/// (another replica's clock may run ahead); later ids were never made by kiln.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// `POST /feedback`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackAccepted {
    /// Labelled rows kept.
    pub accepted: usize,
    /// Of those, rows joined to a logged prediction (and scored for its version).
    pub joined: usize,
    /// Labels of unsampled predictions without their instance, joined to this
    /// replica's recent answers (`monitoring.recent_answers`): scored for live
    /// quality, not kept for retraining.
    pub remembered: usize,
}

/// Why feedback was refused.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("\"items\" must hold at least one label")]
    Empty,
    #[error("{items} items in one request; the limit is {limit} (monitoring.max_feedback_items)")]
    TooMany { items: usize, limit: usize },
    #[error("items[{item}].prediction_id: {reason}")]
    BadId {
        item: usize,
        reason: BadPredictionId,
    },
    /// One item's instance or target is wrong.
    #[error("items[{item}]: {reason}")]
    Invalid { item: usize, reason: ItemFault },
    /// The store cannot be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a feedback task failed: {0}")]
    Task(String),
}

impl FeedbackError {
    fn invalid(item: usize, reason: impl Into<ItemFault>) -> Self {
        Self::Invalid {
            item,
            reason: reason.into(),
        }
    }
}

impl Monitor {
    /// Joins `items` to their logged predictions (else to the instance sent with
    /// them, checked against `active`), keeps them and scores them.
    pub async fn feedback(
        self: Arc<Self>,
        items: Vec<FeedbackItem>,
        active: Arc<LoadedModel>,
    ) -> Result<FeedbackAccepted, FeedbackError> {
        let limit = self.config().max_feedback_items;
        if items.is_empty() {
            return Err(FeedbackError::Empty);
        }
        if items.len() > limit {
            return Err(FeedbackError::TooMany {
                items: items.len(),
                limit,
            });
        }
        let ids = items
            .iter()
            .enumerate()
            .map(|(item, i)| {
                i.prediction_id
                    .parse::<PredictionId>()
                    .map_err(|reason| FeedbackError::BadId { item, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // An id from the future would sort as the newest label for ever (and
        // push real ones out of the bounded feedback store).
        let latest = crate::clock::unix_now_ms().saturating_add(MAX_CLOCK_SKEW_MS);
        if let Some((item, id)) = ids.iter().enumerate().find(|(_, id)| id.t_ms() > latest) {
            return Err(FeedbackError::BadId {
                item,
                reason: BadPredictionId::FromTheFuture {
                    id: *id,
                    ahead_ms: id.t_ms().saturating_sub(crate::clock::unix_now_ms()),
                },
            });
        }
        let mut found = lookup(self.store(), &ids).await?;
        // Ids answered a moment ago may still wait in this replica's log writer.
        if ids
            .iter()
            .zip(&found)
            .any(|(id, f)| f.is_none() && self.may_be_pending(id.t_ms()))
            && self.flush_log().await
        {
            found = lookup(self.store(), &ids).await?;
        }
        tokio::task::spawn_blocking(move || self.join(items, ids, found, &active))
            .await
            .map_err(|e| FeedbackError::Task(e.to_string()))?
    }

    /// Checks and scores each label (blocking: reads manifests, writes a segment).
    fn join(
        &self,
        items: Vec<FeedbackItem>,
        ids: Vec<PredictionId>,
        found: Vec<Option<Entry>>,
        active: &LoadedModel,
    ) -> Result<FeedbackAccepted, FeedbackError> {
        let store = self.store();
        // Each version's manifest is read once.
        let mut manifests: HashMap<String, Option<Arc<Manifest>>> = HashMap::new();
        let mut manifest = |version: &str| -> Option<Arc<Manifest>> {
            manifests
                .entry(version.to_owned())
                .or_insert_with(|| store.manifest(version).ok().map(Arc::new))
                .clone()
        };
        let now = crate::clock::unix_now_ms();
        let mut rows = Vec::with_capacity(ids.len());
        let mut outcomes = Vec::new();
        // Rows of predictions the log did not keep, sent with their instance.
        let mut unlogged = Vec::new();
        let mut remembered = 0;
        for (i, ((item, id), entry)) in items.into_iter().zip(ids).zip(found).enumerate() {
            let bad = |reason: ItemFault| FeedbackError::invalid(i, reason);
            let Some(entry) = entry else {
                let Some(instance) = item.instance else {
                    // Answered moments ago and not sampled: scored from memory,
                    // not kept (there are no features to keep).
                    let Some((version, answer)) = self.recent_answer(&id) else {
                        return Err(bad(ItemFault::NotLogged(id)));
                    };
                    let answered = manifest(&version);
                    let (judged, checked) = match &answered {
                        Some(m) => (version.as_str(), m.as_ref()),
                        None => (active.version(), active.manifest()),
                    };
                    if let Some(outcome) = judge(judged, checked, &item.target, Some(&answer))
                        .map_err(|e| FeedbackError::invalid(i, e))?
                    {
                        outcomes.push((version, id, outcome));
                    }
                    remembered += 1;
                    continue;
                };
                if instance.len() != active.input_width() {
                    return Err(bad(ItemFault::Width {
                        got: instance.len(),
                        version: active.version().to_owned(),
                        expected: active.input_width(),
                    }));
                }
                active
                    .check_instances(&instance)
                    .map_err(|e| FeedbackError::invalid(i, e))?;
                judge(active.version(), active.manifest(), &item.target, None)
                    .map_err(|e| FeedbackError::invalid(i, e))?;
                rows.push(Labelled {
                    id,
                    t_ms: id.t_ms(),
                    version: None,
                    features: instance,
                    target: item.target,
                    labelled_ms: now,
                });
                unlogged.push(rows.len() - 1);
                continue;
            };
            // A deleted version's label is checked against the serving one.
            let answered = manifest(&entry.version);
            let (version, checked) = match &answered {
                Some(m) => (entry.version.as_str(), m.as_ref()),
                None => (active.version(), active.manifest()),
            };
            if let Some(outcome) = judge(version, checked, &item.target, Some(&entry.prediction))
                .map_err(|e| FeedbackError::invalid(i, e))?
            {
                outcomes.push((entry.version.clone(), id, outcome));
            }
            // A shadow's answer to the same instance is scored for it too.
            if let Some(shadow) = &entry.shadow
                && let Some(m) = manifest(&shadow.version)
                && let Ok(Some(outcome)) =
                    judge(&shadow.version, &m, &item.target, Some(&shadow.prediction))
            {
                outcomes.push((shadow.version.clone(), id, outcome));
            }
            rows.push(Labelled {
                id,
                t_ms: entry.t_ms,
                version: Some(entry.version),
                features: entry.features,
                target: item.target,
                labelled_ms: now,
            });
        }
        outcomes.extend(rescore(active, &rows, &unlogged));
        // In the order the predictions were made (a window's order dates a fall
        // in quality). A prediction labelled twice in one request counts once:
        // the last label (the quality windows replace by id in the same order).
        outcomes.sort_by_key(|(_, id, _)| id.t_ms());
        let rows = super::feedback::latest_per_prediction(rows);
        self.accept(&rows, &outcomes)?;
        Ok(FeedbackAccepted {
            accepted: rows.len(),
            joined: rows.iter().filter(|r| r.version.is_some()).count(),
            remembered,
        })
    }
}

/// Labels of predictions the log did not keep (`monitoring.sample_rate`), sent
/// with their instance: scored by the serving version's answer to that instance
/// now, so live quality follows every label whatever the sample rate. One
/// forward pass per `max_pass_rows` rows (at most `max_feedback_items`).
fn rescore(
    active: &LoadedModel,
    rows: &[Labelled],
    unlogged: &[usize],
) -> Vec<(String, PredictionId, super::quality::Outcome)> {
    let (width, outputs) = (active.input_width(), active.output_width());
    let mut out = Vec::with_capacity(unlogged.len());
    for chunk in unlogged.chunks(active.max_pass_rows().max(1)) {
        let mut values = Vec::with_capacity(chunk.len() * width);
        for &i in chunk {
            values.extend_from_slice(&rows[i].features);
        }
        let answers = active.forward(values, chunk.len());
        for (k, &i) in chunk.iter().enumerate() {
            let Some(answer) = answers.get(k * outputs..(k + 1) * outputs) else {
                continue;
            };
            let answer = serde_json::to_value(active.interpret(answer, None)).ok();
            if let Ok(Some(outcome)) = judge(
                active.version(),
                active.manifest(),
                &rows[i].target,
                answer.as_ref(),
            ) {
                out.push((active.version().to_owned(), rows[i].id, outcome));
            }
        }
    }
    out
}

/// The logged entry of each id, if the log holds it. A store that cannot list the
/// log is an error, not an empty log.
async fn lookup(store: &Store, ids: &[PredictionId]) -> Result<Vec<Option<Entry>>, FeedbackError> {
    let (store, ids) = (store.clone(), ids.to_vec());
    tokio::task::spawn_blocking(move || Ok(find_logged(&store, &ids)?))
        .await
        .map_err(|e| FeedbackError::Task(e.to_string()))?
}
