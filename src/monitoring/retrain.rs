//! Automatic retraining (`[retrain]`, off by default). Every
//! `retrain.check_interval_ms` the triggers are checked, each with its own
//! cooldown: enough new labelled rows, drift over its threshold, or live quality
//! of the serving version under its floor. A trigger that fires submits one job
//! (never a second while one is queued or running): the serving version's recipe
//! and architecture, trained on the most recent rows of its kept data plus the
//! labelled feedback, validated on the newest labelled rows, promoted only if it
//! beats the serving version there. The job record names the trigger.
//!
//! With `retrain.gate`, such a version is held instead, and served as a shadow
//! or a canary until it has `retrain.gate_min_labelled` labelled predictions;
//! it is promoted if its live quality is at least the serving version's, else
//! its route is removed. No trigger fires during a trial.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Monitor;
use super::feedback::{self, Labelled};
use super::segments;
use crate::config::{Config, Gate};
use crate::model::{LoadedModel, Task};
use crate::registry::Store;
use crate::serving::routing::RouteKind;
use crate::serving::{ActiveModel, Models};
use crate::training::budget::Budget;
use crate::training::input::{DataSource, JobInput};
use crate::training::jobs::{Submission, Trainer};
use crate::training::kept;
use crate::training::spec::{Promote, TrainSpec};

/// What the policy needs.
pub struct Deps {
    pub config: Arc<Config>,
    pub monitor: Arc<Monitor>,
    pub trainer: Trainer,
    pub store: Store,
    pub model: ActiveModel,
    pub models: Models,
}

/// Starts the policy task (when `retrain.enabled`) on `tracker`; it ends with
/// `stop`, after the check under way.
pub fn spawn(deps: Deps, stop: CancellationToken, tracker: &TaskTracker) {
    if !deps.config.retrain.enabled {
        return;
    }
    tracker.spawn(async move {
        let mut policy = Policy {
            deps: Arc::new(deps),
            fired: HashMap::new(),
            labels_at_last_job: 0,
            job: None,
            trial: None,
        };
        let every = Duration::from_millis(policy.deps.config.retrain.check_interval_ms);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            policy.check().await;
        }
    });
}

struct Policy {
    deps: Arc<Deps>,
    /// When each trigger last fired.
    fired: HashMap<&'static str, Instant>,
    labels_at_last_job: u64,
    /// The automatic job last submitted.
    job: Option<String>,
    /// A held version on its live trial.
    trial: Option<String>,
}

impl Policy {
    async fn check(&mut self) {
        let deps = self.deps.clone();
        let Some(active) = deps.model.current() else {
            return;
        };
        if let Some(candidate) = self.trial.clone() {
            self.judge_trial(&active, &candidate).await;
            return;
        }
        if let Some(id) = self.job.clone() {
            match deps.trainer.get(&id) {
                Some(job) if !job.state.is_finished() => return,
                Some(job) if job.held => {
                    self.job = None;
                    if let Some(version) = job.version {
                        self.start_trial(version).await;
                    }
                    return;
                }
                _ => self.job = None,
            }
        }
        let Some((name, why)) = self.trigger(&active) else {
            return;
        };
        let labelled = deps.monitor.labelled_total();
        let trigger = format!("{name}: {why}");
        let submitted = tokio::task::spawn_blocking(move || {
            let submission = build(&deps, &active, trigger.clone())?;
            deps.trainer
                .submit(submission)
                .map_err(|e| e.to_string())
                .map(|job| (job.id, trigger))
        })
        .await;
        // A trigger that could not start a job waits out its cooldown too.
        self.fired.insert(name, Instant::now());
        match submitted {
            Ok(Ok((id, trigger))) => {
                tracing::info!(job = id, trigger, "automatic retraining started");
                self.deps.monitor.retrain_started(name);
                self.job = Some(id);
                self.labels_at_last_job = labelled;
            }
            Ok(Err(e)) => {
                tracing::warn!(trigger = name, error = %e, "automatic retraining not started")
            }
            Err(e) => tracing::error!(error = %e, "the retraining task failed"),
        }
    }

    /// Serves a held version as the configured shadow or canary.
    async fn start_trial(&mut self, version: String) {
        let cfg = &self.deps.config.retrain;
        let Some(kind) = route_kind(cfg.gate) else {
            return;
        };
        match self
            .deps
            .models
            .route(kind, &version, cfg.gate_percent)
            .await
        {
            Ok(_) => {
                tracing::info!(
                    version,
                    gate = cfg.gate.name(),
                    "a retrained version starts its live trial"
                );
                self.trial = Some(version);
            }
            Err(e) => {
                tracing::warn!(version, error = %e, "the held version cannot start its trial")
            }
        }
    }

    /// Ends the trial once the candidate has enough labelled predictions:
    /// promoted if its live quality is at least the serving version's.
    async fn judge_trial(&mut self, active: &LoadedModel, candidate: &str) {
        let monitor = &self.deps.monitor;
        let Some(score) = monitor.quality(candidate) else {
            return;
        };
        if score.labelled < self.deps.config.retrain.gate_min_labelled {
            return;
        }
        let served = monitor.quality(active.version());
        let value = |s: &super::quality::Score| s.accuracy.or(s.r2).unwrap_or(f64::NEG_INFINITY);
        let passed = served.as_ref().is_none_or(|s| value(&score) >= value(s));
        if let Some(kind) = route_kind(self.deps.config.retrain.gate)
            && let Err(e) = self.deps.models.route(kind, candidate, 0.0).await
        {
            // Another route replaced the trial's (an operator's): it stays.
            tracing::info!(version = candidate, error = %e, "the trial's route is already gone");
        }
        self.trial = None;
        let outcome = if passed {
            match self.deps.models.promote(candidate).await {
                Ok(_) => "promoted",
                Err(e) => {
                    tracing::warn!(version = candidate, error = %e, "the trial passed but promotion failed");
                    "failed"
                }
            }
        } else {
            "rejected"
        };
        monitor.trial_ended(outcome);
        tracing::info!(
            version = candidate,
            outcome,
            live = value(&score),
            serving = served.as_ref().map(value),
            "a retrained version's live trial ended"
        );
    }

    /// The first trigger that fires now (past its cooldown), and why.
    fn trigger(&self, active: &LoadedModel) -> Option<(&'static str, String)> {
        let cfg = &self.deps.config.retrain;
        let cooldown = Duration::from_millis(cfg.cooldown_ms);
        let ready = |name: &str| self.fired.get(name).is_none_or(|t| t.elapsed() >= cooldown);
        let monitor = &self.deps.monitor;
        let new_labels = monitor.labelled_total() - self.labels_at_last_job;
        if cfg.min_new_labels > 0 && new_labels >= cfg.min_new_labels && ready("labels") {
            return Some((
                "labels",
                format!(
                    "{new_labels} new labelled rows (retrain.min_new_labels = {})",
                    cfg.min_new_labels
                ),
            ));
        }
        if cfg.on_drift && ready("drift") {
            let drift = monitor.drift();
            if drift.drifted {
                let worst = drift
                    .features
                    .first()
                    .map(|f| format!("; feature {:?} at {:.3}", f.feature, f.psi))
                    .unwrap_or_default();
                return Some((
                    "drift",
                    format!(
                        "drift score {:.3} over monitoring.drift_threshold {} (predictions at {:.3}{worst})",
                        drift.score, drift.threshold, drift.prediction_psi
                    ),
                ));
            }
        }
        let score = monitor.quality(active.version())?;
        if score.labelled < cfg.min_labelled || !ready("quality") {
            return None;
        }
        let low = match (score.accuracy, score.r2) {
            (Some(a), _) if a < cfg.min_accuracy => Some(format!(
                "live accuracy {a:.3} under retrain.min_accuracy {}",
                cfg.min_accuracy
            )),
            (_, Some(r2)) if r2 < cfg.min_r2 => Some(format!(
                "live R² {r2:.3} under retrain.min_r2 {}",
                cfg.min_r2
            )),
            _ => None,
        }?;
        Some((
            "quality",
            format!(
                "{low} over the last {} labelled predictions of {}",
                score.labelled,
                active.version()
            ),
        ))
    }
}

/// The route a trial runs on.
fn route_kind(gate: Gate) -> Option<RouteKind> {
    match gate {
        Gate::Shadow => Some(RouteKind::Shadow),
        Gate::Canary => Some(RouteKind::Canary),
        Gate::None => None,
    }
}

/// The job: `active`'s recipe and architecture on its kept data plus the
/// labelled feedback (the newest `retrain.max_rows` rows), validated on the newest
/// labelled rows.
fn build(deps: &Deps, active: &LoadedModel, trigger: String) -> Result<Submission, String> {
    let cfg = &deps.config.retrain;
    let manifest = active.manifest();
    let mut spec: TrainSpec = manifest
        .training
        .as_ref()
        .and_then(|t| t.get("spec"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let width = active.input_width();
    let labels = labelled_rows(&deps.store, width, cfg.max_rows);
    if labels.is_empty() {
        return Err("no labelled rows yet".into());
    }
    let kept = kept::read(&deps.store, active.version());
    let header = match kept.as_deref().and_then(|k| k.lines().next()) {
        Some(h) => h.to_string(),
        None => {
            let mut out = csv::Writer::from_writer(Vec::new());
            let names = manifest
                .feature_names
                .clone()
                .unwrap_or_else(|| (0..width).map(|j| format!("x{j}")).collect());
            out.write_record(
                names
                    .iter()
                    .map(String::as_str)
                    .chain([spec.target.as_str()]),
            )
            .map_err(|e| e.to_string())?;
            String::from_utf8(out.into_inner().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?
                .trim_end()
                .to_string()
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
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(row.features.iter().map(f32::to_string).chain([target]))
            .map_err(|e| e.to_string())?;
        let line = String::from_utf8(out.into_inner().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        rows.push(line.trim_end().to_string());
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
    let prepared = input
        .prepare(&Budget::from(&deps.config.training))
        .map_err(|e| e.to_string())?;
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

/// The newest `max` kept labelled rows of `width` features, oldest first. Segments
/// are read newest first and reading stops once `max` rows are in hand, so memory
/// follows `retrain.max_rows`, not the feedback kept.
fn labelled_rows(store: &Store, width: usize, max: usize) -> Vec<Labelled> {
    let mut names = segments::list(store, feedback::FOLDER);
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
    rows.sort_by_key(|r| r.t_ms);
    let extra = rows.len().saturating_sub(max);
    rows.drain(..extra);
    rows
}
