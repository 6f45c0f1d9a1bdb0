//! The trainer's threads: `kiln-trainer` runs the queued jobs one at a time (each
//! in a worker process), `kiln-heartbeat` keeps this replica's job records fresh
//! and takes cancels other replicas asked for. [`Trainer::start`] starts both and
//! hands them to the process lifecycle as [`TrainerThreads`], whose
//! [`stop`](TrainerThreads::stop) interrupts the jobs and joins both threads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::record::{JobState, Owner, me_started_ms, now_ms};
use super::supervisor::Spawner;
use super::table::Staged;
use super::trainer::Runner;
use super::{Shared, Trainer, TrainerDeps};
use crate::config::BackendKind;

/// The trainer's threads, owned by the process lifecycle.
pub struct TrainerThreads {
    shared: Arc<Shared>,
    trainer: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    /// Dropped (or sent to) to end the heartbeat.
    stop_beating: Sender<()>,
}

impl Trainer {
    /// Reads the job records (marking those a dead process left behind as
    /// interrupted) and starts the trainer and heartbeat threads.
    pub fn start(deps: TrainerDeps) -> std::io::Result<(Self, TrainerThreads)> {
        let t = &deps.config.training;
        let exe = match &t.worker_exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe()?,
        };
        let spawner = Spawner {
            exe,
            max_memory_mb: t.max_memory_mb,
            cap_memory: deps.config.training_backend() == BackendKind::Cpu,
            low_priority: t.low_priority,
            grace: Duration::from_millis(t.cancel_grace_ms),
        };
        let (max_queued, max_kept) = (t.max_queued_jobs, t.max_jobs_kept);
        let heartbeat_timeout_ms = t.heartbeat_timeout_ms;
        let interval = Duration::from_millis(t.heartbeat_interval_ms);
        let owner = Owner::me();
        me_started_ms();
        let shared = Arc::new(Shared {
            jobs: Mutex::new(BTreeMap::new()),
            written: Mutex::new(std::collections::HashMap::new()),
            queue: Mutex::new(Some(VecDeque::new())),
            queued: Condvar::new(),
            max_queued,
            max_kept,
            store: deps.store.clone(),
            metrics: deps.metrics.clone(),
            owner,
            heartbeat_timeout_ms,
            backend: deps.config.training_backend().name(),
            stopping: Default::default(),
            restored: Mutex::new([0; 6]),
        });
        let mut runner = Runner {
            shared: shared.clone(),
            models: deps.models,
            spawner,
            config: deps.config,
            last_metrics_job: None,
        };
        let (stop_beating, stopped) = std::sync::mpsc::channel::<()>();
        let beat = shared.clone();
        let heartbeat = std::thread::Builder::new()
            .name("kiln-heartbeat".into())
            .spawn(move || {
                // Beats at a fixed rate: the time spent writing does not stretch the
                // interval. Ends when told to (or when its owner is dropped).
                let mut next = Instant::now();
                loop {
                    beat.heartbeat();
                    beat.take_cancels();
                    next += interval;
                    let now = Instant::now();
                    if next < now {
                        next = now;
                    }
                    match stopped.recv_timeout(next - now) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        let trainer = std::thread::Builder::new()
            .name("kiln-trainer".into())
            .spawn(move || {
                // Off the start-up path: on a bucket these are requests per record.
                runner.shared.sweep_orphans();
                runner.shared.prune();
                runner.shared.count_states();
                while let Some(job) = runner.shared.next_job() {
                    runner.run(job);
                }
            })?;
        let threads = TrainerThreads {
            shared: shared.clone(),
            trainer,
            heartbeat,
            stop_beating,
        };
        Ok((Self { shared }, threads))
    }
}

impl TrainerThreads {
    /// Stops this replica's jobs for shutdown and joins the threads. Queued jobs
    /// are recorded as `interrupted` at once; the running one is cancelled (its
    /// worker gets SIGTERM, then SIGKILL after `training.cancel_grace_ms`) and
    /// recorded as `interrupted` by the trainer thread, which then ends. The
    /// heartbeat beats until then, so no other replica takes the job for dead
    /// meanwhile. Blocks: call it off the async runtime.
    pub fn stop(self) {
        self.shared.interrupt_all();
        if self.trainer.join().is_err() {
            tracing::error!("the trainer thread panicked");
        }
        let _ = self.stop_beating.send(());
        if self.heartbeat.join().is_err() {
            tracing::error!("the heartbeat thread panicked");
        }
    }
}

impl Shared {
    /// Closes the queue (the trainer thread ends after the running job) and
    /// cancels every job of this replica.
    fn interrupt_all(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        *self.queue_lock() = None;
        self.queued.notify_all();
        let mut staged = Vec::new();
        for job in self.lock().values_mut() {
            if job.record.state.is_finished() {
                continue;
            }
            job.cancel.store(true, Ordering::Relaxed);
            if job.record.state == JobState::Queued {
                job.record.state = JobState::Interrupted;
                job.record.finished_at_ms = Some(now_ms());
                job.record.error = Some("the server shut down before this job ran".into());
                self.metrics.train_job_finished("interrupted");
                staged.push(Staged::of(job));
            }
        }
        for copy in staged {
            self.write(copy);
        }
        self.count_states();
    }
}
