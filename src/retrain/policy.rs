//! The retraining policy as a pure decision: from what the loop observes at one
//! check (labels kept, drift, the serving version's live quality, the state of
//! its last job and trial), what it does next. No I/O and no clock of its own:
//! the driver passes `now`, so the tests run on paused time.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RetrainConfig;
use crate::monitoring::drift::DriftReport;
use crate::monitoring::quality::Score;
use follow::{Recovery, live};

#[path = "follow.rs"]
mod follow;

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
    /// Its validation accuracy or R² when it was trained (a relative quality
    /// floor's reference).
    pub reference: Option<f64>,
    /// How many of its newest labelled predictions came after its live quality
    /// fell, when its window shows a fall.
    pub fell_since: Option<usize>,
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
        /// Labelled rows since the change began, when one was seen: the job's
        /// `since_change` window.
        since: Option<u64>,
    },
    /// Serve the held `version` on the gate's route.
    StartTrial {
        version: String,
    },
    /// The trial of `version` (held by `job`) is over: remove its route, and
    /// promote it if it passed.
    EndTrial {
        version: String,
        job: Option<String>,
        verdict: Verdict,
    },
}

/// How a live trial ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Its live score (accuracy or R²) is at least the serving version's.
    Passed {
        live: f64,
        serving: f64,
    },
    Failed {
        live: f64,
        serving: f64,
    },
    /// `retrain.gate_timeout_ms` passed before both versions had
    /// `retrain.gate_min_labelled` labels.
    TimedOut,
}

impl Verdict {
    pub fn passed(self) -> bool {
        matches!(self, Self::Passed { .. })
    }

    /// As the job record and the trial metric say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Passed { .. } => "passed",
            Self::Failed { .. } => "rejected",
            Self::TimedOut => "timed out",
        }
    }
}

/// The policy's memory between checks.
pub struct Policy {
    config: RetrainConfig,
    /// When each trigger last fired.
    fired: HashMap<&'static str, Instant>,
    labels_at_last_job: u64,
    /// The automatic job last submitted.
    job: Option<String>,
    /// A held version on its live trial, when the trial began, and its job.
    trial: Option<(String, Instant, Option<String>)>,
    /// The job whose version waits to start its trial.
    held: Option<String>,
    /// Versions automatic jobs wrote and did not promote, oldest first.
    rejected: VecDeque<String>,
    /// Why the last job could not start.
    refusal: Option<String>,
    /// When a change (drift, or a fall in live quality) was first seen since
    /// the last job, and the labelled rows kept when it began.
    onset: Option<(Instant, u64)>,
    /// Following a change through: see [`Recovery`].
    recovery: Option<Recovery>,
}

impl Policy {
    pub fn new(config: RetrainConfig) -> Self {
        Self {
            config,
            fired: HashMap::new(),
            labels_at_last_job: 0,
            job: None,
            trial: None,
            held: None,
            rejected: VecDeque::new(),
            refusal: None,
            onset: None,
            recovery: None,
        }
    }

    /// A job could not start, for `why`: whether that is news (a reason
    /// differing from the last one), to be said once rather than at every check.
    pub fn refused(&mut self, why: &str) -> bool {
        let news = self.refusal.as_deref() != Some(why);
        self.refusal = Some(why.to_string());
        news
    }

    /// `version` was written by an automatic job and not promoted: the versions
    /// to delete now, past `retrain.keep_rejected` (oldest first).
    pub fn rejected(&mut self, version: String) -> Vec<String> {
        if !self.rejected.contains(&version) {
            self.rejected.push_back(version);
        }
        let over = self
            .rejected
            .len()
            .saturating_sub(self.config.keep_rejected);
        self.rejected.drain(..over).collect()
    }

    /// The job the policy waits on.
    pub fn job(&self) -> Option<&str> {
        self.job.as_deref()
    }

    /// The version on trial.
    pub fn trial(&self) -> Option<&str> {
        self.trial.as_ref().map(|(v, _, _)| v.as_str())
    }

    /// The next step. A `Retrain` starts its trigger's cooldown whether or not a
    /// job then starts; an `EndTrial` ends the trial.
    pub fn decide(&mut self, seen: Observed<'_>) -> Decision {
        if let Some((candidate, since, job)) = self.trial.clone() {
            return self.judge(candidate, since, job, &seen);
        }
        if self.job.is_some() {
            match seen.job {
                Some(JobSeen::Running) => return Decision::Wait,
                Some(JobSeen::Held(version)) => {
                    self.held = self.job.take();
                    return version
                        .map_or(Decision::Wait, |version| Decision::StartTrial { version });
                }
                Some(JobSeen::Done) | None => self.job = None,
            }
        }
        let drifted = seen.drift.as_ref().is_some_and(|d| d.drifted);
        let fell = self.floor(&seen).is_some_and(|(floor, _)| {
            seen.serving_score
                .as_ref()
                .filter(|s| s.labelled >= self.config.min_labelled)
                .and_then(live)
                .is_some_and(|l| l < floor)
        });
        if self.onset.is_none() && (drifted || fell) {
            // Where the change began: where live quality fell, when the window
            // shows it, else now.
            let back = seen.fell_since.unwrap_or(0) as u64;
            self.onset = Some((seen.now, seen.labelled_total.saturating_sub(back)));
        }
        if let Some(decision) = self.follow_up(&seen) {
            return decision;
        }
        let Some((trigger, why)) = self.trigger(&seen) else {
            return Decision::Wait;
        };
        self.fired.insert(trigger, seen.now);
        let since = self
            .onset
            .filter(|_| trigger != "labels")
            .map(|(_, at)| seen.labelled_total.saturating_sub(at));
        if let (Some((_, at)), Some(target)) = (self.onset, self.target(&seen))
            && trigger != "labels"
            && self.recovery.is_none()
        {
            self.recovery = Some(Recovery {
                target,
                onset_labels: at,
                next_at: seen.labelled_total + seen.labelled_total.saturating_sub(at).max(1),
                left: self.config.follow_ups,
            });
        }
        Decision::Retrain {
            trigger,
            why,
            since,
        }
    }

    /// A job started for the last `Retrain`, when `labelled_total` rows were kept.
    pub fn started(&mut self, job: String, labelled_total: u64) {
        self.refusal = None;
        self.onset = None;
        self.job = Some(job);
        self.labels_at_last_job = labelled_total;
    }

    /// The held version now serves on its trial route, from `now`.
    pub fn trial_started(&mut self, version: String, now: Instant) {
        self.trial = Some((version, now, self.held.take()));
    }

    /// Ends the trial once both the candidate and the serving version have
    /// enough labelled predictions (a score on one side alone proves nothing):
    /// it passes if its live quality is at least the serving version's. Past
    /// `retrain.gate_timeout_ms` it ends as timed out.
    fn judge(
        &mut self,
        candidate: String,
        since: Instant,
        job: Option<String>,
        seen: &Observed<'_>,
    ) -> Decision {
        let enough = |s: &Option<Score>| {
            s.as_ref()
                .filter(|s| s.labelled >= self.config.gate_min_labelled)
                .map(|s| s.accuracy.or(s.r2).unwrap_or(f64::NEG_INFINITY))
        };
        let verdict = match (enough(&seen.candidate_score), enough(&seen.serving_score)) {
            (Some(live), Some(serving)) if live >= serving => Verdict::Passed { live, serving },
            (Some(live), Some(serving)) => Verdict::Failed { live, serving },
            _ if seen.now.duration_since(since)
                >= Duration::from_millis(self.config.gate_timeout_ms) =>
            {
                Verdict::TimedOut
            }
            _ => return Decision::Wait,
        };
        self.trial = None;
        Decision::EndTrial {
            version: candidate,
            job,
            verdict,
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
            && let Some((since, labels_then)) = self.onset
            && let Some(drift) = seen.drift.as_ref().filter(|d| d.drifted)
        {
            let after = seen.labelled_total.saturating_sub(labels_then);
            if after >= cfg.drift_labels {
                let worst = drift
                    .features
                    .first()
                    .map(|f| format!("; feature {:?} at {:.3}", f.feature, f.psi))
                    .unwrap_or_default();
                return Some((
                    "drift",
                    format!(
                        "drift over monitoring.drift_threshold {} since {:.0} s ago (now {:.3}, predictions at {:.3}{worst}); waited for {after} labelled rows after its onset (retrain.drift_labels = {})",
                        drift.threshold,
                        seen.now.duration_since(since).as_secs_f64(),
                        drift.score,
                        drift.prediction_psi,
                        cfg.drift_labels
                    ),
                ));
            }
        }
        let score = seen.serving_score.as_ref()?;
        if score.labelled < cfg.min_labelled || !ready("quality") {
            return None;
        }
        let (floor, set) = self.floor(seen)?;
        let now = live(score)?;
        if now >= floor {
            return None;
        }
        let metric = if score.accuracy.is_some() {
            "accuracy"
        } else {
            "R²"
        };
        Some((
            "quality",
            format!(
                "live {metric} {now:.3} under {set} over the last {} labelled predictions of {}",
                score.labelled, seen.serving
            ),
        ))
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
