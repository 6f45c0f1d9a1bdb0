//! Start-up: the subsystems in dependency order (metrics, devices, store,
//! executor thread, batcher task, model manager, explainer, trainer, the initial
//! load, the watchers, the prediction log), each thread's and task's owner kept
//! in the [`Running`] value that shuts them down.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::lifecycle::Running;
use crate::api::{AppState, Shared};
use crate::batching::Batcher;
use crate::config::Config;
use crate::executor;
use crate::executor::ActiveModel;
use crate::explainer::Explainer;
use crate::metrics::Metrics;
use crate::serving::catalog::Catalog;
use crate::serving::decoding::Decoding;
use crate::training::jobs::{Trainer, TrainerDeps};

/// Builds every subsystem for `config` and starts their threads and tasks; the
/// active version starts loading in the background. Call it inside the tokio
/// runtime. Fails if a device cannot be made, the store cannot be opened or a
/// thread cannot be started.
pub fn start(config: Config) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let device = config.serving_device()?;
    // Jobs train in worker processes; a device that cannot be made fails here, at
    // start, rather than in every job.
    config.training_device()?;
    let store = config
        .store
        .open()
        .with_context(|| format!("opening the model store {}", config.store.dir.display()))?
        .observed(Arc::new(metrics.store.clone()));
    let model = ActiveModel::new(metrics.clone());

    // One batch in flight: the batcher forms the next one when the executor is free.
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let cost = Arc::new(crate::batching::cost::CostModel::default());
    let executor = executor::spawn(
        batch_rx,
        model.clone(),
        cost.clone(),
        metrics.clone(),
        config.batching.max_batch_size,
        config.batching.compute_threads,
    )
    .context("starting the executor thread")?;
    let batching = TaskTracker::new();
    let batcher = Batcher::spawn(
        &config.batching,
        batch_tx,
        cost.clone(),
        metrics.clone(),
        &batching,
    );

    let (explainer, explainer_thread) =
        Explainer::spawn(config.explain.queue_capacity, batcher.clone())
            .context("starting the explainer thread")?;
    let replica = crate::training::jobs::Owner::me().tag();
    let watchers = TaskTracker::new();
    let draining = CancellationToken::new();
    let after_reply = TaskTracker::new();
    let decoding = Decoding::new(tokio::runtime::Handle::current().metrics().num_workers());
    decoding.follow(
        cost,
        config.batching.compute_threads,
        draining.clone(),
        &watchers,
    );
    let bundles = crate::serving::bundle::Shared {
        config: config.clone(),
        device: device.clone(),
        batcher: batcher.clone(),
        explainer: explainer.clone(),
        mirrors: after_reply.clone(),
        watchers: watchers.clone(),
        draining: draining.clone(),
        replica,
        decoding,
    };
    let (default, default_threads) = crate::serving::bundle::start(
        &bundles,
        config.model.name.clone(),
        store.clone(),
        crate::training::default_model,
        model.clone(),
    )
    .context("starting the model manager and the prediction log writer")?;
    let catalog = Catalog::new(
        bundles,
        store.clone(),
        crate::training::default_model,
        default.clone(),
    );
    let models = default.models.clone();
    let (trainer, trainer_threads) = Trainer::start(TrainerDeps {
        store: store.clone(),
        metrics: metrics.clone(),
        models: models.clone(),
        config: (*config).clone(),
    })
    .context("starting the trainer")?;
    // The active version loads in the background; a failure stops the server and
    // is the run's result.
    let load_failed = CancellationToken::new();
    let load = {
        let (models, load_failed) = (models.clone(), load_failed.clone());
        let (sweeper, config, watchers) = (store.clone(), config.clone(), watchers.clone());
        let catalog = catalog.clone();
        let draining_for_catalog = draining.clone();
        tokio::spawn(async move {
            let result = models.load_initial().await;
            // The named models after the default one; each loads on its own. Then
            // the ones other replicas make, as the store lists them.
            let opening = catalog.clone();
            match tokio::task::spawn_blocking(move || opening.open_recorded()).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(models = n, "serving named models"),
                Ok(Err(e)) => tracing::error!(error = %e, "cannot list the named models"),
                _ => {}
            }
            catalog.follow(
                Duration::from_millis(config.store.poll_interval_ms),
                draining_for_catalog.clone(),
                &watchers,
            );
            // An unloaded model's pages go back to the system within a second.
            let unloaded = catalog.clone();
            crate::memory::spawn_trims(
                move || unloaded.unloads(),
                Duration::from_secs(1),
                draining_for_catalog,
                &watchers,
            );
            // Leftovers of crashed writers; a live writer keeps touching its files,
            // so an entry untouched this long (a minute at least) has no writer.
            // After the first load: on a bucket this is a listing, and serving need
            // not wait for it.
            let stale = Duration::from_millis(config.training.heartbeat_timeout_ms.max(60_000));
            watchers.spawn_blocking(move || {
                let removed = sweeper.clean_tmp(stale);
                if removed > 0 {
                    tracing::info!(removed, "removed what crashed writers left in the store");
                }
            });
            result.err().map(|e| {
                load_failed.cancel();
                anyhow::Error::new(e).context("loading the active model version")
            })
        })
    };

    let state = AppState::new(Shared {
        config: config.clone(),
        batcher,
        model,
        metrics,
        draining: draining.clone(),
        store,
        models,
        trainer,
        explainer,
        imports: Arc::new(tokio::sync::Semaphore::new(1)),
        train_parses: Arc::new(tokio::sync::Semaphore::new(
            crate::api::train::MAX_CONCURRENT_SUBMISSIONS,
        )),
        monitor: default.monitor.clone(),
        after_reply,
        inference: default.inference.clone(),
        default,
        catalog,
    });
    // The default model's loop runs with its own `[models.<name>]` keys too.
    let own = config.for_model(&config.model.name)?;
    crate::retrain::spawn(
        crate::retrain::Deps {
            config: Arc::new(own),
            monitor: state.monitor.clone(),
            trainer: state.trainer.clone(),
            store: state.store.clone(),
            model: state.model.clone(),
            models: state.models.clone(),
            target: None,
        },
        draining.clone(),
        &watchers,
    );
    crate::retrain::spawn_named(
        state.catalog.clone(),
        state.trainer.clone(),
        config.clone(),
        draining.clone(),
        &watchers,
    );
    state
        .metrics
        .queue_capacity
        .set(config.batching.queue_capacity as i64);
    if !config.training.data_dir.is_dir() {
        tracing::warn!(
            dir = %config.training.data_dir.display(),
            "training.data_dir (KILN_TRAINING__DATA_DIR) is not a directory: POST /train cannot read {{\"path\": ...}} datasets until it exists"
        );
    }
    Ok(Running {
        state,
        draining,
        load_failed,
        load,
        batching,
        executor,
        default: default_threads,
        trainer: trainer_threads,
        explainer: explainer_thread,
        watchers,
    })
}
