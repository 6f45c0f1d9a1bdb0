//! Batches formed fairly across models: one [`Queue`] per lane (a served model),
//! the next batch taken from the lane that has been served least, by start-time
//! fair queueing over rows. Each lane carries a virtual finish tag: the rows it has
//! had batched, counted from the virtual time at which it last became busy. The
//! lane with the lowest start tag (its tag, or the clock if it was idle) that has a
//! batch due goes next. So a flood of requests to one model delays another model's
//! requests by at most the batch already computing, rather than by all of its
//! queued rows; two busy lanes share passes by rows; a lane that was idle goes
//! first. Each lane keeps the FIFO rules of [`Queue`]; with one lane, batches are
//! exactly the queue's.

use tokio::time::Instant;

use super::queue::{Cost, Next, Policy, Queue, Queued};

/// A waiting request and the lane it belongs to.
pub trait Laned: Queued {
    fn lane(&self) -> u64;
    /// The lane's own batch limits (its model's `[models.<name>]` keys); `None`:
    /// the batcher's.
    fn policy(&self) -> Option<Policy> {
        None
    }
}

/// One model's queue, its own limits (taken from its first request) if it has
/// any, and its virtual finish tag.
#[derive(Debug)]
struct Lane<T> {
    id: u64,
    queue: Queue<T>,
    policy: Option<Policy>,
    /// Rows batched, in virtual time: where its next batch would start.
    finish: u64,
}

/// The busy lanes, each with its queue and tag.
#[derive(Debug)]
pub struct Lanes<T> {
    lanes: Vec<Lane<T>>,
    /// Virtual time: the start tag of the last batch given.
    clock: u64,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Self {
            lanes: Vec::new(),
            clock: 0,
        }
    }
}

impl<T: Laned> Lanes<T> {
    pub fn push(&mut self, item: T) {
        let lane = item.lane();
        match self.lanes.iter_mut().find(|l| l.id == lane) {
            Some(l) => l.queue.push(item),
            None => {
                let policy = item.policy();
                let mut queue = Queue::default();
                queue.push(item);
                // A lane that was idle starts at the clock: it owes nothing, and
                // is owed nothing for the time it sent no rows.
                self.lanes.push(Lane {
                    id: lane,
                    queue,
                    policy,
                    finish: self.clock,
                });
            }
        }
    }

    /// Rows waiting in every lane.
    pub fn rows(&self) -> usize {
        self.lanes.iter().map(|l| l.queue.rows()).sum()
    }

    /// [`Queue::remove_abandoned`] in every lane.
    pub fn remove_abandoned(&mut self, now: Instant) -> usize {
        self.lanes
            .iter_mut()
            .map(|l| l.queue.remove_abandoned(now))
            .sum()
    }

    /// [`Queue::remove_expired`] in every lane.
    pub fn remove_expired(&mut self, now: Instant, cost: Cost) -> Vec<T> {
        self.lanes
            .iter_mut()
            .flat_map(|l| l.queue.remove_expired(now, cost))
            .collect()
    }

    /// The next batch: from the lane with the lowest start tag that has one due
    /// under its limits, else `policy` (ties go to the lane busy longest); else
    /// the earliest time one is due.
    pub fn next(&mut self, now: Instant, policy: Policy, flush: bool, cost: Cost) -> Next<T> {
        self.lanes.retain(|l| !l.queue.is_empty());
        let clock = self.clock;
        let start = |l: &Lane<T>| l.finish.max(clock);
        let mut order: Vec<usize> = (0..self.lanes.len()).collect();
        // One lane (one model served): nothing to order.
        if order.len() > 1 {
            order.sort_by_key(|&i| start(&self.lanes[i]));
        }
        let mut wait: Option<Instant> = None;
        for i in order {
            let lane = &mut self.lanes[i];
            match lane
                .queue
                .next(now, lane.policy.unwrap_or(policy), flush, cost)
            {
                Next::Batch(batch) => {
                    let rows: usize = batch.iter().map(Queued::rows).sum();
                    let begins = lane.finish.max(clock);
                    lane.finish = begins.saturating_add(rows as u64);
                    self.clock = begins;
                    return Next::Batch(batch);
                }
                Next::WaitUntil(t) => wait = Some(wait.map_or(t, |w| w.min(t))),
                Next::Empty => {}
            }
        }
        wait.map_or(Next::Empty, Next::WaitUntil)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug)]
    struct Req {
        lane: u64,
        id: usize,
        rows: usize,
        at: Instant,
    }

    impl Queued for Req {
        fn rows(&self) -> usize {
            self.rows
        }
        fn enqueued_at(&self) -> Instant {
            self.at
        }
        fn is_abandoned(&self) -> bool {
            false
        }
        fn deadline(&self) -> Instant {
            self.at + Duration::from_secs(60)
        }
    }

    impl Laned for Req {
        fn lane(&self) -> u64 {
            self.lane
        }
        /// Lane 7 has its own limits: 2 rows, no wait.
        fn policy(&self) -> Option<Policy> {
            (self.lane == 7).then_some(Policy {
                max_rows: 2,
                max_delay: Duration::ZERO,
            })
        }
    }

    fn ids(next: Next<Req>) -> Vec<usize> {
        match next {
            Next::Batch(b) => b.iter().map(|r| r.id).collect(),
            other => panic!("no batch: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flooded_lane_gives_way_to_another_after_one_batch() {
        let policy = Policy {
            max_rows: 4,
            max_delay: Duration::from_millis(2),
        };
        let cost = |_: usize| Duration::from_micros(100);
        let now = Instant::now();
        let mut lanes = Lanes::default();
        // Lane 1 floods: 16 rows queued before lane 2's one request.
        for id in 0..16 {
            lanes.push(Req {
                lane: 1,
                id,
                rows: 1,
                at: now,
            });
        }
        lanes.push(Req {
            lane: 2,
            id: 100,
            rows: 1,
            at: now,
        });
        assert_eq!(lanes.rows(), 17);
        assert_eq!(ids(lanes.next(now, policy, false, &cost)), [0, 1, 2, 3]);
        // Lane 2's request is not full, so it waits for its own delay ...
        let later = now + Duration::from_millis(2);
        // ... and then goes before lane 1's second batch.
        assert_eq!(ids(lanes.next(later, policy, false, &cost)), [100]);
        assert_eq!(ids(lanes.next(later, policy, false, &cost)), [4, 5, 6, 7]);
        assert_eq!(ids(lanes.next(later, policy, false, &cost)), [8, 9, 10, 11]);
        assert_eq!(lanes.rows(), 4);
        // Full batches of two lanes alternate.
        for id in 200..204 {
            lanes.push(Req {
                lane: 3,
                id,
                rows: 1,
                at: later,
            });
        }
        let order: Vec<Vec<usize>> = (0..2)
            .map(|_| ids(lanes.next(later, policy, false, &cost)))
            .collect();
        assert!(order.contains(&vec![12, 13, 14, 15]) && order.contains(&vec![200, 201, 202, 203]));
        assert!(matches!(
            lanes.next(later, policy, false, &cost),
            Next::Empty
        ));
    }

    /// A one-row request of `lane`.
    fn one_row(lane: u64, id: usize, at: Instant) -> Req {
        Req {
            lane,
            id,
            rows: 1,
            at,
        }
    }

    /// Batches of at most 4 rows, never waiting; passes cost nothing.
    const NO_WAIT: Policy = Policy {
        max_rows: 4,
        max_delay: Duration::ZERO,
    };

    /// A model that sends its first request while another is being served goes
    /// before that other's next batch (taking lanes in turn would let the busy
    /// lane go again first, as it was next in the turn).
    #[tokio::test(start_paused = true)]
    async fn a_lane_that_was_idle_goes_before_a_busy_lanes_next_batch() {
        let cost = |_: usize| Duration::ZERO;
        let now = Instant::now();
        let mut lanes = Lanes::default();
        for id in 0..12 {
            lanes.push(one_row(1, id, now));
        }
        assert_eq!(ids(lanes.next(now, NO_WAIT, false, &cost)), [0, 1, 2, 3]);
        lanes.push(one_row(2, 100, now));
        assert_eq!(ids(lanes.next(now, NO_WAIT, false, &cost)), [100]);
        assert_eq!(ids(lanes.next(now, NO_WAIT, false, &cost)), [4, 5, 6, 7]);
    }

    /// Two busy lanes share passes by rows: lane 7 (its own limit: 2-row
    /// batches) gets two batches for each 4-row batch of lane 1.
    #[tokio::test(start_paused = true)]
    async fn busy_lanes_share_by_rows() {
        let cost = |_: usize| Duration::ZERO;
        let now = Instant::now();
        let mut lanes = Lanes::default();
        for id in 0..40 {
            for lane in [1, 7] {
                lanes.push(one_row(lane, id, now));
            }
        }
        let mut rows = [0usize; 2];
        for _ in 0..12 {
            let Next::Batch(batch) = lanes.next(now, NO_WAIT, false, &cost) else {
                panic!("both lanes have rows");
            };
            rows[usize::from(batch[0].lane == 7)] += batch.len();
        }
        assert_eq!(rows, [16, 16], "equal rows each");
    }

    #[tokio::test(start_paused = true)]
    async fn one_lane_batches_as_one_queue_does() {
        let policy = Policy {
            max_rows: 3,
            max_delay: Duration::from_millis(5),
        };
        let cost = |_: usize| Duration::ZERO;
        let now = Instant::now();
        let (mut lanes, mut queue) = (Lanes::default(), Queue::default());
        for id in 0..7 {
            lanes.push(Req {
                lane: 9,
                id,
                rows: 1,
                at: now,
            });
            queue.push(Req {
                lane: 9,
                id,
                rows: 1,
                at: now,
            });
        }
        for t in [0, 5, 5, 5] {
            let at = now + Duration::from_millis(t);
            let (a, b) = (
                lanes.next(at, policy, false, &cost),
                queue.next(at, policy, false, &cost),
            );
            match (a, b) {
                (Next::Batch(a), Next::Batch(b)) => assert_eq!(
                    a.iter().map(|r| r.id).collect::<Vec<_>>(),
                    b.iter().map(|r| r.id).collect::<Vec<_>>()
                ),
                (Next::WaitUntil(a), Next::WaitUntil(b)) => assert_eq!(a, b),
                (Next::Empty, Next::Empty) => {}
                (a, b) => panic!("{a:?} vs {b:?}"),
            }
        }
    }

    /// A lane with its own limits batches by them; the others by the batcher's.
    #[tokio::test(start_paused = true)]
    async fn a_lane_with_its_own_limits_batches_by_them() {
        let policy = Policy {
            max_rows: 4,
            max_delay: Duration::from_millis(50),
        };
        let cost = |_: usize| Duration::ZERO;
        let now = Instant::now();
        let mut lanes = Lanes::default();
        for id in 0..3 {
            for lane in [1, 7] {
                lanes.push(Req {
                    lane,
                    id: id + 10 * lane as usize,
                    rows: 1,
                    at: now,
                });
            }
        }
        // Lane 7 goes at once, 2 rows at a time; lane 1 (3 rows of 4) waits.
        assert_eq!(ids(lanes.next(now, policy, false, &cost)), [70, 71]);
        assert_eq!(ids(lanes.next(now, policy, false, &cost)), [72]);
        match lanes.next(now, policy, false, &cost) {
            Next::WaitUntil(t) => assert_eq!(t, now + Duration::from_millis(50)),
            other => panic!("{other:?}"),
        }
        let later = now + Duration::from_millis(50);
        assert_eq!(ids(lanes.next(later, policy, false, &cost)), [10, 11, 12]);
    }
}
