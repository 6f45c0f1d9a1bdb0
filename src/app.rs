//! Process wiring: build the subsystems, serve HTTP until told to stop, then drain.
//!
//! Startup order: metrics, device, store, executor thread, batcher task, model
//! manager, explainer thread, trainer, HTTP. The
//! listener answers at once (`/health/live` 200, `/health/ready` 503) while the
//! active version loads in the background. Shutdown order: readiness turns 503,
//! `server.shutdown_drain_delay_ms` passes, the listener closes, in-flight requests
//! (and so every queued row) complete, the batcher and executor wind down.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState, Shared};
use crate::batching::Batcher;
use crate::config::Config;
use crate::executor;
use crate::explainer::Explainer;
use crate::metrics::Metrics;
use crate::monitoring::Monitor;
use crate::registry::Store;
use crate::serving::infer::{Inference, Limits};
use crate::serving::{ActiveModel, Models};
use crate::training::jobs::{Trainer, TrainerDeps};

/// Serves `config` on `listener` until `shutdown` resolves, then drains and returns.
/// Fails if the model store cannot be opened or the active version cannot be loaded.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let device = config.serving_device()?;
    let store = Store::from_config(&config.store)
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
    let tasks = TaskTracker::new();
    let batcher = Batcher::spawn(&config.batching, batch_tx, cost, metrics.clone(), &tasks);

    let models = Models::spawn(
        store.clone(),
        device.clone(),
        crate::serving::swap::WarmUp {
            max_rows: config.batching.max_batch_size,
            buckets: config.batching.shape_buckets,
        },
        crate::training::default_model,
        model.clone(),
    )
    .context("starting the model manager")?;
    let explainer = Explainer::spawn(config.explain.queue_capacity, batcher.clone())
        .context("starting the explainer thread")?;
    // Jobs train in worker processes; a device that cannot be made fails here, at
    // start, rather than in every job.
    config.training_device()?;
    let trainer = Trainer::start(TrainerDeps {
        store: store.clone(),
        metrics: metrics.clone(),
        models: models.clone(),
        config: (*config).clone(),
    })
    .context("starting the trainer")?;

    // The active version loads in the background; a failure stops the server and
    // is the run's result.
    let load_failed = CancellationToken::new();
    let load_error = {
        let (models, load_failed) = (models.clone(), load_failed.clone());
        let (sweeper, config) = (store.clone(), config.clone());
        tokio::spawn(async move {
            let result = models.load_initial().await;
            // Leftovers of crashed writers; a live writer keeps touching its files,
            // so an entry untouched this long (a minute at least) has no writer.
            // After the first load: on a bucket this is a listing, and serving need
            // not wait for it.
            let stale = Duration::from_millis(config.training.heartbeat_timeout_ms.max(60_000));
            tokio::task::spawn_blocking(move || {
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

    let draining = CancellationToken::new();
    crate::serving::watch::spawn(
        store.clone(),
        models.clone(),
        model.clone(),
        Duration::from_millis(config.store.poll_interval_ms),
        draining.clone(),
    );
    let replica = crate::training::jobs::Owner::me().tag();
    let (monitor, _log_writer) =
        Monitor::start(store.clone(), &replica, &config.monitoring, metrics.clone());
    let monitor = Arc::new(monitor);
    let inference = Inference::new(
        batcher.clone(),
        model.clone(),
        models.routes().clone(),
        monitor.clone(),
        explainer.clone(),
        Limits::from(&*config),
    );
    let state = AppState::new(Shared {
        config: config.clone(),
        batcher: batcher.clone(),
        model,
        metrics,
        draining: draining.clone(),
        store,
        models,
        trainer: trainer.clone(),
        explainer,
        imports: Arc::new(tokio::sync::Semaphore::new(1)),
        train_parses: Arc::new(tokio::sync::Semaphore::new(
            crate::api::train::MAX_CONCURRENT_SUBMISSIONS,
        )),
        monitor,
        inference,
    });
    crate::monitoring::retrain::spawn(
        crate::monitoring::retrain::Deps {
            config: config.clone(),
            monitor: state.monitor.clone(),
            trainer: trainer.clone(),
            store: state.store.clone(),
            model: state.model.clone(),
            models: state.models.clone(),
        },
        draining.clone(),
    );
    let drain_delay = Duration::from_millis(config.server.shutdown_drain_delay_ms);
    let serving = state.model.clone();
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
    tracing::info!(
        addr = %listener.local_addr()?,
        backend = config.model.backend.name(),
        store = %config.store.dir.display(),
        data_dir = %config.training.data_dir.display(),
        "listening"
    );
    let timeouts = crate::server::Timeouts {
        header: config.server.header_timeout(),
        shutdown: config.server.shutdown_timeout(),
    };
    crate::server::serve(listener, api::router(state), timeouts, async move {
        tokio::select! {
            () = shutdown => {}
            () = load_failed.cancelled() => {}
        }
        draining.cancel();
        serving.drain();
        tracing::info!(
            drain_delay_ms = drain_delay.as_millis() as u64,
            "shutting down: readiness is 503; draining"
        );
        tokio::time::sleep(drain_delay).await;
    })
    .await;

    // Every HTTP request has been answered, so the queue is empty: wind down.
    // A training job still running is stopped and recorded as interrupted.
    tokio::task::spawn_blocking(move || trainer.shutdown(Duration::from_secs(5))).await?;
    batcher.close();
    tasks.close();
    tasks.wait().await;
    tokio::task::spawn_blocking(move || executor.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the executor thread panicked"))?;
    load_error.abort();
    if let Ok(Some(e)) = load_error.await {
        return Err(e);
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
