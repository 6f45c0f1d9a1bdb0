//! The lifecycle: [`Running`] owns every thread and task kiln starts, and
//! [`Running::serve`] ends by stopping them in this order, joining each before the
//! next:
//!
//! 1. **Stop accepting.** Readiness turns 503 (`kiln_ready` 0) and the watchers
//!    are told to stop; `server.shutdown_drain_delay_ms` passes (a balancer
//!    notices); the listener closes; in-flight requests complete (for at most
//!    `server.shutdown_timeout_ms`), and with them every row they queued.
//! 2. **Drain the queue.** Work a request left running after its answer (a
//!    shadow mirror) completes; it computes on the batcher and logs its answers.
//! 3. **Stop the batcher and executor.** The batcher sends what it holds to the
//!    executor and ends; the executor finishes its last batch and ends.
//! 4. **Flush the prediction logs** (the default model's and every named
//!    model's). Each writer writes every queued entry and ends:
//!    SIGTERM loses no prediction that was queued for the log.
//! 5. **Stop the trainer and its workers.** Queued jobs are recorded
//!    `interrupted`; the running job's worker gets SIGTERM (SIGKILL after
//!    `training.cancel_grace_ms`) and is waited for, its record written; the
//!    trainer and heartbeat threads end.
//! 6. **The explainer** answers what it holds and ends.
//! 7. **The watchers** (store watch, retraining policy, the store sweep) finish
//!    the check under way and end. A last check may find the trainer stopped: it
//!    says so and ends.
//! 8. **The model managers** (one per model) finish what it was asked (a promotion by the
//!    trainer or a watcher) and ends.
//!
//! Each step may still use what a later step stops (a mirror needs the batcher,
//! the batcher the executor, the trainer promotes through the manager), never
//! what an earlier one stopped. Blocking joins run on the blocking pool.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState};
use crate::explainer::ExplainerThread;
use crate::serving::bundle::BundleThreads;
use crate::training::jobs::TrainerThreads;

/// A started kiln: the handles every request uses, and the owner of each thread
/// and task behind them.
pub struct Running {
    pub(super) state: AppState,
    /// Cancelled when shutdown begins (readiness, the watchers).
    pub(super) draining: CancellationToken,
    /// Cancelled when the initial load fails: the server stops.
    pub(super) load_failed: CancellationToken,
    /// The initial load; its error is the run's result.
    pub(super) load: JoinHandle<Option<anyhow::Error>>,
    /// The batcher task.
    pub(super) batching: TaskTracker,
    pub(super) executor: std::thread::JoinHandle<()>,
    /// The default model's manager and prediction-log writer.
    pub(super) default: BundleThreads,
    pub(super) trainer: TrainerThreads,
    pub(super) explainer: ExplainerThread,
    /// The store watch, the retraining policy and the store sweep.
    pub(super) watchers: TaskTracker,
}

impl Running {
    /// Serves HTTP on `listener` until `shutdown` resolves (or the initial load
    /// fails), then shuts down in the order above. Returns the initial load's
    /// error, if any.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = self.state.config.clone();
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
        let drain_delay = Duration::from_millis(config.server.shutdown_drain_delay_ms);
        let (draining, load_failed) = (self.draining.clone(), self.load_failed.clone());
        let serving = self.state.model.clone();
        // 1. Stop accepting.
        let stop = async move {
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
        };
        let router = api::router(self.state.clone());
        crate::server::serve(listener, router, timeouts, stop).await;
        self.shutdown().await
    }

    /// Steps 2 to 8 (every HTTP request has been answered).
    async fn shutdown(self) -> anyhow::Result<()> {
        let Self {
            state,
            draining,
            load_failed: _,
            load,
            batching,
            executor,
            default,
            trainer,
            explainer,
            watchers,
        } = self;
        let mut bundles = vec![default];
        bundles.extend(state.catalog.take_threads());
        draining.cancel();
        // 2. Drain the queue.
        state.after_reply.close();
        state.after_reply.wait().await;
        // 3. The batcher, then the executor (it ends when the batcher has).
        state.batcher.close();
        batching.close();
        batching.wait().await;
        let executor_panicked = blocking(move || executor.join()).await.is_err();
        // 4. The prediction log.
        let bundles = blocking(move || {
            for b in &mut bundles {
                b.close_log();
            }
            bundles
        })
        .await;
        // 5. The trainer and its workers.
        blocking(move || trainer.stop()).await;
        // 6. The explainer.
        blocking(move || explainer.stop()).await;
        // 7. The watchers. The initial load, if still under way, is no longer
        // waited for: the manager finishes it in step 8.
        load.abort();
        let load_error = load.await.ok().flatten();
        watchers.close();
        watchers.wait().await;
        // 8. The model manager.
        blocking(move || bundles.into_iter().for_each(BundleThreads::stop_manager)).await;
        if let Some(e) = load_error {
            return Err(e);
        }
        if executor_panicked {
            anyhow::bail!("the executor thread panicked");
        }
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Runs a blocking join on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        // Only a panic inside `f` gets here (the runtime is running).
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
