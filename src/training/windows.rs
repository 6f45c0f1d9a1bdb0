//! Recency windows: one job trains a candidate per window (a suffix of its rows,
//! oldest first, the validation rows at the end shared by all) and keeps the one
//! that validates best. Automatic retraining uses it to decide which data
//! describes the world now; a job without windows trains once on all its rows.

use serde::{Deserialize, Serialize};

use super::data::RawTable;
use super::fit::EpochReport;

/// A window: the newest `rows` rows of the job's data (validation rows
/// included).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Window {
    /// `all`, `since_change`, `recent`.
    pub name: String,
    pub rows: usize,
    /// What the window holds, for the job record.
    pub about: String,
}

/// One candidate's result, as the job record lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Candidate {
    pub window: String,
    pub about: String,
    /// Rows it trained on (its validation rows are the job's).
    pub train_rows: usize,
    /// Its best epoch's validation accuracy or R², and loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_metric: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    pub epochs_run: usize,
    /// The candidate the job wrote as its version.
    pub chosen: bool,
    /// Why it could not train.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Candidate {
    pub fn trained(window: &Window, train_rows: usize, best: &EpochReport, epochs: usize) -> Self {
        Self {
            window: window.name.clone(),
            about: window.about.clone(),
            train_rows,
            val_metric: Some(best.val_metric),
            val_loss: Some(best.val_loss),
            epochs_run: epochs,
            chosen: false,
            error: None,
        }
    }

    pub fn failed(window: &Window, error: String) -> Self {
        Self {
            window: window.name.clone(),
            about: window.about.clone(),
            train_rows: 0,
            val_metric: None,
            val_loss: None,
            epochs_run: 0,
            chosen: false,
            error: Some(error),
        }
    }
}

/// Whether `a` validates better than `b`: a higher metric, or an equal one
/// (within 1e-9) with a lower loss.
pub fn better(a: &EpochReport, b: &EpochReport) -> bool {
    let (ma, mb) = (finite_or_worst(a.val_metric), finite_or_worst(b.val_metric));
    if (ma - mb).abs() > 1e-9 {
        return ma > mb;
    }
    finite_or_worst(-a.val_loss) > finite_or_worst(-b.val_loss)
}

fn finite_or_worst(v: f64) -> f64 {
    if v.is_finite() { v } else { f64::NEG_INFINITY }
}

/// Keeps the newest `rows` rows of `raw`.
pub fn keep_newest(raw: &mut RawTable, rows: usize) {
    let n = raw.targets.len();
    let drop = n.saturating_sub(rows);
    if drop == 0 {
        return;
    }
    let width = raw.features.len();
    raw.targets.drain(..drop);
    raw.x.drain(..drop * width);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::data::Target;

    fn report(metric: f64, loss: f64) -> EpochReport {
        EpochReport {
            epoch: 1,
            train_loss: 0.0,
            val_loss: loss,
            val_metric: metric,
            val_rmse: None,
            samples_per_second: 0.0,
            seconds: 0.0,
        }
    }

    #[test]
    fn the_higher_metric_wins_then_the_lower_loss() {
        assert!(better(&report(0.9, 1.0), &report(0.8, 0.1)));
        assert!(!better(&report(0.8, 0.1), &report(0.9, 1.0)));
        assert!(better(&report(0.9, 0.2), &report(0.9, 0.3)));
        assert!(better(&report(0.1, 0.2), &report(f64::NAN, 0.1)));
    }

    #[test]
    fn a_window_keeps_the_newest_rows() {
        let mut raw = RawTable {
            features: vec!["a".into(), "b".into()],
            x: (0..10).map(|v| v as f32).collect(),
            targets: (0..5).map(|v| Some(Target::Number(v as f64))).collect(),
        };
        keep_newest(&mut raw, 2);
        assert_eq!(raw.x, vec![6.0, 7.0, 8.0, 9.0]);
        assert_eq!(
            raw.targets,
            vec![Some(Target::Number(3.0)), Some(Target::Number(4.0))]
        );
        keep_newest(&mut raw, 10);
        assert_eq!(raw.targets.len(), 2);
    }
}
