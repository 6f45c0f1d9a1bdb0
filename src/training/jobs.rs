//! Background training jobs: the queue, the trainer thread, job records.
//!
//! [`Trainer`] is a cheap `Clone` handle. Jobs wait in a bounded queue (full: 429)
//! and run one at a time on the `kiln-trainer` thread, inside a rayon pool of
//! `training.threads` threads, so training never runs on the async runtime or the
//! executor and cannot take the serving threads' cores. Every state change (and
//! progress, at most once a second) is written to `<store>/jobs/<id>.json`; at
//! startup, records left `queued` or `running` by a dead process read `interrupted`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use super::data::{Dataset, RowCounts};
use super::fit::{self, EpochReport, FitError, FitOutcome};
use super::promote;
use super::spec::TrainSpec;
use crate::metrics::Metrics;
use crate::model::{ActiveModel, NetConfig, Task};
use crate::registry::{Models, Store, unix_now};

/// Most epochs kept in a job's history (the newest).
const MAX_HISTORY: usize = 1000;
/// Progress is written to disk at most this often.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The process died while the job was queued or running.
    Interrupted,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Interrupted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// Everything known about a job; what `GET /train/{id}` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub state: JobState,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub task: Task,
    /// Whether the task was given or inferred (and how).
    pub task_reason: String,
    /// The validation metric: `accuracy` or `r2`.
    pub metric: String,
    pub rows: RowCounts,
    /// Epochs asked for, and the last one finished.
    pub epochs: usize,
    pub epoch: usize,
    pub history: Vec<EpochReport>,
    pub best: Option<EpochReport>,
    pub stopped_early: bool,
    pub samples_per_second: Option<f64>,
    pub eta_seconds: Option<f64>,
    /// The version written by a successful job.
    pub version: Option<String>,
    pub promoted: Option<bool>,
    /// Why the version was (not) promoted.
    pub promotion: Option<String>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub spec: TrainSpec,
}

/// A job ready to run: clean data, a validated recipe and the network to build.
pub struct Submission {
    pub data: Dataset,
    pub spec: TrainSpec,
    pub net: NetConfig,
    pub rows: RowCounts,
}

/// Why a job was not accepted, or not cancelled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("the training queue is full ({0} jobs waiting); retry later")]
    QueueFull(usize),
    #[error("no training job {0}")]
    NotFound(String),
    #[error("job {0} has already finished ({1})")]
    Finished(String, &'static str),
    #[error("the trainer has stopped")]
    Stopped,
}

struct Job {
    record: JobRecord,
    cancel: Arc<AtomicBool>,
}

struct Queued {
    id: String,
    submission: Submission,
    cancel: Arc<AtomicBool>,
}

/// Handle to the trainer.
#[derive(Clone)]
pub struct Trainer {
    shared: Arc<Shared>,
}

struct Shared {
    /// Job records by id. A std `Mutex` rather than a task: every section is a few
    /// field updates, never held across an await or a training step, and both the
    /// HTTP handlers and the trainer thread need it synchronously.
    jobs: Mutex<BTreeMap<String, Job>>,
    queue: std::sync::mpsc::SyncSender<Queued>,
    max_queued: usize,
    max_kept: usize,
    store: Store,
    metrics: Metrics,
}

/// What the trainer thread needs besides the shared table.
pub struct TrainerDeps {
    pub store: Store,
    pub metrics: Metrics,
    pub models: Models,
    pub active: ActiveModel,
    pub device: Device,
    pub threads: usize,
    pub low_priority: bool,
    pub max_queued: usize,
    pub max_kept: usize,
}

impl Trainer {
    /// Reads the job records (marking those a dead process left behind as
    /// interrupted) and starts the trainer thread.
    pub fn start(deps: TrainerDeps) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(deps.max_queued);
        let mut jobs = BTreeMap::new();
        for value in deps.store.read_jobs().unwrap_or_default() {
            let Ok(mut record) = serde_json::from_value::<JobRecord>(value) else {
                continue;
            };
            if !record.state.is_finished() {
                record.state = JobState::Interrupted;
                record.finished_at.get_or_insert_with(unix_now);
                record.eta_seconds = None;
                record.error =
                    Some("the server stopped while this job was queued or running".into());
                persist(&deps.store, &record);
            }
            let cancel = Arc::new(AtomicBool::new(false));
            jobs.insert(record.id.clone(), Job { record, cancel });
        }
        let shared = Arc::new(Shared {
            jobs: Mutex::new(jobs),
            queue: tx,
            max_queued: deps.max_queued,
            max_kept: deps.max_kept,
            store: deps.store.clone(),
            metrics: deps.metrics.clone(),
        });
        shared.count_states();
        let low_priority = deps.low_priority;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(deps.threads.max(1))
            .thread_name(|i| format!("kiln-train-{i}"))
            .start_handler(move |_| {
                if low_priority {
                    lower_current_thread_priority();
                }
            })
            .build()
            .map_err(std::io::Error::other)?;
        let worker = Worker {
            shared: shared.clone(),
            models: deps.models,
            active: deps.active,
            device: deps.device,
            last_metrics_job: None,
        };
        std::thread::Builder::new()
            .name("kiln-trainer".into())
            .spawn(move || {
                let mut worker = worker;
                while let Ok(job) = rx.recv() {
                    pool.install(|| worker.run(job));
                }
            })?;
        Ok(Self { shared })
    }

    /// Queues a job; returns its record.
    pub fn submit(&self, submission: Submission) -> Result<JobRecord, JobError> {
        let id = format!("job-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let record = JobRecord {
            id: id.clone(),
            state: JobState::Queued,
            created_at: unix_now(),
            started_at: None,
            finished_at: None,
            task: submission.data.task,
            task_reason: submission.data.task_reason.clone(),
            metric: fit::metric_name(submission.data.task).into(),
            rows: submission.rows.clone(),
            epochs: submission.spec.epochs,
            epoch: 0,
            history: Vec::new(),
            best: None,
            stopped_early: false,
            samples_per_second: None,
            eta_seconds: None,
            version: None,
            promoted: None,
            promotion: None,
            error: None,
            cancel_requested: false,
            spec: submission.spec.clone(),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.shared.lock().insert(
            id.clone(),
            Job {
                record: record.clone(),
                cancel: cancel.clone(),
            },
        );
        let queued = Queued {
            id: id.clone(),
            submission,
            cancel,
        };
        if let Err(e) = self.shared.queue.try_send(queued) {
            self.shared.lock().remove(&id);
            return Err(match e {
                std::sync::mpsc::TrySendError::Full(_) => {
                    JobError::QueueFull(self.shared.max_queued)
                }
                std::sync::mpsc::TrySendError::Disconnected(_) => JobError::Stopped,
            });
        }
        persist(&self.shared.store, &record);
        self.shared.prune();
        self.shared.count_states();
        Ok(record)
    }

    /// One job's record.
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        self.shared.lock().get(id).map(|j| j.record.clone())
    }

    /// Every job, newest first, without per-epoch history.
    pub fn list(&self) -> Vec<JobRecord> {
        let mut all: Vec<JobRecord> = self
            .shared
            .lock()
            .values()
            .map(|j| JobRecord {
                history: Vec::new(),
                ..j.record.clone()
            })
            .collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        all
    }

    /// Cancels a job: a queued one at once, a running one within one batch.
    pub fn cancel(&self, id: &str) -> Result<JobRecord, JobError> {
        let record = {
            let mut jobs = self.shared.lock();
            let job = jobs
                .get_mut(id)
                .ok_or_else(|| JobError::NotFound(id.into()))?;
            if job.record.state.is_finished() {
                return Err(JobError::Finished(id.into(), job.record.state.name()));
            }
            job.cancel.store(true, Ordering::Relaxed);
            job.record.cancel_requested = true;
            if job.record.state == JobState::Queued {
                job.record.state = JobState::Cancelled;
                job.record.finished_at = Some(unix_now());
            }
            job.record.clone()
        };
        persist(&self.shared.store, &record);
        self.shared.count_states();
        Ok(record)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Job>> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to a job's record; returns the updated copy.
    fn update(&self, id: &str, f: impl FnOnce(&mut JobRecord)) -> Option<JobRecord> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(id)?;
        f(&mut job.record);
        Some(job.record.clone())
    }

    fn count_states(&self) {
        let mut counts = [0i64; 6];
        for job in self.lock().values() {
            counts[JobState::ALL
                .iter()
                .position(|s| *s == job.record.state)
                .unwrap_or(0)] += 1;
        }
        for (state, n) in JobState::ALL.iter().zip(counts) {
            self.metrics.set_train_jobs(state.name(), n);
        }
    }

    /// Forgets the oldest finished jobs beyond `max_kept`.
    fn prune(&self) {
        let doomed: Vec<String> = {
            let jobs = self.lock();
            let mut finished: Vec<(u64, &String)> = jobs
                .iter()
                .filter(|(_, j)| j.record.state.is_finished())
                .map(|(id, j)| (j.record.created_at, id))
                .collect();
            finished.sort();
            let excess = finished.len().saturating_sub(self.max_kept);
            finished
                .into_iter()
                .take(excess)
                .map(|(_, id)| id.clone())
                .collect()
        };
        for id in doomed {
            self.lock().remove(&id);
            let _ = self.store.delete_job(&id);
        }
    }
}

/// Moves the calling thread to Linux's `SCHED_IDLE` class: it runs only when no
/// other thread wants its core. (Lowering priority needs no privileges; elsewhere
/// this does nothing.)
fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
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

fn persist(store: &Store, record: &JobRecord) {
    let value = serde_json::to_value(record).expect("a job record serialises");
    if let Err(e) = store.write_job(&record.id, &value) {
        tracing::warn!(job = record.id, error = %e, "could not write the job record");
    }
}

/// The trainer thread's state.
struct Worker {
    shared: Arc<Shared>,
    models: Models,
    active: ActiveModel,
    device: Device,
    last_metrics_job: Option<String>,
}

impl Worker {
    fn run(&mut self, job: Queued) {
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
        let Some(record) = self.shared.update(&id, |r| {
            r.state = JobState::Running;
            r.started_at = Some(started);
        }) else {
            return;
        };
        persist(&self.shared.store, &record);
        self.shared.count_states();
        tracing::info!(job = id, task = ?record.task, rows = record.rows.train, "training started");

        let epochs = submission.spec.epochs;
        let clock = Instant::now();
        let mut last_persist = Instant::now();
        let mut progress = |report: &EpochReport| {
            let elapsed = clock.elapsed().as_secs_f64();
            let eta = elapsed / report.epoch as f64 * (epochs - report.epoch) as f64;
            let record = self.shared.update(&id, |r| {
                r.epoch = report.epoch;
                r.samples_per_second = Some(report.samples_per_second);
                r.eta_seconds = Some(eta);
                if r.history.len() == MAX_HISTORY {
                    r.history.remove(0);
                }
                r.history.push(report.clone());
            });
            self.shared.metrics.observe_train_epoch(&id, report);
            if let Some(record) = record
                && last_persist.elapsed() >= PERSIST_EVERY
            {
                persist(&self.shared.store, &record);
                last_persist = Instant::now();
            }
        };
        let result = fit::fit(
            &submission.data,
            &submission.spec,
            submission.net,
            &self.device,
            &cancel,
            &mut progress,
        );
        let record = match result {
            Ok(outcome) => self.finish(&id, &submission.spec, &submission.rows, outcome),
            Err(FitError::Cancelled) => self.shared.update(&id, |r| r.state = JobState::Cancelled),
            Err(e) => self.shared.update(&id, |r| {
                r.state = JobState::Failed;
                r.error = Some(e.to_string());
            }),
        };
        if let Some(mut record) = record {
            record.finished_at = Some(unix_now());
            record.eta_seconds = None;
            self.shared.update(&id, |r| {
                r.finished_at = record.finished_at;
                r.eta_seconds = None;
            });
            persist(&self.shared.store, &record);
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
        let (promote, promotion) =
            promote::decide(spec.promote, active.as_deref(), &best, &validation);
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
