//! The dynamic batching queue: admission, the batcher task, and its handle.
//!
//! [`Batcher`] is the cheap `Clone` handle the HTTP layer submits to. Admission is a
//! semaphore of `queue_capacity` row permits: a request takes one permit per row or
//! is turned away at once (429), and gives them back when it is answered, so rows
//! queued plus rows computing never exceed the bound. The batcher task alone owns the
//! [`queue::Queue`]; it waits until the executor is free, then asks the queue
//! for one (row budget, deadlines, skipping abandoned requests) and hands it over.
//! A request whose deadline passes while it waits, or would pass before a pass of
//! its rows could finish ([`cost::CostModel`], measured by the executor), is
//! answered [`PredictError::DeadlineExceeded`] and never computed.

pub mod cost;
mod error;
pub mod lanes;
pub mod queue;

pub use error::{PredictError, SubmitError};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::BatchingConfig;
use crate::metrics::{Metrics, RejectReason};
use crate::model::{LoadedModel, Prediction};
use cost::CostModel;
use lanes::Lanes;
pub use queue::Policy;
use queue::{Next, Queued};

/// A request's answer: the version that computed it and one prediction per row.
#[derive(Debug)]
pub struct Answer {
    pub version: Arc<str>,
    /// The version that computed the answer (output names, shapes and labels come
    /// from it, never from the version that was active at admission).
    pub model: Arc<crate::model::LoadedModel>,
    pub predictions: Vec<Prediction>,
}

/// What a request asks the executor to compute.
#[derive(Debug)]
pub struct Work {
    /// Row-major features, `n_rows` x `width`.
    pub rows: Vec<f32>,
    pub n_rows: usize,
    pub width: usize,
    /// Classifiers also list this many most likely labels per row.
    pub top_k: Option<usize>,
    /// A specific version to compute with; `None` means whichever version is
    /// active when the batch runs.
    pub model: Option<Arc<LoadedModel>>,
    /// When the answer is due; past it the rows are not computed.
    pub deadline: Instant,
    /// The served model it is for: batches are formed per model, the models
    /// taken in turn (`lanes`).
    pub lane: u64,
    /// That model's own batch limits (`[models.<name>]`); `None`: the batcher's.
    pub policy: Option<Policy>,
}

/// One admitted request waiting for (or inside) a batch.
#[derive(Debug)]
pub struct Request {
    pub work: Work,
    pub enqueued_at: Instant,
    pub reply: oneshot::Sender<Result<Answer, PredictError>>,
    /// Returned to the admission semaphore when the request is dropped (answered).
    _permit: OwnedSemaphorePermit,
}

impl lanes::Laned for Request {
    fn lane(&self) -> u64 {
        self.work.lane
    }
    fn policy(&self) -> Option<Policy> {
        self.work.policy
    }
}

impl Queued for Request {
    fn rows(&self) -> usize {
        self.work.n_rows
    }
    fn enqueued_at(&self) -> Instant {
        self.enqueued_at
    }
    fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }
    fn deadline(&self) -> Instant {
        self.work.deadline
    }
}

/// Requests the executor runs with one model version.
#[derive(Debug)]
pub struct Batch {
    pub requests: Vec<Request>,
    /// Held while the batch computes: the batcher forms the next batch only once the
    /// executor is free, from everything that arrived meanwhile.
    _busy: OwnedSemaphorePermit,
}

/// Handle to the batcher task.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Request>,
    permits: Arc<Semaphore>,
    capacity: usize,
    cancel: CancellationToken,
}

impl Batcher {
    /// Starts the batcher task on `tracker`, feeding batches to `executor`.
    pub fn spawn(
        config: &BatchingConfig,
        executor: mpsc::Sender<Batch>,
        cost: Arc<CostModel>,
        metrics: Metrics,
        tracker: &TaskTracker,
    ) -> Self {
        // Every queued request holds at least one permit, so this channel can hold
        // every admitted request and `try_send` never finds it full.
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let cancel = CancellationToken::new();
        let policy = Policy {
            max_rows: config.max_batch_size,
            max_delay: config.max_queue_delay(),
        };
        let idle = Arc::new(Semaphore::new(1));
        tracker.spawn(run(
            rx,
            executor,
            idle,
            policy,
            cost,
            metrics,
            cancel.clone(),
        ));
        Self {
            tx,
            permits: Arc::new(Semaphore::new(config.queue_capacity)),
            capacity: config.queue_capacity,
            cancel,
        }
    }

    /// Admits `n_rows` rows of `width` features, or turns them away at once.
    pub fn submit(
        &self,
        work: Work,
    ) -> Result<oneshot::Receiver<Result<Answer, PredictError>>, SubmitError> {
        let n = u32::try_from(work.n_rows).map_err(|_| SubmitError::QueueFull)?;
        let permit = match self.permits.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(SubmitError::QueueFull),
            Err(TryAcquireError::Closed) => return Err(SubmitError::Closed),
        };
        let (reply, rx) = oneshot::channel();
        let request = Request {
            work,
            enqueued_at: Instant::now(),
            reply,
            _permit: permit,
        };
        match self.tx.try_send(request) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(SubmitError::QueueFull),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// Rows admitted and not yet answered (queued or computing).
    pub fn rows_in_flight(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
    }

    /// Stops admitting; the task flushes what is queued to the executor and ends.
    pub fn close(&self) {
        self.permits.close();
        self.cancel.cancel();
    }
}

/// The batcher task: owns the queue.
async fn run(
    mut rx: mpsc::Receiver<Request>,
    executor: mpsc::Sender<Batch>,
    idle: Arc<Semaphore>,
    policy: Policy,
    cost: Arc<CostModel>,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let cost = |rows: usize| cost.estimate(rows.min(policy.max_rows.max(1)));
    let mut queue: Lanes<Request> = Lanes::default();
    let mut closing = false;
    loop {
        // Wait until the executor is free: meanwhile requests keep piling up in the
        // channel, so a busy executor gets fuller batches.
        let Ok(busy) = idle.clone().acquire_owned().await else {
            break;
        };
        let Ok(slot) = executor.reserve().await else {
            break; // executor gone: nothing can be computed any more
        };
        let batch = loop {
            while let Ok(r) = rx.try_recv() {
                queue.push(r);
            }
            let now = Instant::now();
            let gone = queue.remove_abandoned(now);
            if gone > 0 {
                metrics.reject(RejectReason::ClientGone, gone as u64);
            }
            // Counted as `deadline` by the handler that answers 504.
            for late in queue.remove_expired(now, &cost) {
                let _ = late.reply.send(Err(PredictError::DeadlineExceeded));
            }
            metrics.queue_depth.set(queue.rows() as i64);
            match queue.next(now, policy, closing, &cost) {
                Next::Batch(batch) => break Some(batch),
                Next::Empty if closing => break None,
                Next::Empty => tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => queue.push(r),
                        None => closing = true,
                    },
                    _ = cancel.cancelled(), if !closing => { rx.close(); closing = true; }
                },
                Next::WaitUntil(deadline) => tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => queue.push(r),
                        None => closing = true,
                    },
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = cancel.cancelled(), if !closing => { rx.close(); closing = true; }
                },
            }
        };
        metrics.queue_depth.set(queue.rows() as i64);
        match batch {
            Some(requests) => slot.send(Batch {
                requests,
                _busy: busy,
            }),
            None => break,
        }
    }
    metrics.queue_depth.set(0);
}

/// How long a client may wait before trying again after a 429.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_batch_size: usize, delay_ms: f64) -> BatchingConfig {
        BatchingConfig {
            max_batch_size,
            max_queue_delay_ms: delay_ms,
            queue_capacity: 16,
            max_request_rows: 16,
            ..BatchingConfig::default()
        }
    }

    fn start(config: &BatchingConfig) -> (Batcher, mpsc::Receiver<Batch>, TaskTracker) {
        let (tx, rx) = mpsc::channel(1);
        let tracker = TaskTracker::new();
        let batcher = Batcher::spawn(config, tx, Arc::default(), Metrics::new(), &tracker);
        (batcher, rx, tracker)
    }

    fn rows_of(batch: &Batch) -> Vec<usize> {
        batch.requests.iter().map(|r| r.work.n_rows).collect()
    }

    fn work(n_rows: usize, width: usize) -> Work {
        Work {
            rows: vec![0.0; n_rows * width],
            n_rows,
            width,
            top_k: None,
            model: None,
            deadline: Instant::now() + Duration::from_secs(60),
            lane: 0,
            policy: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_waits_out_the_deadline_then_sends_one_batch() {
        let (batcher, mut rx, _t) = start(&config(8, 10.0));
        let _a = batcher.submit(work(1, 2)).unwrap();
        let _b = batcher.submit(work(2, 2)).unwrap();
        let started = Instant::now();
        let batch = rx.recv().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(10));
        assert_eq!(rows_of(&batch), [1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_leaves_without_waiting() {
        let (batcher, mut rx, _t) = start(&config(4, 1000.0));
        let _r: Vec<_> = (0..4)
            .map(|_| batcher.submit(work(1, 1)).unwrap())
            .collect();
        let started = Instant::now();
        let batch = rx.recv().await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(rows_of(&batch), [1, 1, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn admission_is_bounded_by_row_permits() {
        let (batcher, _rx, _t) = start(&config(4, 1000.0));
        let _held = batcher.submit(work(10, 1)).unwrap();
        assert_eq!(
            batcher.submit(work(7, 1)).unwrap_err(),
            SubmitError::QueueFull
        );
        let _fits = batcher.submit(work(6, 1)).unwrap();
        drop(_held); // still queued: the permits come back only when it is answered
        assert_eq!(
            batcher.submit(work(1, 1)).unwrap_err(),
            SubmitError::QueueFull
        );
    }

    #[tokio::test(start_paused = true)]
    async fn close_flushes_what_is_queued_and_refuses_more() {
        let (batcher, mut rx, tracker) = start(&config(8, 60_000.0));
        let _a = batcher.submit(work(1, 1)).unwrap();
        tokio::task::yield_now().await;
        batcher.close();
        assert_eq!(batcher.submit(work(1, 1)).unwrap_err(), SubmitError::Closed);
        let batch = rx.recv().await.unwrap();
        assert_eq!(rows_of(&batch), [1]);
        drop(batch); // the executor is done with it
        tracker.close();
        tracker.wait().await;
        assert!(
            rx.recv().await.is_none(),
            "the batcher ended and dropped its sender"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_deadline_passes_in_the_queue_is_answered_and_never_computed() {
        let (batcher, mut rx, _t) = start(&config(4, 0.0));
        // The executor takes the first batch and holds it (busy) for 100 ms.
        let _first = batcher.submit(work(1, 1)).unwrap();
        let busy = rx.recv().await.unwrap();
        let late = batcher
            .submit(Work {
                deadline: Instant::now() + Duration::from_millis(50),
                ..work(2, 1)
            })
            .unwrap();
        let on_time = batcher.submit(work(1, 1)).unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
        drop(busy); // the executor is free again
        let next = rx.recv().await.unwrap();
        assert_eq!(
            rows_of(&next),
            [1],
            "only the request still in time (2 + 1 rows fit)"
        );
        assert!(
            matches!(late.await.unwrap(), Err(PredictError::DeadlineExceeded)),
            "answered with the deadline error"
        );
        // The batch it would have joined holds only the request still in time.
        drop(next);
        assert!(
            on_time.await.is_err(),
            "the other request was handed over (and dropped here)"
        );
        assert!(
            rx.try_recv().is_err(),
            "nothing else was ever sent to compute"
        );
    }
}
