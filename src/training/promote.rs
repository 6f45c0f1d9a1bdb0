//! After fitting: describing the new version, and deciding whether it replaces the
//! active one (the `promote` policy). Shared by background jobs and `kiln train`.

use super::data::{Dataset, RowCounts};
use super::evaluate;
use super::fit::EpochReport;
use super::spec::{Promote, TrainSpec};
use crate::model::{LoadedModel, Manifest};

/// Fills in a trained version's source, metrics and training summary.
#[allow(clippy::too_many_arguments)] // one call site each in the job and the CLI
pub fn annotate(
    manifest: &mut Manifest,
    source: String,
    run: &str,
    spec: &TrainSpec,
    rows: &RowCounts,
    best: &EpochReport,
    stopped_early: bool,
    validation: &Dataset,
) {
    manifest.source = source;
    manifest.metrics.extend(metrics_of(best, validation.task));
    manifest.training = Some(serde_json::json!({
        "run": run,
        "spec": spec,
        "rows": rows,
        "task_reason": validation.task_reason,
        "best_epoch": best.epoch,
        "stopped_early": stopped_early,
    }));
}

/// A trained version's validation figures, named as `GET /models` and the job
/// record show them: `accuracy` or `r2`, `val_loss`, and `rmse` for regression.
pub fn metrics_of(
    best: &EpochReport,
    task: crate::model::Task,
) -> serde_json::Map<String, serde_json::Value> {
    let mut metrics = serde_json::Map::new();
    metrics.insert(evaluate::metric_name(task).into(), best.val_metric.into());
    metrics.insert("val_loss".into(), best.val_loss.into());
    if let Some(rmse) = best.val_rmse {
        metrics.insert("rmse".into(), rmse.into());
    }
    metrics
}

/// How much better (absolute) the new version must score to count as better: both
/// are scored by the same code on the same rows, so this only absorbs rounding.
const MIN_GAIN: f64 = 1e-6;

/// Whether `candidate` (the new version) should serve, and why (for the record).
/// Under `if_better`, both versions are scored by [`evaluate::score`] on the new
/// version's validation rows.
pub fn decide(
    policy: Promote,
    active: Option<&LoadedModel>,
    candidate: &LoadedModel,
    validation: &Dataset,
) -> (bool, String) {
    let metric = evaluate::metric_name(validation.task);
    match policy {
        Promote::Always => (true, "promote = always".into()),
        Promote::Never => (false, "promote = never".into()),
        Promote::IfBetter => {
            let Some(active) = active else {
                return (true, "no version was active".into());
            };
            if active.manifest().placeholder {
                return (
                    true,
                    format!(
                        "the active version {} is the default model, a placeholder any first trained version replaces",
                        active.version()
                    ),
                );
            }
            let (Some(old), Some(new)) = (
                evaluate::score(active, validation),
                evaluate::score(candidate, validation),
            ) else {
                return (
                    false,
                    format!(
                        "not promoted: the active version {} takes other inputs or answers another task or labels, so the two cannot be compared; make it active with kiln promote {} (or POST /models/{}/promote), or train with \"promote\": \"always\" (kiln train --promote always)",
                        active.version(),
                        candidate.version(),
                        candidate.version()
                    ),
                );
            };
            let better = new > old + MIN_GAIN;
            let verb = if better { "beats" } else { "does not beat" };
            (
                better,
                format!(
                    "validation {metric} {new:.4} {verb} active {}'s {old:.4} on the same rows",
                    active.version()
                ),
            )
        }
    }
}
