//! Monitoring: kiln watching its own answers. Every answered instance gets a
//! prediction id ([`ids`]); a sample of them goes to the prediction log ([`log`]);
//! labels sent back through `POST /feedback` are joined to them ([`feedback`],
//! [`join`]) and scored per version over a sliding window ([`quality`]).
//!
//! [`Monitor`] is the handle the HTTP layer holds.

pub mod drift;
pub mod feedback;
pub mod ids;
pub mod item_error;
pub mod join;
pub mod log;
pub mod quality;
pub mod recent;
mod segments;
pub mod spread;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::MonitoringConfig;
use crate::metrics::Metrics;
use crate::model::Prediction;
use crate::registry::Store;
use feedback::Labelled;
use log::PredictionLog;
use quality::{Outcome, Score, Windows};
use segments::Segments;
use spread::spread;

/// The monitoring state of one replica.
pub struct Monitor {
    config: MonitoringConfig,
    log: Option<PredictionLog>,
    store: Store,
    metrics: Metrics,
    quality: Mutex<Windows>,
    feedback: Mutex<Segments>,
    drift: Arc<Mutex<drift::Window>>,
    sampled: AtomicU64,
    /// Labelled rows accepted since start.
    labelled: AtomicU64,
    /// The shadow version's answers compared with the served ones.
    shadow: Mutex<Option<ShadowStats>>,
    /// Answers to unsampled instances (`monitoring.recent_answers`).
    recent: Option<recent::Recent>,
}

/// How often a shadow version agreed with the served answers.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ShadowStats {
    pub version: String,
    /// Instances answered by both.
    pub compared: u64,
    /// Of those, the same class (classifiers) or within 1% (regression).
    pub agreed: u64,
}

/// `GET /monitoring`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// `monitoring.sample_rate`.
    pub sample_rate: f64,
    /// Live quality of each version with labelled predictions.
    pub versions: Vec<VersionQuality>,
    /// How often the last shadow version agreed with the served answers.
    pub shadow_agreement: Option<ShadowStats>,
}

/// One version's live quality.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionQuality {
    pub version: String,
    #[serde(flatten)]
    pub score: Score,
}

impl Monitor {
    /// Starts the log writer (when `sample_rate` is above 0); the lifecycle owns
    /// its thread and closes it ([`log::LogWriter::close`]) at shutdown.
    pub fn start(
        store: Store,
        replica: &str,
        config: &MonitoringConfig,
        metrics: Metrics,
    ) -> std::io::Result<(Self, Option<log::LogWriter>)> {
        let drift = Arc::new(Mutex::new(drift::Window::new(
            config.drift_window,
            config.drift_min_samples,
            config.drift_threshold,
        )));
        let (log, writer) = if config.sample_rate > 0.0 {
            let (log, writer) = PredictionLog::start(
                store.clone(),
                replica,
                config,
                metrics.clone(),
                drift.clone(),
            )?;
            (Some(log), Some(writer))
        } else {
            (None, None)
        };
        let feedback = Segments::open(
            store.clone(),
            feedback::FOLDER,
            replica,
            config.max_feedback_bytes,
        );
        let monitor = Self {
            config: config.clone(),
            log,
            store,
            metrics,
            quality: Mutex::new(Windows::new(config.window)),
            feedback: Mutex::new(feedback),
            drift,
            sampled: AtomicU64::new(0),
            labelled: AtomicU64::new(0),
            shadow: Mutex::new(None),
            recent: (config.recent_answers > 0).then(|| recent::Recent::new(config.recent_answers)),
        };
        Ok((monitor, writer))
    }

    /// Whether the next request goes to the log: a deterministic spread at
    /// `sample_rate` (every request when 1, none when 0).
    pub fn sample(&self) -> bool {
        if self.log.is_none() {
            return false;
        }
        spread(
            self.sampled.fetch_add(1, Ordering::Relaxed),
            self.config.sample_rate,
        )
    }

    /// Remembers the answers to an unsampled request's instances (see
    /// [`recent`]).
    pub fn remember(
        &self,
        version: &Arc<str>,
        ids: &[ids::PredictionId],
        predictions: &[crate::model::Prediction],
    ) {
        if let Some(recent) = &self.recent {
            recent.remember(version, ids, predictions);
        }
    }

    /// The remembered answer to `id`: the version and the prediction.
    pub fn recent_answer(&self, id: &ids::PredictionId) -> Option<(String, serde_json::Value)> {
        self.recent.as_ref().and_then(|r| r.get(id))
    }

    /// Hands a sampled request to the log writer (see [`log::Logged`]).
    pub fn record(&self, logged: log::Logged) {
        if let Some(log) = &self.log {
            log.record(logged);
        }
    }

    /// The drift of the sampled inputs against the serving version's profile;
    /// also sets the drift series.
    pub fn drift(&self) -> drift::DriftReport {
        let report = self.drift.lock().expect("drift lock").report();
        self.metrics.monitoring.set_drift(
            report.score,
            report.prediction_psi,
            report.features.iter().map(|f| (f.feature.as_str(), f.psi)),
        );
        report
    }

    /// Counts how often the shadow version `version` agreed with the served
    /// answers.
    pub fn shadow_compared(&self, version: &str, served: &[Prediction], shadowed: &[Prediction]) {
        let agreed = served
            .iter()
            .zip(shadowed)
            .filter(|(a, b)| agree(a, b))
            .count() as u64;
        let mut stats = self.shadow.lock().expect("shadow stats lock");
        let s = stats
            .as_mut()
            .filter(|s| s.version == version)
            .map(|s| s as &mut ShadowStats);
        match s {
            Some(s) => {
                s.compared += served.len() as u64;
                s.agreed += agreed;
            }
            None => {
                *stats = Some(ShadowStats {
                    version: version.to_string(),
                    compared: served.len() as u64,
                    agreed,
                })
            }
        }
    }

    pub fn shadow_stats(&self) -> Option<ShadowStats> {
        self.shadow.lock().expect("shadow stats lock").clone()
    }

    /// Asks the log writer to write what it holds (for feedback on fresh ids).
    pub async fn flush_log(&self) -> bool {
        match &self.log {
            Some(log) => log.flush().await,
            None => false,
        }
    }

    /// Whether an id made at `t_ms` may still be waiting in the log writer.
    pub fn may_be_pending(&self, t_ms: u64) -> bool {
        self.log.is_some()
            && crate::clock::unix_now_ms().saturating_sub(t_ms)
                <= self.config.flush_interval_ms + 1000
    }

    pub fn config(&self) -> &MonitoringConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Keeps labelled rows (one feedback segment) and scores their outcomes.
    pub fn accept(
        &self,
        rows: &[Labelled],
        outcomes: &[(String, ids::PredictionId, Outcome)],
    ) -> Result<(), crate::registry::StoreError> {
        if let (Some(first), Some(last)) = (
            rows.iter().map(|r| r.t_ms).min(),
            rows.iter().map(|r| r.t_ms).max(),
        ) {
            let bytes = serde_json::to_vec(rows).expect("labelled rows serialise");
            self.feedback
                .lock()
                .expect("feedback segments lock")
                .write(first, last, &bytes)?;
        }
        self.metrics.monitoring.feedback_rows(rows.len() as u64);
        self.labelled
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        let mut quality = self.quality.lock().expect("quality lock");
        for (version, id, outcome) in outcomes {
            quality.push(version, *id, *outcome);
        }
        let scores = quality.scores();
        self.metrics
            .monitoring
            .set_quality(scores.iter().map(|(v, s)| {
                (
                    v.as_str(),
                    s.labelled,
                    [("accuracy", s.accuracy), ("mae", s.mae), ("r2", s.r2)],
                )
            }));
        Ok(())
    }

    /// Labelled rows accepted since start.
    pub fn labelled_total(&self) -> u64 {
        self.labelled.load(Ordering::Relaxed)
    }

    /// `version`'s live quality, if it has labelled predictions.
    pub fn quality(&self, version: &str) -> Option<Score> {
        self.quality.lock().expect("quality lock").score(version)
    }

    /// How many of `version`'s newest labelled predictions came after its live
    /// quality fell, when its window shows a fall.
    pub fn quality_fell_since(&self, version: &str) -> Option<usize> {
        self.quality
            .lock()
            .expect("quality lock")
            .fell_since(version)
    }

    /// Counts a held version's live trial by how it ended.
    pub fn trial_ended(&self, outcome: &str) {
        self.metrics.monitoring.trial_ended(outcome);
    }

    /// Counts an automatic job started by `trigger`.
    pub fn retrain_started(&self, trigger: &str) {
        self.metrics.monitoring.retrain_started(trigger);
    }

    /// Every tracked version's live quality.
    pub fn report(&self) -> Report {
        let scores = self.quality.lock().expect("quality lock").scores();
        Report {
            sample_rate: self.config.sample_rate,
            versions: scores
                .into_iter()
                .map(|(version, score)| VersionQuality { version, score })
                .collect(),
            shadow_agreement: self.shadow_stats(),
        }
    }
}

/// Whether a shadow's answer agrees with the served one: the same class, or
/// values within 1% (plus 1e-6).
fn agree(served: &Prediction, shadowed: &Prediction) -> bool {
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 + 0.01 * a.abs();
    match (served, shadowed) {
        (Prediction::Class { label: a, .. }, Prediction::Class { label: b, .. }) => a == b,
        (Prediction::Value(a), Prediction::Value(b)) => close(*a, *b),
        (Prediction::Values(a), Prediction::Values(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(*x, *y))
        }
        _ => false,
    }
}
