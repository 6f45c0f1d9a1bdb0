//! The job automatic retraining submits: the serving version's recipe and
//! architecture, validated on the newest labelled rows, with a candidate per
//! recency window of the rows before them (oldest first: the version's kept
//! data, then the labelled feedback):
//! - `all`: every row, at most `retrain.max_rows`;
//! - `recent`: the newest `retrain.recent_rows` labelled rows;
//! - `since_change`: the labelled rows since the change that triggered the job
//!   began (drift's onset, or where live quality fell), when one was seen.
//!
//! The job keeps the candidate that validates best, and promotes it only if it
//! beats the serving version on the same rows.

use crate::config::{Config, Gate};
use crate::model::{LoadedModel, Task};
use crate::monitoring::feedback;
use crate::registry::Store;
use crate::training::budget::Budget;
use crate::training::error::TrainError;
use crate::training::input::{DataSource, JobInput};
use crate::training::jobs::Submission;
use crate::training::kept;
use crate::training::spec::{Promote, TrainSpec};
use crate::training::windows::Window;

/// Why no job could be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no labelled rows yet")]
    NoLabels,
    /// A version without kept data retrains on feedback alone, which must show
    /// every class the version answers.
    #[error(
        "version {version} has no kept training data and the feedback holds {seen} of its {classes} classes; retraining waits for labels of every class"
    )]
    FewClasses {
        version: String,
        seen: usize,
        classes: usize,
    },
    #[error(transparent)]
    Data(#[from] TrainError),
}

/// Fewest rows a candidate window trains on.
const MIN_WINDOW: usize = 30;
/// Fewest validation rows when the change is recent (fewer labels since it).
const MIN_HOLDOUT: usize = 50;

/// The job: `active`'s recipe and architecture on its windows (see the module
/// doc); `since` is the labelled rows since the change began, when known.
pub fn build(
    config: &Config,
    store: &Store,
    active: &LoadedModel,
    trigger: String,
    since: Option<u64>,
) -> Result<Submission, BuildError> {
    let cfg = &config.retrain;
    let manifest = active.manifest();
    let mut spec: TrainSpec = manifest
        .training
        .as_ref()
        .and_then(|t| t.get("spec"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let width = active.input_width();
    let labels = feedback::newest(store, width, cfg.max_rows);
    if labels.is_empty() {
        return Err(BuildError::NoLabels);
    }
    let kept = kept::read(store, active.version());
    if kept.is_none() && manifest.net.task == Task::Classification {
        let classes = manifest.class_count();
        let seen = labels
            .iter()
            .map(|r| r.target.to_string())
            .collect::<std::collections::HashSet<_>>()
            .len();
        if seen < classes {
            return Err(BuildError::FewClasses {
                version: active.version().into(),
                seen,
                classes,
            });
        }
    }
    let header = match kept.as_deref().and_then(|k| k.lines().next()) {
        Some(h) => h.to_string(),
        None => {
            let names = manifest
                .feature_names
                .clone()
                .unwrap_or_else(|| (0..width).map(|j| format!("x{j}")).collect());
            csv_line(
                names
                    .iter()
                    .map(String::as_str)
                    .chain([spec.target.as_str()]),
            )
        }
    };
    let mut rows: Vec<String> = kept
        .as_deref()
        .map(|k| k.lines().skip(1).map(str::to_string).collect())
        .unwrap_or_default();
    for row in &labels {
        let target = match &row.target {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        rows.push(csv_line(
            row.features.iter().map(f32::to_string).chain([target]),
        ));
    }
    let keep = rows.len().min(cfg.max_rows);
    let rows = &rows[rows.len() - keep..];
    // Rows since the change, counted among the labels in hand.
    let since = since.map(|n| usize::try_from(n).unwrap_or(usize::MAX).min(labels.len()));
    let holdout = cfg
        .holdout_rows
        .min(labels.len().div_ceil(2))
        .min(since.map_or(usize::MAX, |n| n.div_ceil(2).max(MIN_HOLDOUT)))
        .min(keep - 1)
        .max(1);
    let windows = windows(cfg, keep, labels.len(), holdout, since);
    let csv = std::iter::once(header.as_str())
        .chain(rows.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    spec.promote = Promote::IfBetter;
    // Its windows are its candidates; a recipe's search would multiply them.
    spec.search = None;
    spec.validation_last = Some(holdout);
    spec.task = Some(manifest.net.task);
    if manifest.net.task == Task::Regression {
        spec.loss = None;
    }
    let mut net = manifest.net.clone();
    net.preprocess = None;
    let input = JobInput {
        spec,
        data: DataSource::Csv(csv),
        model_file: Some(net),
        windows,
        newest: None,
        delimiter: Some(b','),
    };
    let prepared = input.prepare(&Budget::from(&config.training))?;
    Ok(Submission {
        task: prepared.data.task,
        task_reason: prepared.data.task_reason.clone(),
        rows: prepared.rows,
        spec: prepared.spec,
        input,
        trigger: Some(trigger),
        gate: match cfg.gate {
            Gate::None => None,
            Gate::Shadow => Some("shadow".into()),
            Gate::Canary => Some("canary".into()),
        },
        target: None,
    })
}

/// The candidate windows over `rows` rows (the newest `labels` of them labelled
/// feedback, the newest `holdout` the validation rows), by how many rows each
/// holds, validation included; a window the same size as one before it, or
/// with fewer than [`MIN_WINDOW`] rows to train on, is left out.
fn windows(
    cfg: &crate::config::RetrainConfig,
    rows: usize,
    labels: usize,
    holdout: usize,
    since: Option<usize>,
) -> Vec<Window> {
    let labels = labels.min(rows);
    let mut out: Vec<Window> = Vec::new();
    let mut add = |name: &str, train: usize, about: String| {
        if train >= MIN_WINDOW.min(rows - holdout) && out.iter().all(|w| w.rows != train + holdout)
        {
            out.push(Window {
                name: name.into(),
                rows: train + holdout,
                about,
            });
        }
    };
    if let Some(n) = since {
        let train = n.saturating_sub(holdout);
        add(
            "since_change",
            train,
            format!("the {train} labelled rows since the change began"),
        );
    }
    let recent = cfg.recent_rows.min(labels.saturating_sub(holdout));
    add(
        "recent",
        recent,
        format!("the newest {recent} labelled rows (retrain.recent_rows)"),
    );
    let all = rows - holdout;
    add(
        "all",
        all,
        format!("all {all} rows: the version's kept data and the feedback (retrain.max_rows)"),
    );
    out
}

/// One CSV record, quoted where a field needs it, without its line end.
fn csv_line<I>(fields: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail, and the fields are UTF-8.
    out.write_record(fields).expect("a CSV record in memory");
    let bytes = out.into_inner().expect("a CSV record in memory");
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetrainConfig;

    fn names(w: &[Window]) -> Vec<(&str, usize)> {
        w.iter().map(|w| (w.name.as_str(), w.rows)).collect()
    }

    #[test]
    fn windows_are_suffixes_sharing_the_validation_rows() {
        let cfg = RetrainConfig::default();
        // 2,000 kept rows and 1,600 labels, 400 of them since the change; 200
        // validation rows.
        let w = windows(&cfg, 3_600, 1_600, 200, Some(400));
        assert_eq!(
            names(&w),
            vec![("since_change", 400), ("recent", 1_200), ("all", 3_600)]
        );
        // No change seen: no since_change; a recent window as large as all of
        // the rows is left out.
        let w = windows(&cfg, 500, 500, 100, None);
        assert_eq!(names(&w), vec![("recent", 500)]);
        // A change too recent to train on leaves its window out.
        let w = windows(&cfg, 3_600, 1_600, 50, Some(60));
        assert_eq!(names(&w), vec![("recent", 1_050), ("all", 3_600)]);
    }
}
