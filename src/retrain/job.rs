//! The job automatic retraining submits: the serving version's recipe and
//! architecture, on the newest rows of its kept data plus the labelled feedback,
//! validated on the newest labelled rows.

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

/// The job: `active`'s recipe and architecture on its kept data plus the
/// labelled feedback (the newest `retrain.max_rows` rows), validated on the newest
/// labelled rows.
pub fn build(
    config: &Config,
    store: &Store,
    active: &LoadedModel,
    trigger: String,
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
    let holdout = cfg
        .holdout_rows
        .min(labels.len().div_ceil(2))
        .min(keep - 1)
        .max(1);
    let csv = std::iter::once(header.as_str())
        .chain(rows.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    spec.promote = Promote::IfBetter;
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
    };
    let prepared = input.prepare(&Budget::from(&config.training))?;
    Ok(Submission {
        task: prepared.data.task,
        task_reason: prepared.data.task_reason.clone(),
        rows: prepared.rows,
        input,
        trigger: Some(trigger),
        gate: match cfg.gate {
            Gate::None => None,
            Gate::Shadow => Some("shadow".into()),
            Gate::Canary => Some("canary".into()),
        },
    })
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
