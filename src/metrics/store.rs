//! The model store's series: how long each request to it takes and how many fail,
//! by operation (a bounded set: `list`, `read_record`, `create_version`, ...).

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::registry::Observer;

/// Store latency buckets (seconds): 1 ms .. 30 s (object stores retry).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The operations [`crate::registry::Store`] times; pre-created so rates start at 0.
const OPS: &[&str] = &[
    "list",
    "create_version",
    "read_version",
    "delete_version",
    "read_record",
    "head_record",
    "write_record",
    "list_records",
    "delete_record",
    "lock",
];

#[derive(Clone)]
pub struct Collectors {
    duration: HistogramVec,
    errors: IntCounterVec,
}

impl Collectors {
    pub fn new(registry: &Registry) -> Self {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "kiln_store_request_duration_seconds",
                "Requests to the model store (directory or bucket) by operation, retries included.",
            )
            .buckets(BUCKETS.to_vec()),
            &["op"],
        )
        .unwrap();
        let errors = IntCounterVec::new(
            Opts::new(
                "kiln_store_errors_total",
                "Model store requests that failed (I/O error, or the object store unreachable or refusing), by operation.",
            ),
            &["op"],
        )
        .unwrap();
        registry.register(Box::new(duration.clone())).unwrap();
        registry.register(Box::new(errors.clone())).unwrap();
        for op in OPS {
            duration.with_label_values(&[op]);
            errors.with_label_values(&[op]);
        }
        Self { duration, errors }
    }
}

impl Observer for Collectors {
    fn observe(&self, op: &'static str, took: Duration, failed: bool) {
        self.duration
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
        if failed {
            self.errors.with_label_values(&[op]).inc();
        }
    }
}
