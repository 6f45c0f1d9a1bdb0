//! Feedback: labels for answered predictions, joined to the logged instances
//! (on any replica, through the store) or to the instance sent with the label.
//! Joined rows are checked against the version that answered (the target's type
//! and class), kept as feedback segments for retraining, and scored into the live
//! quality windows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ids::PredictionId;
use super::item_error::TargetError;
use super::log::{self, Entry};
use super::quality::Outcome;
use super::segments;
use crate::model::{Manifest, Task};
use crate::registry::{Store, StoreError};

/// `POST /feedback`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// At least one, at most `monitoring.max_feedback_items`.
    #[schema(min_items = 1)]
    pub items: Vec<FeedbackItem>,
}

/// One label.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackItem {
    /// An id from an answer's `prediction_ids` (or `x-prediction-id`).
    pub prediction_id: String,
    /// The instance's values, flat; required when the prediction was not sampled
    /// into the log (or has left it).
    #[serde(default)]
    pub instance: Option<Vec<f32>>,
    /// The true answer: a class label for classifiers, a number for regression.
    #[schema(value_type = Object)]
    pub target: serde_json::Value,
}

/// A label joined to its instance: a row for retraining.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Labelled {
    pub id: PredictionId,
    /// When the prediction was answered, in milliseconds since the Unix epoch.
    pub t_ms: u64,
    /// The version that answered, when the prediction was logged.
    pub version: Option<String>,
    pub features: Vec<f32>,
    pub target: serde_json::Value,
    /// When the label arrived (0 in segments written before it was kept): of
    /// two labels of one prediction, the later one counts.
    #[serde(default)]
    pub labelled_ms: u64,
}

/// The store folder of feedback segments.
pub const FOLDER: &str = "feedback";

/// The logged entry of each of `ids` (in order), if the log holds it. Each
/// segment that may hold a missing one is read once, and only the entries asked
/// for are kept: memory follows one segment and the answers, not the log (made-up
/// ids spread over a large log cost reads, not memory). A store that cannot list
/// the log is an error.
pub fn find_logged(store: &Store, ids: &[PredictionId]) -> Result<Vec<Option<Entry>>, StoreError> {
    let listing = segments::try_list(store, log::FOLDER)?;
    let mut wanted: HashMap<PredictionId, Vec<usize>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        wanted.entry(*id).or_default().push(i);
    }
    let mut found: Vec<Option<Entry>> = vec![None; ids.len()];
    for segment in &listing {
        let needed = ids
            .iter()
            .zip(&found)
            .any(|(id, f)| f.is_none() && segment.covers(id.t_ms()));
        if !needed {
            continue;
        }
        let Some(read) = log::read_segment(store, &segment.name) else {
            continue;
        };
        for entry in read.entries {
            for &i in wanted.get(&entry.id).into_iter().flatten() {
                if found[i].is_none() {
                    found[i] = Some(entry.clone());
                }
            }
        }
    }
    Ok(found)
}

/// Checks `target` against the task and classes of `version` (its manifest);
/// the outcome of the prediction `answer` (as `/predict` gave it) against it, if
/// there is one.
pub fn judge(
    version: &str,
    manifest: &Manifest,
    target: &serde_json::Value,
    answer: Option<&serde_json::Value>,
) -> Result<Option<Outcome>, TargetError> {
    match manifest.net.task {
        Task::Classification => {
            let labels = manifest.label_names();
            let label = match target {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !labels.contains(&label) {
                return Err(TargetError::unknown_class(&label, version, &labels));
            }
            Ok(answer
                .and_then(|a| a.get("label"))
                .and_then(|l| l.as_str())
                .map(|predicted| Outcome::Class {
                    correct: predicted == label,
                }))
        }
        Task::Regression if manifest.net.output_width() != 1 => Err(TargetError::MultiOutput {
            version: version.to_owned(),
            outputs: manifest.net.output_width(),
        }),
        Task::Regression => {
            // Within f32, as the model computes: 1e39 would poison the live window.
            let Some(target) = target
                .as_f64()
                .filter(|t| t.is_finite() && t.abs() <= f64::from(f32::MAX))
            else {
                return Err(TargetError::not_a_number(version, target));
            };
            Ok(answer
                .and_then(|a| a.as_f64())
                .map(|predicted| Outcome::Value { predicted, target }))
        }
    }
}

/// The newest `max` kept labelled rows of `width` features, oldest first, one per
/// prediction (its latest label). Segments are read newest first and reading
/// stops once `max` rows are in hand, so memory follows `retrain.max_rows`, not
/// the feedback kept.
pub fn newest(store: &Store, width: usize, max: usize) -> Vec<Labelled> {
    let mut names = segments::list(store, FOLDER);
    names.sort_by_key(|s| std::cmp::Reverse((s.last_ms, s.first_ms)));
    let mut rows: Vec<Labelled> = Vec::new();
    for segment in names {
        if rows.len() >= max {
            break;
        }
        let Some(bytes) = store.read_record(&segment.name).ok().flatten() else {
            continue;
        };
        if let Ok(read) = serde_json::from_slice::<Vec<Labelled>>(&bytes) {
            rows.extend(read.into_iter().filter(|r| r.features.len() == width));
        }
    }
    let mut rows = latest_per_prediction(rows);
    rows.sort_by_key(|r| r.t_ms);
    let extra = rows.len().saturating_sub(max);
    rows.drain(..extra);
    rows
}

/// One row per prediction id: the one labelled last (of equal times, the last
/// given), in the place of the id's first row.
pub fn latest_per_prediction(rows: Vec<Labelled>) -> Vec<Labelled> {
    let mut at: HashMap<PredictionId, usize> = HashMap::new();
    let mut out: Vec<Labelled> = Vec::with_capacity(rows.len());
    for row in rows {
        match at.get(&row.id) {
            Some(&i) if out[i].labelled_ms > row.labelled_ms => {}
            Some(&i) => out[i] = row,
            None => {
                at.insert(row.id, out.len());
                out.push(row);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NetConfig;
    use crate::model::net::{ActivationKind, Architecture, MlpConfig};
    use serde_json::json;

    #[test]
    fn each_prediction_keeps_its_latest_label() {
        let [a, b] = PredictionId::batch(1_795_000_000_000, 2)[..] else {
            unreachable!()
        };
        let row = |id, target: &str, labelled_ms| Labelled {
            id,
            t_ms: 1,
            version: None,
            features: vec![1.0],
            target: json!(target),
            labelled_ms,
        };
        let kept = latest_per_prediction(vec![
            row(a, "x", 10),
            row(b, "y", 10),
            row(a, "z", 30),
            row(a, "w", 20),
            row(b, "v", 10),
        ]);
        let got: Vec<_> = kept.iter().map(|r| (r.id, r.target.clone())).collect();
        assert_eq!(got, vec![(a, json!("z")), (b, json!("v"))]);
    }

    #[test]
    fn regression_targets_must_fit_f32_and_classes_must_exist() {
        let net = |task, output| NetConfig {
            task,
            architecture: Architecture::Mlp(MlpConfig {
                input: 2,
                hidden: vec![],
                output,
                activation: ActivationKind::Relu,
            }),
            preprocess: None,
        };
        let regression = Manifest::new(net(Task::Regression, 1), "test");
        for bad in [
            json!(1e39),
            json!(-1e39),
            json!("3"),
            json!(null),
            json!([1.0]),
        ] {
            assert!(
                matches!(
                    judge("v1", &regression, &bad, None),
                    Err(TargetError::NotANumber { .. })
                ),
                "{bad}"
            );
        }
        let outcome = judge("v1", &regression, &json!(2.5), Some(&json!(2.0))).unwrap();
        assert_eq!(
            outcome,
            Some(Outcome::Value {
                predicted: 2.0,
                target: 2.5
            })
        );
        let long = json!("x".repeat(100_000));
        let classifier = Manifest::new(net(Task::Classification, 3), "test");
        let e = judge("v1", &classifier, &long, None)
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300, "{} bytes", e.len());
        assert!(matches!(
            judge(
                "v1",
                &Manifest::new(net(Task::Regression, 2), "test"),
                &json!(1.0),
                None
            ),
            Err(TargetError::MultiOutput { outputs: 2, .. })
        ));
        assert!(judge("v1", &classifier, &json!("2"), None).is_ok());
    }
}
