//! The job table's operations: the queue, record updates, heartbeats, state counts
//! and pruning. A record is changed and copied under the table's lock (with a
//! sequence number) and written to the store outside it, in order: the store never
//! gets an older copy over a newer one, and nobody reading the table waits on an
//! fsync.

use std::collections::{BTreeMap, VecDeque};
use std::sync::MutexGuard;

use super::record::{JobRecord, JobState, now_ms};
use super::{Job, Queued, Shared};
use crate::registry::Store;

impl Shared {
    pub(super) fn queue_lock(&self) -> MutexGuard<'_, Option<VecDeque<Queued>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the next job; `None` once the trainer is closed.
    pub(super) fn next_job(&self) -> Option<Queued> {
        let mut queue = self.queue_lock();
        loop {
            match queue.as_mut()?.pop_front() {
                Some(job) => return Some(job),
                None => {
                    queue = self.queued.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// Records of jobs whose process died (here or on another replica) are marked
    /// interrupted for good; jobs of live replicas are theirs to update.
    /// Also counts the store's records by state for `kiln_train_jobs`.
    pub(super) fn sweep_orphans(&self) {
        let now = now_ms();
        let mut counts = [0i64; 6];
        for value in self.store.read_jobs().unwrap_or_default() {
            let Ok(record) = serde_json::from_value::<JobRecord>(value) else {
                continue;
            };
            let record = if record.orphaned(now, self.heartbeat_timeout_ms, &self.owner) {
                let mut record = record.observed(now, self.heartbeat_timeout_ms, &self.owner);
                record.finished_at_ms.get_or_insert_with(now_ms);
                persist(&self.store, &record);
                self.metrics.train_job_finished("interrupted");
                record
            } else {
                self.observe(record)
            };
            if !self.lock().contains_key(&record.id) {
                counts[state_index(record.state)] += 1;
            }
        }
        *self.restored.lock().unwrap_or_else(|e| e.into_inner()) = counts;
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Job>> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to a job's record; returns the updated copy.
    pub(super) fn update(&self, id: &str, f: impl FnOnce(&mut JobRecord)) -> Option<JobRecord> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(id)?;
        f(&mut job.record);
        Some(job.record.clone())
    }

    pub(super) fn count_states(&self) {
        let mut counts = *self.restored.lock().unwrap_or_else(|e| e.into_inner());
        for job in self.lock().values() {
            counts[state_index(job.record.state)] += 1;
        }
        for (state, n) in JobState::ALL.iter().zip(counts) {
            self.metrics.set_train_jobs(state.name(), n);
        }
    }

    /// A record from the shared store, as readers should see it.
    pub(super) fn observe(&self, record: JobRecord) -> JobRecord {
        record.observed(now_ms(), self.heartbeat_timeout_ms, &self.owner)
    }

    /// Tells other replicas this process's unfinished jobs are alive.
    pub(super) fn heartbeat(&self) {
        let now = now_ms();
        let staged: Vec<Staged> = self
            .lock()
            .values_mut()
            .filter(|job| !job.record.state.is_finished())
            .map(|job| {
                job.record.heartbeat_ms = now;
                Staged::of(job)
            })
            .collect();
        for copy in staged {
            self.write(copy);
        }
    }

    /// Writes a staged copy of a record unless a newer copy of it has been written
    /// already. The fsync happens here, outside the table's lock (readers of the
    /// table never wait on the disk); writes of records are serialised instead.
    pub(super) fn write(&self, copy: Staged) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let last = written.entry(copy.record.id.clone()).or_insert(0);
        if copy.seq > *last {
            persist(&self.store, &copy.record);
            *last = copy.seq;
        }
    }

    /// Applies `f` to a job's record and writes it to the store. Every write of a
    /// record happens under the table's lock, so a heartbeat can never write an
    /// older copy over a newer one (the writes are small; the lock is held for
    /// their fsync).
    pub(super) fn update_persist(
        &self,
        id: &str,
        f: impl FnOnce(&mut JobRecord),
    ) -> Option<JobRecord> {
        let staged = {
            let mut jobs = self.lock();
            let job = jobs.get_mut(id)?;
            f(&mut job.record);
            Staged::of(job)
        };
        let record = staged.record.clone();
        self.write(staged);
        Some(record)
    }

    /// Forgets the oldest finished jobs beyond `max_kept`, across the shared store
    /// (finished records never change, so any replica may delete them).
    pub(super) fn prune(&self) {
        let mut finished: Vec<(u64, String)> = self
            .store
            .read_jobs()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| serde_json::from_value::<JobRecord>(v).ok())
            .filter(|r| r.state.is_finished())
            .map(|r| (r.created_at_ms, r.id))
            .collect();
        finished.sort();
        let excess = finished.len().saturating_sub(self.max_kept);
        for (_, id) in finished.into_iter().take(excess) {
            self.lock().remove(&id);
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            let _ = self.store.delete_job(&id);
        }
    }
}

/// Writes a job record to the store (a failure is logged: the job goes on).
/// A copy of a record to write, with its place in the order of changes.
pub(super) struct Staged {
    pub(super) record: JobRecord,
    seq: u64,
}

impl Staged {
    pub(super) fn of(job: &mut Job) -> Self {
        job.seq += 1;
        Self {
            record: job.record.clone(),
            seq: job.seq,
        }
    }
}

pub(super) fn persist(store: &Store, record: &JobRecord) {
    let value = serde_json::to_value(record).expect("a job record serialises");
    if let Err(e) = store.write_job(&record.id, &value) {
        tracing::warn!(job = record.id, error = %e, "could not write the job record");
    }
}

/// A state's slot in the per-state counts.
fn state_index(state: JobState) -> usize {
    JobState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}
