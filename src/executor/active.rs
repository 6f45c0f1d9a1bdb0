//! The hot-swap seam: which loaded version serves right now.
//!
//! [`ActiveModel`] is a cheap `Clone` handle over an `ArcSwapOption`. The executor
//! reads it once per batch; [`ActiveModel::publish`] replaces it atomically for the
//! next batch, while batches already running keep their `Arc` of the old version.
//! Loading and warming up a version happen before `publish`, off the serving path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwapOption;

use crate::metrics::Metrics;
use crate::model::LoadedModel;

/// Shared pointer to the version being served (none until the first load).
#[derive(Clone)]
pub struct ActiveModel {
    current: Arc<ArcSwapOption<LoadedModel>>,
    /// Set when shutdown begins: `kiln_ready` stays 0 from then on, whatever is
    /// published during the drain.
    draining: Arc<AtomicBool>,
    metrics: Metrics,
}

impl ActiveModel {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            current: Arc::new(ArcSwapOption::empty()),
            draining: Arc::new(AtomicBool::new(false)),
            metrics,
        }
    }

    /// The version serving now, if any.
    /// The metrics its swaps and readiness are reported to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.current.load_full()
    }

    /// Shutdown began: readiness (and `kiln_ready`) is 0 for good.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.metrics.ready.set(0);
    }

    /// Serves nothing from the next batch on (the model was unloaded): batches
    /// already running keep their version; readiness is 0 until the next publish.
    pub fn withdraw(&self) {
        if let Some(old) = self.current.swap(None) {
            tracing::info!(version = old.version(), "model unloaded");
        }
        self.metrics.ready.set(0);
    }

    /// Makes `model` the served version from the next batch on.
    pub fn publish(&self, model: Arc<LoadedModel>) {
        let version = model.version().to_owned();
        let old = self.current.swap(Some(model));
        if old.is_some_and(|o| o.version() != version) {
            self.metrics.model_swaps.inc();
        }
        self.metrics.set_active_version(&version);
        if !self.draining.load(Ordering::Relaxed) {
            self.metrics.ready.set(1);
        }
        tracing::info!(version, "model version is now serving");
    }
}
