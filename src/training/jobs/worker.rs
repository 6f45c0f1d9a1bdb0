//! The trainer thread: runs one job at a time, reports progress into the job table,
//! writes the version and asks the model manager to promote it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::prelude::Device;

use super::record::{JobRecord, JobState};
use super::{Queued, Shared};
use crate::model::{ActiveModel, LoadedModel};
use crate::registry::{Models, unix_now};
use crate::training::data::RowCounts;
use crate::training::fit::{self, EpochReport, FitError, FitOutcome};
use crate::training::promote;
use crate::training::spec::TrainSpec;

/// Most epochs kept in a job's history (the newest).
const MAX_HISTORY: usize = 1000;
/// Progress is written to disk at most this often.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Moves the calling thread to Linux's `SCHED_IDLE` class: it runs only when no
/// other thread wants its core. (Lowering priority needs no privileges; elsewhere
/// this does nothing.)
pub(super) fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        if let Err(e) = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        ) {
            tracing::warn!(error = ?e, "could not lower the training thread's priority");
        }
    }
}

/// The trainer thread's state.
pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) models: Models,
    pub(super) active: ActiveModel,
    pub(super) device: Device,
    /// True while `/predict` rows are queued or computing.
    pub(super) serving_busy: ServingBusy,
    pub(super) last_metrics_job: Option<String>,
}

/// Asks whether serving has rows in flight.
pub type ServingBusy = Arc<dyn Fn() -> bool + Send + Sync>;

/// Longest a training batch waits for serving to go quiet (then it runs anyway, so
/// training always progresses).
const MAX_YIELD: Duration = Duration::from_millis(2);
const YIELD_STEP: Duration = Duration::from_micros(100);

impl Worker {
    pub(super) fn run(&mut self, job: Queued) {
        let Queued {
            id,
            submission,
            cancel,
        } = job;
        if cancel.load(Ordering::Relaxed) {
            return; // cancelled while queued; the record says so already
        }
        // Per-job series live until the next job starts, so dashboards show the
        // last run without the label set growing forever.
        if let Some(previous) = self.last_metrics_job.take() {
            self.shared.metrics.forget_train_job(&previous);
        }
        let started = unix_now();
        let Some(record) = self.shared.update_persist(&id, |r| {
            r.state = JobState::Running;
            r.started_at = Some(started);
        }) else {
            return;
        };
        self.shared.count_states();
        tracing::info!(job = id, task = ?record.task, rows = record.rows.train, "training started");

        let mut observer = JobObserver {
            shared: &self.shared,
            id: &id,
            cancel: &cancel,
            serving_busy: &self.serving_busy,
            epochs: submission.spec.epochs,
            clock: Instant::now(),
            last_persist: Instant::now(),
        };
        let result = fit::fit(
            &submission.data,
            &submission.spec,
            submission.net,
            &self.device,
            &mut observer,
        );
        let record = match result {
            Ok(outcome) => self.finish(&id, &submission.spec, &submission.rows, outcome),
            Err(FitError::Cancelled) if self.shared.stopping.load(Ordering::Relaxed) => {
                self.shared.update(&id, |r| {
                    r.state = JobState::Interrupted;
                    r.error = Some("the server shut down while this job was running".into());
                })
            }
            Err(FitError::Cancelled) => self.shared.update(&id, |r| r.state = JobState::Cancelled),
            Err(e) => self.shared.update(&id, |r| {
                r.state = JobState::Failed;
                r.error = Some(e.to_string());
            }),
        };
        let finished_at = unix_now();
        let record = record.and_then(|_| {
            self.shared.update_persist(&id, |r| {
                r.finished_at = Some(finished_at);
                r.eta_seconds = None;
            })
        });
        if let Some(record) = record {
            self.shared.metrics.train_job_finished(record.state.name());
            tracing::info!(job = id, state = record.state.name(), version = ?record.version, "training finished");
        }
        self.shared.count_states();
        self.shared.prune();
        self.last_metrics_job = Some(id);
    }

    /// Writes the version and decides its promotion.
    fn finish(
        &self,
        id: &str,
        spec: &TrainSpec,
        rows: &RowCounts,
        outcome: FitOutcome,
    ) -> Option<JobRecord> {
        let FitOutcome {
            net,
            mut manifest,
            history: _,
            best,
            stopped_early,
            validation,
        } = outcome;
        promote::annotate(
            &mut manifest,
            format!("train: {id}"),
            id,
            spec,
            rows,
            &best,
            stopped_early,
            &validation,
        );
        let version = match self.shared.store.create_version(&manifest, &net) {
            Ok(v) => v,
            Err(e) => {
                return self.shared.update(id, |r| {
                    r.state = JobState::Failed;
                    r.error = Some(format!("writing the version failed: {e}"));
                });
            }
        };
        let active = self.active.current();
        let candidate = LoadedModel::new(&version, manifest, net, self.device.clone());
        let (promote, promotion) =
            promote::decide(spec.promote, active.as_deref(), &candidate, &validation);
        let (state, promoted, error) = if promote {
            match self.models.promote_blocking(&version) {
                Ok(_) => (JobState::Succeeded, true, None),
                Err(e) => (
                    JobState::Failed,
                    false,
                    Some(format!("promotion failed: {e}")),
                ),
            }
        } else {
            (JobState::Succeeded, false, None)
        };
        self.shared.update(id, |r| {
            r.state = state;
            r.best = Some(best.clone());
            r.stopped_early = stopped_early;
            r.version = Some(version.clone());
            r.promoted = Some(promoted);
            r.promotion = Some(promotion);
            r.error = error;
        })
    }
}

/// How a running job steers and hears its training loop.
struct JobObserver<'a> {
    shared: &'a Shared,
    id: &'a str,
    cancel: &'a AtomicBool,
    serving_busy: &'a ServingBusy,
    epochs: usize,
    clock: Instant,
    last_persist: Instant,
}

impl fit::Observer for JobObserver<'_> {
    /// Stops when cancelled; otherwise lets in-flight `/predict` rows finish first
    /// (up to [`MAX_YIELD`]), so a training step rarely competes with a batch for
    /// the cores and caches.
    fn before_batch(&mut self) -> bool {
        let mut waited = Duration::ZERO;
        while waited < MAX_YIELD && (self.serving_busy)() {
            std::thread::sleep(YIELD_STEP);
            waited += YIELD_STEP;
        }
        self.cancel.load(Ordering::Relaxed)
    }

    fn epoch(&mut self, report: &EpochReport) {
        let elapsed = self.clock.elapsed().as_secs_f64();
        let eta = elapsed / report.epoch as f64 * (self.epochs - report.epoch) as f64;
        self.shared.update(self.id, |r| {
            r.epoch = report.epoch;
            r.samples_per_second = Some(report.samples_per_second);
            r.eta_seconds = Some(eta);
            if r.history.len() == MAX_HISTORY {
                r.history.remove(0);
            }
            r.history.push(report.clone());
        });
        self.shared.metrics.observe_train_epoch(self.id, report);
        if self.last_persist.elapsed() >= PERSIST_EVERY {
            self.shared.update_persist(self.id, |_| {});
            self.last_persist = Instant::now();
        }
    }
}
