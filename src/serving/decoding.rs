//! How many of one model's request bodies are decoded at once: bounded, while
//! other models are served too, by the cores the executor leaves free.
//!
//! Reading and decoding a prediction's JSON is most of its HTTP cost. Without a
//! bound, a model flooded past its capacity has a body in decode on every runtime
//! worker, beside the executor's passes: more busy threads than cores, and every
//! other model's requests wait for a CPU behind them. So each model has a
//! [`Door`], and requests wait at it in order:
//! - while only one model gets requests, it may decode on every worker (its own
//!   requests are the only ones it can delay);
//! - once another model got one within [`SHARED_FOR`], each model decodes at most
//!   [`Decoding::shared_limit`] bodies at once: the workers less the cores the
//!   executor's passes kept busy over the last tick, rounded up, and at least 1.
//!
//! A request waits at most [`DECODE_WAIT`] at the door, then is turned away
//! (429): a flood cannot build a line of requests that waits longer than the
//! queue behind the door would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::batching::cost::CostModel;

/// Longest a request waits at its model's door before it is turned away (429).
pub const DECODE_WAIT: Duration = Duration::from_millis(100);

/// Longest a request reads its body inside the door; a body still arriving is
/// read on outside it.
pub const SLOW_BODY: Duration = Duration::from_millis(1);

/// How long after two models' requests the bound stays on.
pub const SHARED_FOR: Duration = Duration::from_secs(1);

/// How often the limit follows the executor's load.
const TICK: Duration = Duration::from_millis(100);

/// A door's permits: a request takes `PERMITS / limit` of them (rounded up), so
/// `limit` requests hold them at once, whatever the limit is when they come.
const PERMITS: u32 = 1 << 16;

/// `last_door` before any request.
const NO_DOOR: u64 = u64::MAX;

/// The process's decode limits, and which model's door was entered last.
#[derive(Debug)]
pub struct Decoding {
    workers: usize,
    /// Bodies of one model decoded at once while others are served too.
    shared: AtomicUsize,
    /// The door entered last (its model's lane).
    last_door: AtomicU64,
    /// When a request last came to another door than the one before it
    /// (milliseconds from `started`; 0: never).
    mixed_at: AtomicU64,
    started: Instant,
}

impl Decoding {
    /// Every worker may decode until the executor is measured busy.
    pub fn new(workers: usize) -> Arc<Self> {
        let workers = workers.clamp(1, PERMITS as usize);
        Arc::new(Self {
            workers,
            shared: AtomicUsize::new(workers),
            last_door: AtomicU64::new(NO_DOOR),
            mixed_at: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Bodies of one model decoded at once while other models are served too.
    pub fn shared_limit(&self) -> usize {
        self.shared.load(Ordering::Relaxed)
    }

    /// The limit for a request to the door of `lane`, which it notes as the
    /// door entered last.
    fn limit_for(&self, lane: u64) -> usize {
        let now = (self.started.elapsed().as_millis() as u64).max(1);
        let before = self.last_door.swap(lane, Ordering::Relaxed);
        if before != lane && before != NO_DOOR {
            self.mixed_at.store(now, Ordering::Relaxed);
        }
        let mixed = self.mixed_at.load(Ordering::Relaxed);
        if mixed > 0 && now - mixed.min(now) < SHARED_FOR.as_millis() as u64 {
            self.shared_limit()
        } else {
            self.workers
        }
    }

    /// Follows a tick in which the executor's passes took `busy` of `compute_threads`
    /// threads' time (0 to 1).
    fn tune(&self, busy: f64, compute_threads: usize) {
        let used = (busy.clamp(0.0, 1.0) * compute_threads as f64).ceil() as usize;
        let limit = self.workers.saturating_sub(used).max(1);
        self.shared.store(limit, Ordering::Relaxed);
    }

    /// Starts the task that follows the executor's load in `cost`, until `stop`.
    pub fn follow(
        self: &Arc<Self>,
        cost: Arc<CostModel>,
        compute_threads: usize,
        stop: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let decoding = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut at, mut busy) = (Instant::now(), cost.busy());
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let (now, now_busy) = (Instant::now(), cost.busy());
                let wall = now.duration_since(at).as_secs_f64();
                if wall > 0.0 {
                    let share = (now_busy - busy).as_secs_f64() / wall;
                    decoding.tune(share, compute_threads);
                }
                (at, busy) = (now, now_busy);
            }
        });
    }
}

/// One model's door.
#[derive(Debug)]
pub struct Door {
    permits: Arc<Semaphore>,
    decoding: Arc<Decoding>,
    /// The model's lane: which model came last.
    lane: u64,
}

impl Door {
    pub fn new(decoding: Arc<Decoding>, lane: u64) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(PERMITS as usize)),
            decoding,
            lane,
        }
    }

    /// A place to decode a body, held until dropped; `None` if none came free
    /// within `wait`.
    pub async fn enter(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let limit = self.decoding.limit_for(self.lane).max(1) as u32;
        let take = PERMITS.div_ceil(limit);
        tokio::time::timeout(wait, self.permits.clone().acquire_many_owned(take))
            .await
            .ok()?
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_limit_is_the_workers_the_executor_leaves() {
        let d = Decoding::new(2);
        assert_eq!(d.shared_limit(), 2, "nothing measured yet");
        d.tune(0.9, 1);
        assert_eq!(d.shared_limit(), 1, "a busy executor keeps a core");
        d.tune(0.3, 1);
        assert_eq!(d.shared_limit(), 1, "part of a core is kept whole");
        d.tune(0.0, 1);
        assert_eq!(d.shared_limit(), 2, "an idle executor leaves both");
        d.tune(1.0, 4);
        assert_eq!(d.shared_limit(), 1, "never below one");
        d.tune(7.0, 1);
        assert_eq!(
            d.shared_limit(),
            1,
            "a share past 1 (a pass recorded late) counts as 1"
        );
        let wide = Decoding::new(16);
        wide.tune(1.0, 2);
        assert_eq!(wide.shared_limit(), 14);
    }

    #[tokio::test(start_paused = true)]
    async fn a_model_alone_decodes_on_every_worker_and_one_beside_another_on_its_share() {
        let d = Decoding::new(2);
        d.tune(1.0, 1);
        let (a, b) = (Door::new(d.clone(), 1), Door::new(d.clone(), 2));
        let a1 = a.enter(DECODE_WAIT).await.expect("room");
        let a2 = a.enter(DECODE_WAIT).await.expect("alone: every worker");
        drop((a1, a2));
        let b1 = b.enter(DECODE_WAIT).await.expect("b's own door");
        let a3 = a.enter(DECODE_WAIT).await.expect("one of a's");
        let started = Instant::now();
        assert!(
            a.enter(DECODE_WAIT).await.is_none(),
            "beside b: one at a time; the next waits, then gives up"
        );
        assert_eq!(started.elapsed(), DECODE_WAIT);
        let a = Arc::new(a);
        let next = tokio::spawn({
            let a = a.clone();
            async move { a.enter(DECODE_WAIT).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a3);
        let a4 = next.await.unwrap().expect("in when the first leaves");
        drop((a4, b1));
        tokio::time::sleep(SHARED_FOR).await;
        let _a5 = a.enter(DECODE_WAIT).await.expect("room");
        let _a6 = a
            .enter(DECODE_WAIT)
            .await
            .expect("b quiet for a while: every worker again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_shared_limit_follows_the_executors_measured_load() {
        let d = Decoding::new(2);
        let cost = Arc::new(CostModel::default());
        let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
        d.follow(cost.clone(), 1, stop.clone(), &tracker);
        tokio::time::sleep(Duration::from_millis(1)).await;
        cost.record(64, Duration::from_millis(95));
        tokio::time::sleep(TICK).await;
        assert_eq!(d.shared_limit(), 1, "95 ms of passes in a 100 ms tick");
        tokio::time::sleep(TICK).await;
        assert_eq!(d.shared_limit(), 2, "an idle tick");
        stop.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
