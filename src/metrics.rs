//! Every Prometheus metric kiln exports: names, help, labels and buckets in one place.
//!
//! [`Metrics`] is a cheap `Clone` handle (the collectors are internally shared and
//! atomic), held by the HTTP layer, the batcher and the executor. Each process owns
//! its own registry, so tests running several servers in one process do not mix.

use std::sync::Arc;

pub mod models;
mod monitoring;
mod store;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets (seconds): 100 us .. 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Rows-per-batch buckets.
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Why a request was turned away before reaching the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The queue's row budget was spent (429).
    QueueFull,
    /// No model loaded yet, or shutting down (503).
    NotReady,
    /// The request itself was wrong (4xx).
    InvalidInput,
    /// The body or the row count was over its limit (413).
    TooLarge,
    /// The client went away while its rows waited; they were skipped.
    ClientGone,
    /// The request's deadline passed (or was predicted to) before it was computed
    /// (504).
    Deadline,
}

impl RejectReason {
    fn label(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::NotReady => "not_ready",
            Self::InvalidInput => "invalid_input",
            Self::TooLarge => "too_large",
            Self::ClientGone => "client_gone",
            Self::Deadline => "deadline",
        }
    }
}

/// The collectors, registered in one registry. One `Arc`: a clone per request is
/// one reference count, not a struct of handles.
#[derive(Clone)]
pub struct Metrics(Arc<Collectors>);

impl std::ops::Deref for Metrics {
    type Target = Collectors;
    fn deref(&self) -> &Collectors {
        &self.0
    }
}

/// What [`Metrics`] shares.
pub struct Collectors {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    pub queue_duration: Histogram,
    pub batch_compute: Histogram,
    pub batch_size: Histogram,
    pub queue_depth: IntGauge,
    rejected: IntCounterVec,
    model_info: IntGaugeVec,
    pub model_swaps: IntCounter,
    /// 1 while this replica is ready (a model loaded, not shutting down).
    pub ready: IntGauge,
    /// `batching.queue_capacity`, so dashboards can show saturation.
    pub queue_capacity: IntGauge,
    train_results: IntCounterVec,
    train_jobs: IntGaugeVec,
    train_epoch: IntGaugeVec,
    train_loss: GaugeVec,
    train_samples_per_second: GaugeVec,
    /// The prediction log, feedback and live quality.
    pub monitoring: monitoring::Collectors,
    /// The model store's requests.
    pub store: store::Collectors,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let latency = |name: &str, help: &str| {
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
        };
        let requests = IntCounterVec::new(
            Opts::new(
                "kiln_requests_total",
                "HTTP requests answered, by route and status code.",
            ),
            &["route", "code"],
        )
        .unwrap();
        let request_duration = HistogramVec::new(
            latency(
                "kiln_request_duration_seconds",
                "End-to-end HTTP request duration, by route.",
            ),
            &["route"],
        )
        .unwrap();
        let queue_duration = Histogram::with_opts(latency(
            "kiln_queue_duration_seconds",
            "Time a request's rows waited in the queue before their batch started.",
        ))
        .unwrap();
        let batch_compute = Histogram::with_opts(latency(
            "kiln_batch_compute_seconds",
            "Time to compute one forward pass (preprocessing, forward, output interpretation).",
        ))
        .unwrap();
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("kiln_batch_size", "Rows per executed forward pass.")
                .buckets(BATCH_SIZE_BUCKETS.to_vec()),
        )
        .unwrap();
        let queue_depth =
            IntGauge::new("kiln_queue_depth", "Rows waiting in the batching queue.").unwrap();
        let rejected = IntCounterVec::new(
            Opts::new(
                "kiln_rejected_total",
                "Prediction requests (or their rows, for client_gone) turned away, by reason.",
            ),
            &["reason"],
        )
        .unwrap();
        let model_info = IntGaugeVec::new(
            Opts::new("kiln_model_info", "1 for the model version being served."),
            &["version"],
        )
        .unwrap();
        let ready = IntGauge::new(
            "kiln_ready",
            "1 while this replica is ready to serve (a model loaded, not shutting down).",
        )
        .unwrap();
        let queue_capacity = IntGauge::new(
            "kiln_queue_capacity",
            "Rows the queue admits (batching.queue_capacity).",
        )
        .unwrap();
        let train_results = IntCounterVec::new(
            Opts::new(
                "kiln_train_job_results_total",
                "Training jobs that finished on this replica, by final state.",
            ),
            &["state"],
        )
        .unwrap();
        let model_swaps = IntCounter::new(
            "kiln_model_swaps_total",
            "Times the served model version changed.",
        )
        .unwrap();

        let train_jobs = IntGaugeVec::new(
            Opts::new(
                "kiln_train_jobs",
                "Training jobs known to this process, by state.",
            ),
            &["state"],
        )
        .unwrap();
        let train_epoch = IntGaugeVec::new(
            Opts::new("kiln_train_epoch", "Last finished epoch of a training job."),
            &["job"],
        )
        .unwrap();
        let train_loss = GaugeVec::new(
            Opts::new(
                "kiln_train_loss",
                "A training job's loss at its last epoch, by split (train or validation).",
            ),
            &["job", "split"],
        )
        .unwrap();
        let train_samples_per_second = GaugeVec::new(
            Opts::new(
                "kiln_train_samples_per_second",
                "Training rows processed per second in a job's last epoch.",
            ),
            &["job"],
        )
        .unwrap();

        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(queue_duration.clone()),
            Box::new(batch_compute.clone()),
            Box::new(batch_size.clone()),
            Box::new(queue_depth.clone()),
            Box::new(rejected.clone()),
            Box::new(model_info.clone()),
            Box::new(model_swaps.clone()),
            Box::new(ready.clone()),
            Box::new(queue_capacity.clone()),
            Box::new(train_results.clone()),
            Box::new(train_jobs.clone()),
            Box::new(train_epoch.clone()),
            Box::new(train_loss.clone()),
            Box::new(train_samples_per_second.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        let monitoring = monitoring::Collectors::new(&registry);
        let store = store::Collectors::new(&registry);
        // Pre-create every reason so rates start from zero instead of appearing late.
        for r in [
            RejectReason::QueueFull,
            RejectReason::NotReady,
            RejectReason::InvalidInput,
            RejectReason::TooLarge,
            RejectReason::ClientGone,
            RejectReason::Deadline,
        ] {
            rejected.with_label_values(&[r.label()]);
        }
        for state in ["succeeded", "failed", "cancelled", "interrupted"] {
            train_results.with_label_values(&[state]);
        }
        Self(Arc::new(Collectors {
            registry,
            requests,
            request_duration,
            queue_duration,
            batch_compute,
            batch_size,
            queue_depth,
            rejected,
            model_info,
            model_swaps,
            ready,
            queue_capacity,
            train_results,
            train_jobs,
            train_epoch,
            train_loss,
            train_samples_per_second,
            monitoring,
            store,
        }))
    }

    /// Counts a job that finished in `state`.
    pub fn train_job_finished(&self, state: &str) {
        self.train_results.with_label_values(&[state]).inc();
    }

    /// Sets how many jobs are in `state`.
    pub fn set_train_jobs(&self, state: &str, n: i64) {
        self.train_jobs.with_label_values(&[state]).set(n);
    }

    /// Records a finished epoch of `job`.
    pub fn observe_train_epoch(&self, job: &str, epoch: &TrainEpoch) {
        self.train_epoch
            .with_label_values(&[job])
            .set(epoch.epoch as i64);
        self.train_loss
            .with_label_values(&[job, "train"])
            .set(epoch.train_loss);
        self.train_loss
            .with_label_values(&[job, "validation"])
            .set(epoch.val_loss);
        self.train_samples_per_second
            .with_label_values(&[job])
            .set(epoch.samples_per_second);
    }

    /// Drops a job's per-job series.
    pub fn forget_train_job(&self, job: &str) {
        let _ = self.train_epoch.remove_label_values(&[job]);
        let _ = self.train_loss.remove_label_values(&[job, "train"]);
        let _ = self.train_loss.remove_label_values(&[job, "validation"]);
        let _ = self.train_samples_per_second.remove_label_values(&[job]);
    }

    /// Counts one answered HTTP request.
    pub fn observe_request(&self, route: &str, code: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, code.to_string().as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// Counts `n` rejections for `reason`.
    pub fn reject(&self, reason: RejectReason, n: u64) {
        self.rejected.with_label_values(&[reason.label()]).inc_by(n);
    }

    /// Marks `version` as the one served (and no other).
    pub fn set_active_version(&self, version: &str) {
        self.model_info.reset();
        self.model_info.with_label_values(&[version]).set(1);
    }

    /// The text exposition format, for `GET /metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What the training series record of one finished epoch.
#[derive(Debug, Clone, Copy)]
pub struct TrainEpoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub samples_per_second: f64,
}
