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
}

/// The store folder of feedback segments.
pub const FOLDER: &str = "feedback";

/// Finds logged entries by id, reading each candidate segment once.
pub struct Finder<'a> {
    store: &'a Store,
    listing: Vec<segments::SegmentName>,
    read: HashMap<String, HashMap<PredictionId, Entry>>,
}

impl<'a> Finder<'a> {
    /// Lists the log's segments; a store that cannot list them is an error.
    pub fn try_new(store: &'a Store) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            listing: segments::try_list(store, log::FOLDER)?,
            read: HashMap::new(),
        })
    }

    /// The logged entry of `id`, if a segment holds it.
    pub fn find(&mut self, id: &PredictionId) -> Option<Entry> {
        let t = id.t_ms();
        for segment in self.listing.iter().filter(|s| s.covers(t)) {
            let entries = self.read.entry(segment.name.clone()).or_insert_with(|| {
                log::read_segment(self.store, &segment.name)
                    .map(|s| s.entries.into_iter().map(|e| (e.id, e)).collect())
                    .unwrap_or_default()
            });
            if let Some(entry) = entries.get(id) {
                return Some(entry.clone());
            }
        }
        None
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NetConfig;
    use crate::model::net::{ActivationKind, Architecture, MlpConfig};
    use serde_json::json;

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
