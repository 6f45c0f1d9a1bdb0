//! The trainer thread: runs one job at a time, each in its own worker process
//! ([`Spawner`]), turns the worker's reports into the job's record (the server is
//! the only writer of job records), and asks the model manager to promote a new
//! version when the recipe's policy says so.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::protocol::{Start, VERSION};
use super::record::now_ms;
use super::record::{JobRecord, JobState};
use super::supervisor::{Ending, Spawner};
use super::{Queued, Shared, Target};
use crate::config::Config;
use crate::serving::Models;
use crate::training::fit::EpochReport;
use crate::training::run::Finished;

/// Most epochs kept in a job's history (the newest).
const MAX_HISTORY: usize = 1000;
/// Progress is written to disk at most this often.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Moves the calling thread to Linux's `SCHED_IDLE` class: it runs only when no
/// other thread wants its core. (Lowering priority needs no privileges; elsewhere
/// this does nothing.) Threads it starts later inherit the class.
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
            tracing::warn!(error = %e, "could not lower the training thread's priority");
        }
    }
}

/// The trainer thread's state.
pub(super) struct Runner {
    pub(super) shared: Arc<Shared>,
    pub(super) models: Models,
    pub(super) spawner: Spawner,
    /// Handed to every worker (store, backend, threads, limits).
    pub(super) config: Config,
    pub(super) last_metrics_job: Option<String>,
}

impl Runner {
    pub(super) fn run(&mut self, job: Queued) {
        let Queued {
            id,
            input,
            cancel,
            target,
        } = job;
        if cancel.load(Ordering::Relaxed) {
            return; // cancelled while queued; the record says so already
        }
        // Per-job series live until the next job starts, so dashboards show the
        // last run without the label set growing forever.
        if let Some(previous) = self.last_metrics_job.take() {
            self.shared.metrics.forget_train_job(&previous);
        }
        let started = now_ms();
        let Some(record) = self.shared.update_persist(&id, |r| {
            r.state = JobState::Running;
            r.started_at_ms = Some(started);
        }) else {
            return;
        };
        self.shared.count_states();
        tracing::info!(
            job = id,
            task = record.task.name(),
            rows = record.rows.train,
            "training started"
        );

        let epochs = record.epochs;
        let start = Start {
            v: VERSION,
            job: id.clone(),
            config: self.config.clone(),
            input,
            model: target.as_ref().map(|t| t.model.clone()),
        };
        let clock = Instant::now();
        let mut last_persist = Instant::now();
        let ending = self.spawner.supervise(&start, &cancel, |report| {
            self.epoch(&id, report, epochs, clock.elapsed().as_secs_f64());
            if last_persist.elapsed() >= PERSIST_EVERY {
                self.shared.update_persist(&id, |_| {});
                last_persist = Instant::now();
            }
        });
        let stopping = self.shared.stopping.load(Ordering::Relaxed);
        let record = match ending {
            Ending::Finished(done) => self.finish(&id, *done, target.as_ref()),
            Ending::Cancelled if stopping => self.shared.update(&id, |r| {
                r.state = JobState::Interrupted;
                r.error = Some("the server shut down while this job was running".into());
            }),
            Ending::Cancelled => self.shared.update(&id, |r| r.state = JobState::Cancelled),
            Ending::Failed(error) => self.shared.update(&id, |r| {
                r.state = JobState::Failed;
                r.error = Some(error);
            }),
        };
        // The metrics follow the state at once (readers of the table see it now),
        // before the record's write to the store.
        self.shared.count_states();
        if let Some(record) = &record {
            self.shared.metrics.train_job_finished(record.state.name());
        }
        let finished_at = now_ms();
        let record = record.and_then(|_| {
            self.shared.update_persist(&id, |r| {
                r.finished_at_ms = Some(finished_at);
                r.eta_seconds = None;
            })
        });
        if let Some(record) = record {
            tracing::info!(
                job = id,
                state = record.state.name(),
                version = record.version.as_deref().unwrap_or("none"),
                error = record.error.as_deref().unwrap_or("none"),
                "training finished"
            );
        }
        self.shared.prune();
        self.last_metrics_job = Some(id);
    }

    fn epoch(&self, id: &str, report: &EpochReport, epochs: usize, elapsed: f64) {
        let eta = elapsed / report.epoch.max(1) as f64 * epochs.saturating_sub(report.epoch) as f64;
        self.shared.update(id, |r| {
            r.epoch = report.epoch;
            r.samples_per_second = Some(report.samples_per_second);
            r.eta_seconds = Some(eta);
            if r.history.len() == MAX_HISTORY {
                r.history.remove(0);
            }
            r.history.push(report.clone());
        });
        self.shared.metrics.observe_train_epoch(
            id,
            &crate::metrics::TrainEpoch {
                epoch: report.epoch,
                train_loss: report.train_loss,
                val_loss: report.val_loss,
                samples_per_second: report.samples_per_second,
            },
        );
    }

    /// Promotes the worker's version when its policy says so. A version whose
    /// promotion fails is deleted: a job that does not succeed leaves none behind.
    /// A job with a `target` goes to its named model, which may make its version
    /// active whatever the policy said (a new model's first version).
    fn finish(&self, id: &str, done: Finished, target: Option<&Target>) -> Option<JobRecord> {
        let gate = self.shared.update(id, |_| {}).and_then(|r| r.gate);
        let held = done.promote && gate.is_some();
        let activated = match target {
            // A held version waits for its live trial, in a named model too.
            Some(_) if held => None,
            Some(t) => Some(t.activate.activate(&done.version, done.promote)),
            None if done.promote && !held => Some(
                self.models
                    .promote_blocking(&done.version)
                    .map(|_| true)
                    .map_err(|e| e.to_string()),
            ),
            None => None,
        };
        let store = target.map_or(&self.shared.store, |t| &t.store);
        let (state, promoted, error) = if let Some(activated) = activated {
            match activated {
                Ok(promoted) => (JobState::Succeeded, promoted, None),
                Err(e) => {
                    if let Err(d) = store.delete_version(&done.version) {
                        tracing::warn!(version = done.version, error = %d, "could not delete the unpromoted version");
                    }
                    (
                        JobState::Failed,
                        false,
                        Some(format!("promotion failed: {e}")),
                    )
                }
            }
        } else {
            (JobState::Succeeded, false, None)
        };
        self.shared.update(id, |r| {
            r.state = state;
            r.best = Some(done.best.clone());
            r.metrics = crate::training::promote::metrics_of(&done.best, r.task);
            r.stopped_early = done.stopped_early;
            r.version = (state == JobState::Succeeded).then(|| done.version.clone());
            r.promoted = Some(promoted);
            r.promotion = Some(match &gate {
                Some(gate) if held => {
                    format!("{}; held for a live trial as a {gate}", done.promotion)
                }
                _ => done.promotion.clone(),
            });
            r.held = held;
            r.candidates = done.candidates.clone();
            r.trials = done.trials.clone();
            r.defaults = done.defaults.clone();
            r.error = error;
        })
    }
}
