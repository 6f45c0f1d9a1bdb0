//! The retraining policy as a pure decision: from what the loop observes at one
//! check (labels kept, drift, the serving version's live quality, the state of
//! its last job and trial), what it does next. No I/O and no clock of its own:
//! the driver passes `now`, so the tests run on paused time.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RetrainConfig;
use crate::monitoring::drift::DriftReport;
use crate::monitoring::quality::Score;

/// What one check sees.
pub struct Observed<'a> {
    pub now: Instant,
    /// The serving version.
    pub serving: &'a str,
    /// Labelled rows kept so far, all versions.
    pub labelled_total: u64,
    /// The live window's drift (read only when `retrain.on_drift`).
    pub drift: Option<DriftReport>,
    /// The serving version's live quality.
    pub serving_score: Option<Score>,
    /// The last automatic job, when the policy waits on one.
    pub job: Option<JobSeen>,
    /// The candidate's live quality, when a trial runs.
    pub candidate_score: Option<Score>,
}

/// The last automatic job, as the trainer reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSeen {
    Running,
    /// It finished and was held for a live trial (its version, if it made one).
    Held(Option<String>),
    /// It finished otherwise, or is unknown.
    Done,
}

/// What the driver does now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Wait,
    /// Train a new version; `trigger` names the reason (a metric label), `why`
    /// says it for the job record.
    Retrain {
        trigger: &'static str,
        why: String,
    },
    /// Serve the held `version` on the gate's route.
    StartTrial {
        version: String,
    },
    /// The trial of `version` is over: remove its route, and promote it if
    /// `passed`. `live` and `serving` are the scores compared.
    EndTrial {
        version: String,
        passed: bool,
        live: f64,
        serving: Option<f64>,
    },
}

/// The policy's memory between checks.
pub struct Policy {
    config: RetrainConfig,
    /// When each trigger last fired.
    fired: HashMap<&'static str, Instant>,
    labels_at_last_job: u64,
    /// The automatic job last submitted.
    job: Option<String>,
    /// A held version on its live trial.
    trial: Option<String>,
}

impl Policy {
    pub fn new(config: RetrainConfig) -> Self {
        Self {
            config,
            fired: HashMap::new(),
            labels_at_last_job: 0,
            job: None,
            trial: None,
        }
    }

    /// The job the policy waits on.
    pub fn job(&self) -> Option<&str> {
        self.job.as_deref()
    }

    /// The version on trial.
    pub fn trial(&self) -> Option<&str> {
        self.trial.as_deref()
    }

    /// The next step. A `Retrain` starts its trigger's cooldown whether or not a
    /// job then starts; an `EndTrial` ends the trial.
    pub fn decide(&mut self, seen: Observed<'_>) -> Decision {
        if let Some(candidate) = self.trial.clone() {
            return self.judge(candidate, &seen);
        }
        if self.job.is_some() {
            match seen.job {
                Some(JobSeen::Running) => return Decision::Wait,
                Some(JobSeen::Held(version)) => {
                    self.job = None;
                    return version
                        .map_or(Decision::Wait, |version| Decision::StartTrial { version });
                }
                Some(JobSeen::Done) | None => self.job = None,
            }
        }
        let Some((trigger, why)) = self.trigger(&seen) else {
            return Decision::Wait;
        };
        self.fired.insert(trigger, seen.now);
        Decision::Retrain { trigger, why }
    }

    /// A job started for the last `Retrain`, when `labelled_total` rows were kept.
    pub fn started(&mut self, job: String, labelled_total: u64) {
        self.job = Some(job);
        self.labels_at_last_job = labelled_total;
    }

    /// The held version now serves on its trial route.
    pub fn trial_started(&mut self, version: String) {
        self.trial = Some(version);
    }

    /// Ends the trial once the candidate has enough labelled predictions: it
    /// passes if its live quality is at least the serving version's.
    fn judge(&mut self, candidate: String, seen: &Observed<'_>) -> Decision {
        let Some(score) = &seen.candidate_score else {
            return Decision::Wait;
        };
        if score.labelled < self.config.gate_min_labelled {
            return Decision::Wait;
        }
        let value = |s: &Score| s.accuracy.or(s.r2).unwrap_or(f64::NEG_INFINITY);
        let serving = seen.serving_score.as_ref().map(value);
        let live = value(score);
        self.trial = None;
        Decision::EndTrial {
            version: candidate,
            passed: serving.is_none_or(|s| live >= s),
            live,
            serving,
        }
    }

    /// The first trigger that fires now (past its cooldown), and why.
    fn trigger(&self, seen: &Observed<'_>) -> Option<(&'static str, String)> {
        let cfg = &self.config;
        let cooldown = Duration::from_millis(cfg.cooldown_ms);
        let ready = |name: &str| {
            self.fired
                .get(name)
                .is_none_or(|t| seen.now.duration_since(*t) >= cooldown)
        };
        let new_labels = seen.labelled_total.saturating_sub(self.labels_at_last_job);
        if cfg.min_new_labels > 0 && new_labels >= cfg.min_new_labels && ready("labels") {
            return Some((
                "labels",
                format!(
                    "{new_labels} new labelled rows (retrain.min_new_labels = {})",
                    cfg.min_new_labels
                ),
            ));
        }
        if cfg.on_drift
            && ready("drift")
            && let Some(drift) = seen.drift.as_ref().filter(|d| d.drifted)
        {
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
        let score = seen.serving_score.as_ref()?;
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
                score.labelled, seen.serving
            ),
        ))
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
