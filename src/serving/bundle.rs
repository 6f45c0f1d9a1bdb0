//! One served model: its store, the version it serves, its model manager, its
//! monitor (prediction log, feedback, live quality, drift) and the inference
//! service over the process's shared batcher and explainer.
//!
//! The default model (`model.name`, the store's root) is one [`Bundle`]; every
//! named model another ([`super::catalog`]). [`start`] builds one and starts its
//! threads; [`BundleThreads::stop`] ends them.

use std::sync::Arc;
use std::time::Duration;

use burn::prelude::Device;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::infer::{Inference, Limits, Parts};
use super::{ManagerThread, Models, swap};
use crate::batching::Batcher;
use crate::config::Config;
use crate::executor::ActiveModel;
use crate::explainer::Explainer;
use crate::monitoring::Monitor;
use crate::monitoring::log::LogWriter;
use crate::registry::Store;

/// Each bundle's batcher lane, unique in the process.
static NEXT_LANE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A served model's handles.
pub struct Bundle {
    /// The name clients use (`model.name` for the default model).
    pub name: String,
    pub store: Store,
    pub model: ActiveModel,
    pub models: Models,
    /// Prediction ids, the prediction log, feedback and live quality.
    pub monitor: Arc<Monitor>,
    /// What a prediction is: route choice, checks, ids, sampling, mirroring.
    pub inference: Inference,
    /// When it was last used, and its loads (`residency`).
    pub residency: super::residency::Residency,
}

/// What every bundle shares.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub device: Device,
    pub batcher: Batcher,
    pub explainer: Explainer,
    /// Shadow mirrors running after their answer (shutdown waits for them).
    pub mirrors: TaskTracker,
    /// The store watches.
    pub watchers: TaskTracker,
    /// Cancelled when shutdown begins.
    pub draining: CancellationToken,
    /// This replica's tag in prediction-log names.
    pub replica: String,
    /// The decode limit every model's door follows.
    pub decoding: Arc<super::decoding::Decoding>,
}

/// The threads a bundle started.
pub struct BundleThreads {
    pub manager: ManagerThread,
    /// `None` when `monitoring.sample_rate` is 0.
    pub log_writer: Option<LogWriter>,
    /// Ends its store watch (cancelled at shutdown too).
    pub watch: CancellationToken,
}

/// Builds the bundle of the model `name` kept in `store`, serving through `model`
/// (whose metrics it reports to), and starts its model manager, prediction-log writer and store watch. Its
/// version is not loaded here: call `models.load_initial()`.
pub fn start(
    shared: &Shared,
    name: String,
    store: Store,
    bootstrap: swap::Bootstrap,
    model: ActiveModel,
) -> std::io::Result<(Arc<Bundle>, BundleThreads)> {
    // Its own `[models.<name>]` keys (checked at start; a model made later by
    // name gets the process's settings if its section is somehow unusable).
    let config = &shared
        .config
        .for_model(&name)
        .unwrap_or_else(|_| (*shared.config).clone());
    let metrics = model.metrics().clone();
    let (models, manager) = Models::spawn(
        store.clone(),
        shared.device.clone(),
        swap::WarmUp {
            max_rows: config.batching.max_batch_size,
            buckets: config.batching.shape_buckets,
        },
        bootstrap,
        model.clone(),
    )?;
    let (monitor, log_writer) =
        Monitor::start(store.clone(), &shared.replica, &config.monitoring, metrics)?;
    let watch = shared.draining.child_token();
    super::watch::spawn(
        store.clone(),
        models.clone(),
        model.clone(),
        Duration::from_millis(config.store.poll_interval_ms),
        watch.clone(),
        &shared.watchers,
    );
    let monitor = Arc::new(monitor);
    let lane = NEXT_LANE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let inference = Inference::new(Parts {
        batcher: shared.batcher.clone(),
        active: model.clone(),
        routing: models.routes().clone(),
        monitor: monitor.clone(),
        explainer: shared.explainer.clone(),
        limits: Limits::from(config),
        mirrors: shared.mirrors.clone(),
        lane,
        // Its own batch limits only where its section sets them.
        batch_policy: {
            let (own, all) = (&config.batching, &shared.config.batching);
            (own.max_batch_size != all.max_batch_size
                || own.max_queue_delay_ms != all.max_queue_delay_ms)
                .then(|| crate::batching::Policy {
                    max_rows: own.max_batch_size,
                    max_delay: own.max_queue_delay(),
                })
        },
        door: super::decoding::Door::new(shared.decoding.clone(), lane),
        admission: Arc::new(tokio::sync::Semaphore::new(
            config.batching.model_queue_rows(),
        )),
    });
    let bundle = Bundle {
        name,
        store,
        model,
        models,
        monitor,
        inference,
        residency: Default::default(),
    };
    Ok((
        Arc::new(bundle),
        BundleThreads {
            manager,
            log_writer,
            watch,
        },
    ))
}

impl BundleThreads {
    /// Flushes the prediction log (lifecycle step 4).
    pub fn close_log(&mut self) {
        if let Some(writer) = self.log_writer.take() {
            writer.close();
        }
    }

    /// Ends the model manager (lifecycle step 8).
    pub fn stop_manager(self) {
        self.manager.stop();
    }

    /// Ends everything of a model that is no longer served (deleted): its store
    /// watch, its prediction log (flushed) and its model manager. Blocking.
    pub fn stop(mut self) {
        self.watch.cancel();
        self.close_log();
        self.stop_manager();
    }
}
