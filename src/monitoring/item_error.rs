//! Why one feedback item is refused ([`ItemFault`]): an id kiln did not make
//! ([`BadPredictionId`]), an instance the version cannot take, or a target that is
//! not one of its answers ([`TargetError`]). Client text is quoted in part.

use super::ids::PredictionId;
use crate::model::net::BadInstance;

/// Most characters of a client's id a message quotes.
const ID_SHOWN: usize = 40;
/// Most characters of a client's class label a message quotes.
const LABEL_SHOWN: usize = 100;
/// Most of a version's classes a message lists.
const CLASSES_SHOWN: usize = 20;
/// Most characters of a client's regression target a message quotes.
const TARGET_SHOWN: usize = 40;

/// A `prediction_id` that is not one kiln made (its text cut to 40 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPredictionId {
    #[error("{0:?} is not a prediction id")]
    NotUuid(String),
    /// A UUID of another version than 7.
    #[error("{shown:?} is not a prediction id kiln made")]
    NotKilns { shown: String, version: usize },
    /// An id whose millisecond is past this server's clock (beyond the skew
    /// replicas' clocks may have).
    #[error("{id} was made {ahead_ms} ms after this server's clock: not an id kiln made")]
    FromTheFuture { id: PredictionId, ahead_ms: u64 },
}

impl BadPredictionId {
    /// The part of a client's id a message shows.
    pub fn shown(text: &str) -> String {
        text.chars().take(ID_SHOWN).collect()
    }
}

/// A target that is not one of the version's answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A classifier's label it does not know.
    #[error(
        "target {label:?} is not one of version {version}'s classes {classes:?}{}",
        if *.more { " ..." } else { "" }
    )]
    UnknownClass {
        /// The label, cut to 100 characters.
        label: String,
        version: String,
        /// The first 20 classes.
        classes: Vec<String>,
        /// Whether it has more classes than listed.
        more: bool,
    },
    /// A regression version of several outputs (feedback takes one number).
    #[error(
        "version {version} has {outputs} outputs; feedback takes single-output regression targets"
    )]
    MultiOutput { version: String, outputs: usize },
    /// A regression target that is not a finite 32-bit number.
    #[error("target must be a finite 32-bit number for version {version} (regression), got {got}")]
    NotANumber {
        version: String,
        /// The target as JSON, cut to 40 characters.
        got: String,
    },
}

impl TargetError {
    /// [`TargetError::UnknownClass`] for `label`, quoting it and `labels` in part.
    pub fn unknown_class(label: &str, version: &str, labels: &[String]) -> Self {
        Self::UnknownClass {
            label: label.chars().take(LABEL_SHOWN).collect(),
            version: version.to_owned(),
            classes: labels.iter().take(CLASSES_SHOWN).cloned().collect(),
            more: labels.len() > CLASSES_SHOWN,
        }
    }

    /// [`TargetError::NotANumber`] for `target`, quoting it in part.
    pub fn not_a_number(version: &str, target: &serde_json::Value) -> Self {
        Self::NotANumber {
            version: version.to_owned(),
            got: target.to_string().chars().take(TARGET_SHOWN).collect(),
        }
    }
}

/// Why one feedback item is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemFault {
    /// The id's prediction is not logged and the item has no instance.
    #[error(
        "prediction id {0} is not in the prediction log (not sampled, or older than it keeps: monitoring.max_log_bytes) nor among this replica's recent answers (monitoring.recent_answers); send its \"instance\" with the target"
    )]
    NotLogged(PredictionId),
    /// The item's instance has another width than the serving version takes.
    #[error("instance has {got} values; version {version} takes {expected}")]
    Width {
        got: usize,
        version: String,
        expected: usize,
    },
    /// A value of the item's instance outside the version's input domain.
    #[error(transparent)]
    Value(#[from] BadInstance),
    #[error(transparent)]
    Target(#[from] TargetError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_quoted_in_part() {
        let labels: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        let e = TargetError::unknown_class(&"x".repeat(1000), "v1", &labels);
        let text = e.to_string();
        assert!(text.len() < 300, "{text}");
        assert!(text.ends_with("\"19\"] ..."), "{text}");
        let e = TargetError::not_a_number("v2", &serde_json::json!("y".repeat(1000)));
        assert!(e.to_string().len() < 150, "{e}");
        assert_eq!(BadPredictionId::shown(&"z".repeat(100)).len(), 40);
    }
}
