//! Automatic retraining (`[retrain]`, off by default): the closed loop, above
//! monitoring (what it observes), training (the jobs it submits) and serving
//! (the routes and promotions it asks for).
//!
//! Every `retrain.check_interval_ms` the loop observes and asks [`policy`] what
//! to do. Triggers each have their own cooldown: enough new labelled rows, drift
//! over its threshold, or live quality of the serving version under its floor. A
//! trigger that fires submits one job (never a second while one is queued or
//! running), built by [`job`]; the job record names the trigger.
//!
//! With `retrain.gate`, such a version is held instead, and served as a shadow
//! or a canary until it has `retrain.gate_min_labelled` labelled predictions;
//! it is promoted if its live quality is at least the serving version's, else
//! its route is removed. No trigger fires during a trial.

pub mod job;
mod named;
pub mod policy;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Gate};
use crate::executor::ActiveModel;
use crate::model::LoadedModel;
use crate::monitoring::Monitor;
use crate::registry::Store;
use crate::serving::Models;
use crate::serving::routing::RouteKind;
use crate::training::jobs::Trainer;
use crate::training::kept;
use policy::{Decision, JobSeen, Observed, Policy, Verdict};

/// What the loop needs.
pub struct Deps {
    pub config: Arc<Config>,
    pub monitor: Arc<Monitor>,
    pub trainer: Trainer,
    pub store: Store,
    pub model: ActiveModel,
    pub models: Models,
    /// The named model the loop follows; `None`: the default model.
    pub target: Option<crate::training::jobs::Target>,
}

pub use named::spawn_named;

/// Starts the loop (when `retrain.enabled`) on `tracker`; it ends with `stop`,
/// after the check under way.
pub fn spawn(deps: Deps, stop: CancellationToken, tracker: &TaskTracker) {
    if !deps.config.retrain.enabled {
        return;
    }
    tracker.spawn(async move {
        let deps = Arc::new(deps);
        let mut policy = Policy::new(deps.config.retrain.clone());
        let every = Duration::from_millis(deps.config.retrain.check_interval_ms);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            check(&deps, &mut policy).await;
        }
    });
}

/// One check: observe, decide, act.
async fn check(deps: &Arc<Deps>, policy: &mut Policy) {
    let Some(active) = deps.model.current() else {
        return;
    };
    let monitor = &deps.monitor;
    // A finished automatic job whose version was not promoted (nor held for a
    // trial) counts against retrain.keep_rejected.
    let rejected = policy
        .job()
        .and_then(|id| deps.trainer.get(id))
        .filter(|j| j.state.is_finished() && !j.held && j.promoted != Some(true))
        .and_then(|j| j.version);
    if let Some(version) = rejected {
        discard(deps, policy.rejected(version)).await;
    }
    let labelled_total = monitor.labelled_total();
    let seen = Observed {
        now: tokio::time::Instant::now(),
        serving: active.version(),
        labelled_total,
        drift: (deps.config.retrain.on_drift && policy.trial().is_none()).then(|| monitor.drift()),
        serving_score: monitor.quality(active.version()),
        reference: reference(&active),
        fell_since: monitor.quality_fell_since(active.version()),
        job: policy.job().map(|id| match deps.trainer.get(id) {
            Some(job) if !job.state.is_finished() => JobSeen::Running,
            Some(job) if job.held => JobSeen::Held(job.version),
            _ => JobSeen::Done,
        }),
        candidate_score: policy.trial().and_then(|v| monitor.quality(v)),
    };
    match policy.decide(seen) {
        Decision::Wait => {}
        Decision::Retrain {
            trigger,
            why,
            since,
        } => {
            let asked = Asked {
                trigger,
                why,
                since,
            };
            retrain(deps, policy, active, asked, labelled_total).await
        }
        Decision::StartTrial { version } => start_trial(deps, policy, version).await,
        Decision::EndTrial {
            version,
            job,
            verdict,
        } => {
            end_trial(deps, &version, job, verdict).await;
            if !verdict.passed() {
                discard(deps, policy.rejected(version)).await;
            }
        }
    }
}

/// The serving version's validation score when it was trained: accuracy for a
/// classifier, R² for a regression model.
fn reference(active: &LoadedModel) -> Option<f64> {
    let metric = crate::training::evaluate::metric_name(active.manifest().net.task);
    active.manifest().metrics.get(metric)?.as_f64()
}

/// What a `Retrain` decision asked for.
struct Asked {
    trigger: &'static str,
    why: String,
    since: Option<u64>,
}

/// Builds and submits the job (file reads: off the runtime's threads).
async fn retrain(
    deps: &Arc<Deps>,
    policy: &mut Policy,
    active: Arc<LoadedModel>,
    asked: Asked,
    labelled_total: u64,
) {
    let Asked {
        trigger,
        why,
        since,
    } = asked;
    let d = deps.clone();
    let reason = format!("{trigger}: {why}");
    let submitted = tokio::task::spawn_blocking(move || {
        let mut submission = job::build(&d.config, &d.store, &active, reason.clone(), since)
            .map_err(|e| e.to_string())?;
        submission.target = d.target.clone();
        d.trainer
            .submit(submission)
            .map_err(|e| e.to_string())
            .map(|job| (job.id, reason))
    })
    .await;
    match submitted {
        Ok(Ok((id, reason))) => {
            tracing::info!(job = id, trigger = reason, "automatic retraining started");
            deps.monitor.retrain_started(trigger);
            policy.started(id, labelled_total);
        }
        // Said once: the same reason at every check is noise.
        Ok(Err(e)) if policy.refused(&e) => {
            tracing::warn!(trigger, error = %e, "automatic retraining not started")
        }
        Ok(Err(_)) => {}
        Err(e) => tracing::error!(error = %e, "the retraining task failed"),
    }
}

/// Serves a held version as the configured shadow or canary.
async fn start_trial(deps: &Deps, policy: &mut Policy, version: String) {
    let cfg = &deps.config.retrain;
    let Some(kind) = route_kind(cfg.gate) else {
        return;
    };
    match deps.models.route(kind, &version, cfg.gate_percent).await {
        Ok(_) => {
            tracing::info!(
                version,
                gate = cfg.gate.name(),
                "a retrained version starts its live trial"
            );
            policy.trial_started(version, tokio::time::Instant::now());
        }
        Err(e) => {
            tracing::warn!(version, error = %e, "the held version cannot start its trial")
        }
    }
}

/// Removes the trial's route, and promotes the candidate if it passed.
async fn end_trial(deps: &Arc<Deps>, candidate: &str, job: Option<String>, verdict: Verdict) {
    if let Some(kind) = route_kind(deps.config.retrain.gate)
        && let Err(e) = deps.models.route(kind, candidate, 0.0).await
    {
        // Another route replaced the trial's (an operator's): it stays.
        tracing::info!(version = candidate, error = %e, "the trial's route is already gone");
    }
    let outcome = if verdict.passed() {
        match deps.models.promote(candidate).await {
            Ok(_) => "promoted",
            Err(e) => {
                tracing::warn!(version = candidate, error = %e, "the trial passed but promotion failed");
                "failed"
            }
        }
    } else if verdict == Verdict::TimedOut {
        "timed_out"
    } else {
        "rejected"
    };
    deps.monitor.trial_ended(outcome);
    if let Some(job) = job {
        let said = match verdict {
            Verdict::Passed { live, serving } | Verdict::Failed { live, serving } => format!(
                "{}: live {live:.3} against the serving version's {serving:.3}; {}",
                verdict.name(),
                outcome.replace('_', " ")
            ),
            Verdict::TimedOut => format!(
                "timed out: fewer than retrain.gate_min_labelled = {} labels on a side after retrain.gate_timeout_ms = {}; rejected",
                deps.config.retrain.gate_min_labelled, deps.config.retrain.gate_timeout_ms
            ),
        };
        let (d, promoted) = (deps.clone(), outcome == "promoted");
        let _ =
            tokio::task::spawn_blocking(move || d.trainer.trial_ended(&job, said, promoted)).await;
    }
    tracing::info!(
        version = candidate,
        outcome,
        verdict = ?verdict,
        "a retrained version's live trial ended"
    );
}

/// Deletes rejected versions and their kept data. One that meanwhile serves
/// (the manager refuses it) or that a route names (an operator's canary or
/// shadow) stays.
async fn discard(deps: &Arc<Deps>, versions: Vec<String>) {
    for version in versions {
        let routes = deps.models.routes();
        let routed = [RouteKind::Canary, RouteKind::Shadow]
            .into_iter()
            .any(|kind| routes.describe(kind).is_some_and(|r| r.version == version));
        if routed {
            tracing::info!(
                version,
                "a rejected automatic version stays: a route names it"
            );
            continue;
        }
        match deps.models.delete(&version).await {
            Ok(()) => {
                let store = deps.store.clone();
                let name = kept::record_name(&version);
                let _ = tokio::task::spawn_blocking(move || store.delete_record(&name)).await;
                tracing::info!(
                    version,
                    "deleted a rejected automatic version (retrain.keep_rejected)"
                );
            }
            Err(e) => tracing::info!(version, error = %e, "a rejected automatic version stays"),
        }
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
