//! Background training jobs: the queue, the trainer thread, job records.
//!
//! [`Trainer`] is a cheap `Clone` handle. Jobs wait in a bounded queue (full: 429)
//! and run one at a time, each in its own worker process (`kiln worker`, see
//! [`process`]) that the `kiln-trainer` thread supervises: a job that exhausts
//! memory, panics or hangs ends as a `failed` record while serving goes on. Every
//! state change (and progress, at most once a second) is written to
//! `<store>/jobs/<id>.json` by this process alone; at startup, records left
//! `queued` or `running` by a dead process read `interrupted`. The process
//! lifecycle owns the trainer's threads ([`TrainerThreads`]) and stops them at
//! shutdown.

pub mod process;
mod protocol;
mod record;
mod supervisor;
mod table;
mod target;
mod threads;
mod trainer;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::evaluate;
use super::input::JobInput;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Store;
use crate::serving::Models;
use record::now_ms;
pub use record::{JobError, JobRecord, JobState, Owner, Submission};
use table::Staged;
pub use target::{Activate, Served, Target};
pub use threads::TrainerThreads;

struct Job {
    record: JobRecord,
    cancel: Arc<AtomicBool>,
    /// Bumped (under the table's lock) for every copy of the record handed to the
    /// store, so the writes, made outside that lock, never put an older copy over
    /// a newer one.
    seq: u64,
}

struct Queued {
    id: String,
    input: JobInput,
    cancel: Arc<AtomicBool>,
    /// The named model it trains; `None`: the default model.
    target: Option<Target>,
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
    /// The sequence number of each job's record last written to the store (see
    /// `table::Staged`); held while a record is written.
    written: Mutex<std::collections::HashMap<String, u64>>,
    /// Jobs waiting to run, in order. A cancelled job leaves it at once (its input
    /// is dropped and its slot is free); `None` once the trainer is closed.
    queue: Mutex<Option<VecDeque<Queued>>>,
    queued: Condvar,
    max_queued: usize,
    max_kept: usize,
    store: Store,
    metrics: Metrics,
    owner: Owner,
    heartbeat_timeout_ms: u64,
    /// The backend jobs train on.
    backend: &'static str,
    /// Set at shutdown: a job stopped now is `interrupted`, not `cancelled`.
    stopping: AtomicBool,
    /// Jobs by state found in the store at start (earlier runs', other replicas'),
    /// so `kiln_train_jobs` agrees with `GET /train` after a restart.
    restored: Mutex<[i64; 6]>,
}

/// What the trainer thread needs besides the shared table.
pub struct TrainerDeps {
    pub store: Store,
    pub metrics: Metrics,
    pub models: Models,
    /// The server's configuration: `training.*`, and what workers are handed.
    pub config: Config,
}

impl Trainer {
    /// Whether a job would be admitted now (checked before a body is read; the
    /// submission checks again).
    pub fn has_room(&self) -> bool {
        self.shared
            .queue_lock()
            .as_ref()
            .is_some_and(|q| q.len() < self.shared.max_queued)
    }

    /// Queues a job; returns its record.
    pub fn submit(&self, submission: Submission) -> Result<JobRecord, JobError> {
        let id = format!("job-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let record = JobRecord {
            id: id.clone(),
            state: JobState::Queued,
            created_at_ms: now_ms(),
            started_at_ms: None,
            finished_at_ms: None,
            task: submission.task,
            task_reason: submission.task_reason.clone(),
            metric: evaluate::metric_name(submission.task).into(),
            rows: submission.rows.clone(),
            epochs: submission.spec.epochs(),
            epoch: 0,
            history: Vec::new(),
            best: None,
            metrics: Default::default(),
            stopped_early: false,
            samples_per_second: None,
            eta_seconds: None,
            version: None,
            promoted: None,
            promotion: None,
            error: None,
            cancel_requested: false,
            // The values the job uses, not the `null`s left to inference.
            spec: {
                let mut shown = submission.spec.clone();
                let task = submission.task;
                shown.loss = Some(crate::training::fit::loss_for(&shown, task));
                shown.task = Some(task);
                shown
            },
            owner: self.shared.owner.tag(),
            heartbeat_ms: now_ms(),
            backend: self.shared.backend.into(),
            trigger: submission.trigger.clone(),
            gate: submission.gate.clone(),
            model: submission.target.as_ref().map(|t| t.model.clone()),
            held: false,
            trial: None,
            candidates: Vec::new(),
            defaults: Vec::new(),
            trials: Vec::new(),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.shared.lock().insert(
            id.clone(),
            Job {
                record: record.clone(),
                cancel: cancel.clone(),
                seq: 0,
            },
        );
        let queued = Queued {
            id: id.clone(),
            input: submission.input,
            cancel,
            target: submission.target,
        };
        let admitted = match self.shared.queue_lock().as_mut() {
            None => Err(JobError::Stopped),
            Some(q) if q.len() >= self.shared.max_queued => {
                Err(JobError::QueueFull(self.shared.max_queued))
            }
            Some(q) => {
                q.push_back(queued);
                Ok(())
            }
        };
        if let Err(e) = admitted {
            self.shared.lock().remove(&id);
            return Err(e);
        }
        self.shared.queued.notify_one();
        self.shared.update_persist(&id, |_| {});
        self.shared.prune();
        self.shared.count_states();
        Ok(record)
    }

    /// Writes how the live trial of job `id`'s held version ended into its
    /// record (this replica's jobs; blocking: the record is fsynced).
    pub fn trial_ended(&self, id: &str, outcome: String, promoted: bool) {
        self.shared.update_persist(id, |r| {
            r.trial = Some(outcome);
            if promoted {
                r.promoted = Some(true);
            }
        });
    }

    /// One job's record: this replica's, or any replica's from the shared store.
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        if let Some(job) = self.shared.lock().get(id) {
            return Some(job.record.clone());
        }
        let value = self.shared.store.read_job(id).ok()??;
        let record: JobRecord = serde_json::from_value(value).ok()?;
        Some(self.shared.observe(record))
    }

    /// Every job (this replica's and the others' in the shared store), in
    /// submission order, without per-epoch history.
    pub fn list(&self) -> Vec<JobRecord> {
        let mut all: Vec<JobRecord> = self
            .shared
            .lock()
            .values()
            .map(|j| j.record.clone())
            .collect();
        for value in self.shared.store.read_jobs().unwrap_or_default() {
            if let Ok(record) = serde_json::from_value::<JobRecord>(value)
                && !all.iter().any(|r| r.id == record.id)
            {
                all.push(self.shared.observe(record));
            }
        }
        for r in &mut all {
            r.history = Vec::new();
        }
        // Submission order.
        all.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then(a.id.cmp(&b.id)));
        all
    }

    /// Cancels a job: a queued one at once, a running one within one batch.
    /// A job of another replica (sharing the store) is asked to cancel through a
    /// cancel record its owner polls at every heartbeat; the answer is its record
    /// with `cancel_requested` set.
    pub fn cancel(&self, id: &str) -> Result<JobRecord, JobError> {
        match self.shared.cancel_local(id) {
            Err(JobError::NotFound(_)) => {}
            other => return other,
        }
        let record = self.get(id).ok_or_else(|| JobError::NotFound(id.into()))?;
        if record.state.is_finished() {
            return Err(JobError::Finished(id.into(), record.state.name()));
        }
        self.shared
            .store
            .request_cancel(id)
            .map_err(|e| JobError::Elsewhere(id.into(), e.to_string()))?;
        Ok(JobRecord {
            cancel_requested: true,
            ..record
        })
    }
}

impl Shared {
    /// Cancels one of this replica's jobs.
    fn cancel_local(&self, id: &str) -> Result<JobRecord, JobError> {
        let staged = {
            let mut jobs = self.lock();
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
                job.record.finished_at_ms = Some(now_ms());
                // Its slot and its input are freed now, not when its turn comes.
                if let Some(q) = self.queue_lock().as_mut() {
                    q.retain(|queued| queued.id != id);
                }
            }
            Staged::of(job)
        };
        let record = staged.record.clone();
        self.write(staged);
        self.count_states();
        Ok(record)
    }

    /// Cancels this replica's jobs that another replica asked to cancel.
    fn take_cancels(&self) {
        let mine: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, j)| !j.record.state.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in mine {
            if self.store.take_cancel(&id).unwrap_or(false) {
                tracing::info!(job = id, "cancelled at another replica's request");
                let _ = self.cancel_local(&id);
            }
        }
    }
}
