//! The monitoring series: the prediction log, feedback and live quality per
//! version. Version labels are bounded: only versions with labelled predictions
//! in a live window (at most 16) have quality series.

use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Collectors {
    log_entries: IntCounterVec,
    log_bytes: IntGauge,
    feedback: IntCounter,
    quality: GaugeVec,
    labelled: GaugeVec,
    drift_score: Gauge,
    drift_prediction: Gauge,
    drift_features: GaugeVec,
    retrain: IntCounterVec,
    trials: IntCounterVec,
    routes: GaugeVec,
    shadow_agreement: Gauge,
}

/// Features with a drift series: the ones with the largest PSI.
const TOP_FEATURES: usize = 5;

impl Collectors {
    pub fn new(registry: &Registry) -> Self {
        let log_entries = IntCounterVec::new(
            Opts::new(
                "kiln_prediction_log_entries_total",
                "Sampled instances, by outcome: written to the log, dropped (the writer was behind) or failed (the store refused the segment).",
            ),
            &["outcome"],
        )
        .unwrap();
        let log_bytes = IntGauge::new(
            "kiln_prediction_log_bytes",
            "Bytes of prediction log segments this replica keeps (bounded by monitoring.max_log_bytes).",
        )
        .unwrap();
        let feedback = IntCounter::new(
            "kiln_feedback_rows_total",
            "Labelled rows accepted through POST /feedback.",
        )
        .unwrap();
        let quality = GaugeVec::new(
            Opts::new(
                "kiln_live_quality",
                "Live quality of a version over its window of labelled predictions, by metric (accuracy, mae, r2).",
            ),
            &["version", "metric"],
        )
        .unwrap();
        let labelled = GaugeVec::new(
            Opts::new(
                "kiln_live_labelled",
                "Labelled predictions in a version's live quality window.",
            ),
            &["version"],
        )
        .unwrap();
        let drift_score = Gauge::new(
            "kiln_drift_score",
            "Largest PSI of the sampled inputs (per feature) and predictions against the serving version's training profile; 0 until the window holds monitoring.drift_min_samples.",
        )
        .unwrap();
        let drift_prediction = Gauge::new(
            "kiln_drift_prediction_psi",
            "PSI of the serving version's predictions against its training targets.",
        )
        .unwrap();
        let drift_features = GaugeVec::new(
            Opts::new(
                "kiln_drift_feature_psi",
                "PSI of the five most drifted input features (bounded: only those five have a series).",
            ),
            &["feature"],
        )
        .unwrap();
        let retrain = IntCounterVec::new(
            Opts::new(
                "kiln_retrain_jobs_total",
                "Automatic retraining jobs started, by trigger (labels, drift, quality).",
            ),
            &["trigger"],
        )
        .unwrap();
        for trigger in ["labels", "drift", "quality", "follow_up"] {
            retrain.with_label_values(&[trigger]);
        }
        let trials = IntCounterVec::new(
            Opts::new(
                "kiln_retrain_trials_total",
                "Live trials (retrain.gate) of retrained versions, by outcome (promoted, rejected, timed_out, failed).",
            ),
            &["outcome"],
        )
        .unwrap();
        for outcome in ["promoted", "rejected", "timed_out", "failed"] {
            trials.with_label_values(&[outcome]);
        }
        let routes = GaugeVec::new(
            Opts::new(
                "kiln_route_percent",
                "Share of unpinned requests routed to another version, by route (canary, shadow); at most one series each.",
            ),
            &["route", "version"],
        )
        .unwrap();
        let shadow_agreement = Gauge::new(
            "kiln_shadow_agreement",
            "Share of mirrored instances the shadow version answered as the serving one did.",
        )
        .unwrap();
        for c in [
            Box::new(retrain.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(trials.clone()),
            Box::new(routes.clone()),
            Box::new(shadow_agreement.clone()),
            Box::new(drift_score.clone()),
            Box::new(drift_prediction.clone()),
            Box::new(drift_features.clone()),
            Box::new(log_entries.clone()),
            Box::new(log_bytes.clone()),
            Box::new(feedback.clone()),
            Box::new(quality.clone()),
            Box::new(labelled.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        for outcome in ["written", "dropped", "failed"] {
            log_entries.with_label_values(&[outcome]);
        }
        Self {
            log_entries,
            log_bytes,
            feedback,
            quality,
            labelled,
            drift_score,
            drift_prediction,
            drift_features,
            retrain,
            trials,
            routes,
            shadow_agreement,
        }
    }

    /// Sets the route series: `(route, version, percent)` for each route in
    /// place, and the shadow's agreement so far.
    pub fn set_routes<'a>(
        &self,
        routes: impl IntoIterator<Item = (&'static str, &'a str, f64)>,
        agreement: Option<f64>,
    ) {
        self.routes.reset();
        for (route, version, percent) in routes {
            self.routes
                .with_label_values(&[route, version])
                .set(percent);
        }
        self.shadow_agreement.set(agreement.unwrap_or(0.0));
    }

    pub fn trial_ended(&self, outcome: &str) {
        self.trials.with_label_values(&[outcome]).inc();
    }

    pub fn retrain_started(&self, trigger: &str) {
        self.retrain.with_label_values(&[trigger]).inc();
    }

    /// Sets the drift series: the overall `score`, the predictions' PSI, and
    /// `(feature, psi)` pairs, largest first (only the first few get a series).
    pub fn set_drift<'a>(
        &self,
        score: f64,
        prediction_psi: f64,
        features: impl IntoIterator<Item = (&'a str, f64)>,
    ) {
        self.drift_score.set(score);
        self.drift_prediction.set(prediction_psi);
        self.drift_features.reset();
        for (feature, psi) in features.into_iter().take(TOP_FEATURES) {
            self.drift_features.with_label_values(&[feature]).set(psi);
        }
    }

    pub fn prediction_log_dropped(&self, n: u64) {
        self.log_entries.with_label_values(&["dropped"]).inc_by(n);
    }

    pub fn prediction_log_failed(&self, n: u64) {
        self.log_entries.with_label_values(&["failed"]).inc_by(n);
    }

    /// `n` entries written; the log now takes `bytes`.
    pub fn prediction_log_written(&self, n: u64, bytes: u64) {
        self.log_entries.with_label_values(&["written"]).inc_by(n);
        self.log_bytes.set(bytes as i64);
    }

    pub fn feedback_rows(&self, n: u64) {
        self.feedback.inc_by(n);
    }

    /// Replaces the quality series with `scores` (versions no longer tracked go).
    pub fn set_quality<'a>(
        &self,
        scores: impl IntoIterator<Item = (&'a str, usize, [(&'static str, Option<f64>); 3])>,
    ) {
        self.quality.reset();
        self.labelled.reset();
        for (version, labelled, metrics) in scores {
            self.labelled
                .with_label_values(&[version])
                .set(labelled as f64);
            for (metric, value) in metrics {
                if let Some(v) = value {
                    self.quality.with_label_values(&[version, metric]).set(v);
                }
            }
        }
    }
}
