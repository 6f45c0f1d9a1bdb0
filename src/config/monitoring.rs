//! `[monitoring]`: the prediction log, feedback and live quality.

use serde::{Deserialize, Serialize};

/// What kiln keeps of its own answers, and how it scores them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Share of answered requests written to the prediction log, 0 to 1 (0 turns
    /// the log off; answers still carry prediction ids).
    pub sample_rate: f64,
    /// Bytes of log segments kept in the store, all replicas together; the oldest
    /// go first.
    pub max_log_bytes: u64,
    /// A log segment is written once it holds about this many bytes...
    pub segment_bytes: usize,
    /// ... or this long after its first entry, in milliseconds.
    pub flush_interval_ms: u64,
    /// Entries waiting for the writer; past it, entries are dropped (and counted).
    pub log_queue: usize,
    /// Bytes of feedback segments (labelled rows) kept, all replicas together.
    pub max_feedback_bytes: u64,
    /// Most items in one `POST /feedback`.
    pub max_feedback_items: usize,
    /// Labelled predictions per version that live quality is computed over.
    pub window: usize,
    /// Sampled instances the drift window holds...
    pub drift_window: usize,
    /// ... and needs before it gives figures.
    pub drift_min_samples: usize,
    /// PSI over which an input feature or the predictions count as drifted.
    pub drift_threshold: f64,
    /// Answers to unsampled instances held in memory (per replica), so a label
    /// sent soon after without its instance still counts toward live quality; 0
    /// turns it off.
    pub recent_answers: usize,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            sample_rate: 0.1,
            max_log_bytes: 256 * 1024 * 1024,
            segment_bytes: 1024 * 1024,
            flush_interval_ms: 1000,
            log_queue: 4096,
            max_feedback_bytes: 64 * 1024 * 1024,
            max_feedback_items: 1000,
            window: 1000,
            drift_window: 1000,
            drift_min_samples: 200,
            drift_threshold: 0.2,
            recent_answers: 65536,
        }
    }
}

impl MonitoringConfig {
    /// `(key, reason)` of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err((
                "monitoring.sample_rate",
                format!("must be between 0 and 1, got {}", self.sample_rate),
            ));
        }
        if !(self.drift_threshold > 0.0 && self.drift_threshold <= 100.0) {
            return Err((
                "monitoring.drift_threshold",
                format!(
                    "must be above 0 and at most 100, got {}",
                    self.drift_threshold
                ),
            ));
        }
        let segment = self.segment_bytes as u64;
        if !(4096..=64 * 1024 * 1024).contains(&segment) {
            return Err((
                "monitoring.segment_bytes",
                format!("must be between 4096 and 67108864, got {segment}"),
            ));
        }
        if self.max_log_bytes < 2 * segment {
            return Err((
                "monitoring.max_log_bytes",
                format!(
                    "must be at least twice monitoring.segment_bytes ({}), got {}",
                    2 * segment,
                    self.max_log_bytes
                ),
            ));
        }
        for (key, v, lo, hi) in [
            (
                "monitoring.flush_interval_ms",
                self.flush_interval_ms,
                1,
                3_600_000,
            ),
            ("monitoring.log_queue", self.log_queue as u64, 1, 1 << 20),
            (
                "monitoring.max_feedback_bytes",
                self.max_feedback_bytes,
                4096,
                1 << 40,
            ),
            (
                "monitoring.max_feedback_items",
                self.max_feedback_items as u64,
                1,
                100_000,
            ),
            ("monitoring.window", self.window as u64, 1, 1_000_000),
            (
                "monitoring.drift_window",
                self.drift_window as u64,
                1,
                20_000,
            ),
            (
                "monitoring.drift_min_samples",
                self.drift_min_samples as u64,
                1,
                self.drift_window as u64,
            ),
            (
                "monitoring.recent_answers",
                self.recent_answers as u64,
                0,
                1 << 22,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err((key, format!("must be between {lo} and {hi}, got {v}")));
            }
        }
        Ok(())
    }
}

/// `[retrain]`: automatic retraining when labels pile up, inputs drift or live
/// quality falls. Off by default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetrainConfig {
    pub enabled: bool,
    /// How often the triggers are checked, in milliseconds.
    pub check_interval_ms: u64,
    /// Retrain after this many new labelled rows (0: never for this reason).
    pub min_new_labels: u64,
    /// Retrain when the drift score is over `monitoring.drift_threshold`: once
    /// `drift_labels` labelled rows have arrived after the drift's onset (a job
    /// started on drift alone would learn the old world again).
    pub on_drift: bool,
    pub drift_labels: u64,
    /// Retrain when the serving classifier's live accuracy is under this (0:
    /// never). Unset (the default): under the version's validation accuracy at
    /// training less `quality_drop`.
    pub min_accuracy: Option<f64>,
    /// Retrain when the serving regression model's live R² is under this
    /// (-1e9: never). Unset (the default): under its validation R² less
    /// `quality_drop`.
    pub min_r2: Option<f64>,
    /// How far live quality may fall below the serving version's validation
    /// score before the quality trigger fires, when no absolute floor is set.
    pub quality_drop: f64,
    /// After a drift or quality job, while live quality stays short of the
    /// score before the change, the loop retrains again (without the cooldown)
    /// each time the labels since the change have doubled, at most this many
    /// times.
    pub follow_ups: u32,
    /// The `recent` candidate window: the newest this many labelled rows.
    pub recent_rows: usize,
    /// Labelled predictions of the serving version live quality needs first.
    pub min_labelled: usize,
    /// After a trigger fires, it waits this long before it may fire again.
    pub cooldown_ms: u64,
    /// The job validates on the most recent labelled rows, at most this many
    /// (half of them when fewer have arrived).
    pub holdout_rows: usize,
    /// The job trains on the most recent rows of the version's kept data plus
    /// the labelled feedback, at most this many.
    pub max_rows: usize,
    /// What a retrained version that beats the serving one on the newest labels
    /// must pass before it is promoted: nothing, or a live trial as a `shadow` or
    /// a `canary` at `gate_percent`, until both it and the serving version have
    /// `gate_min_labelled` labelled predictions; it passes with live quality at
    /// least the serving version's.
    pub gate: Gate,
    pub gate_percent: f64,
    pub gate_min_labelled: usize,
    /// A trial still short of labels after this long ends as rejected.
    pub gate_timeout_ms: u64,
    /// Versions automatic jobs wrote but did not promote (beaten on the newest
    /// labels, or rejected by their trial) kept at most; older ones are deleted
    /// with their kept data.
    pub keep_rejected: usize,
}

/// `retrain.gate`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    #[default]
    None,
    Shadow,
    Canary,
}

impl Gate {
    /// As configs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Shadow => "shadow",
            Self::Canary => "canary",
        }
    }
}

impl Default for RetrainConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            check_interval_ms: 5000,
            min_new_labels: 0,
            on_drift: true,
            drift_labels: 200,
            min_accuracy: None,
            min_r2: None,
            quality_drop: 0.1,
            follow_ups: 4,
            recent_rows: 1000,
            min_labelled: 100,
            cooldown_ms: 600_000,
            holdout_rows: 200,
            max_rows: 20_000,
            gate: Gate::None,
            gate_percent: 10.0,
            gate_min_labelled: 200,
            gate_timeout_ms: 86_400_000,
            keep_rejected: 2,
        }
    }
}

impl RetrainConfig {
    /// `(key, reason)` of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(v) = self.min_accuracy
            && !(0.0..=1.0).contains(&v)
        {
            return Err((
                "retrain.min_accuracy",
                format!("must be between 0 and 1, got {v}"),
            ));
        }
        if let Some(v) = self.min_r2
            && !(-1e9..=1.0).contains(&v)
        {
            return Err((
                "retrain.min_r2",
                format!("must be between -1e9 and 1, got {v}"),
            ));
        }
        if !(self.quality_drop > 0.0 && self.quality_drop <= 1.0) {
            return Err((
                "retrain.quality_drop",
                format!("must be above 0 and at most 1, got {}", self.quality_drop),
            ));
        }
        if !(self.gate_percent > 0.0 && self.gate_percent <= 100.0) {
            return Err((
                "retrain.gate_percent",
                format!("must be above 0 and at most 100, got {}", self.gate_percent),
            ));
        }
        for (key, v, lo, hi) in [
            (
                "retrain.gate_min_labelled",
                self.gate_min_labelled as u64,
                1,
                1_000_000,
            ),
            (
                "retrain.check_interval_ms",
                self.check_interval_ms,
                10,
                3_600_000,
            ),
            ("retrain.cooldown_ms", self.cooldown_ms, 0, 30 * 86_400_000),
            ("retrain.keep_rejected", self.keep_rejected as u64, 0, 1_000),
            ("retrain.follow_ups", u64::from(self.follow_ups), 0, 100),
            (
                "retrain.recent_rows",
                self.recent_rows as u64,
                10,
                100_000_000,
            ),
            ("retrain.drift_labels", self.drift_labels, 1, 1_000_000),
            (
                "retrain.gate_timeout_ms",
                self.gate_timeout_ms,
                1_000,
                30 * 86_400_000,
            ),
            (
                "retrain.min_labelled",
                self.min_labelled as u64,
                1,
                1_000_000,
            ),
            (
                "retrain.holdout_rows",
                self.holdout_rows as u64,
                1,
                1_000_000,
            ),
            ("retrain.max_rows", self.max_rows as u64, 10, 10_000_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err((key, format!("must be between {lo} and {hi}, got {v}")));
            }
        }
        Ok(())
    }
}
