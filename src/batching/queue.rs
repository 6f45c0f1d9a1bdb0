//! Pure batch assembly: which waiting requests form the next batch, and when.
//!
//! No I/O and no clock of its own: the caller passes `now` and the measured cost of
//! a pass by rows, so the rules are tested exactly with paused time. Rules, in order:
//! 1. requests whose client has gone are removed and never computed; so are requests
//!    whose deadline has passed, or would pass before a pass of their own rows could
//!    finish (the caller answers those 504);
//! 2. a request at the head with at least `max_rows` rows is a batch on its own
//!    (the executor splits it into passes of `max_rows`), so an oversized request can
//!    never stall the queue (the infinite loop of a budget no request can meet);
//! 3. otherwise the longest FIFO prefix that fits in `max_rows` is taken as soon as it
//!    is full (exactly `max_rows`, or the next request would not fit), or once the
//!    oldest request has waited `max_delay`, or at once when flushing for shutdown;
//!    the prefix also stops before a request whose rows would make the pass end
//!    after the earliest deadline in it, and waiting for more rows never runs past
//!    the moment the earliest deadline needs the pass to start.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// What the queue needs to know about a waiting request.
pub trait Queued {
    /// Rows (instances) the request carries; at least 1.
    fn rows(&self) -> usize;
    /// When it entered the queue.
    fn enqueued_at(&self) -> Instant;
    /// True once nobody waits for the answer any more.
    fn is_abandoned(&self) -> bool;
    /// When the answer is due.
    fn deadline(&self) -> Instant;
}

/// The expected duration of a pass by rows, as measured.
pub type Cost<'a> = &'a dyn Fn(usize) -> Duration;

/// Batch formation limits.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Rows per forward pass.
    pub max_rows: usize,
    /// Longest wait for the oldest request before its batch goes anyway.
    pub max_delay: Duration,
}

/// The queue's answer to "what now?".
#[derive(Debug)]
pub enum Next<T> {
    /// Run these requests together, in this order.
    Batch(Vec<T>),
    /// Nothing is due before this instant (unless more requests arrive).
    WaitUntil(Instant),
    /// Nothing is waiting.
    Empty,
}

/// Requests waiting for a batch, oldest first.
#[derive(Debug)]
pub struct Queue<T> {
    items: VecDeque<T>,
    rows: usize,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            rows: 0,
        }
    }
}

impl<T: Queued> Queue<T> {
    /// Appends a request.
    pub fn push(&mut self, item: T) {
        self.rows += item.rows();
        self.items.push_back(item);
    }

    /// Rows waiting.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Removes the requests whose client has gone; returns how many of their rows
    /// were still within their deadline (an expired one was already answered 504 by
    /// its handler).
    pub fn remove_abandoned(&mut self, now: Instant) -> usize {
        let mut gone = 0;
        self.items.retain(|item| {
            let keep = !item.is_abandoned();
            if !keep {
                self.rows -= item.rows();
                if item.deadline() > now {
                    gone += item.rows();
                }
            }
            keep
        });
        gone
    }

    /// Removes and returns the requests that cannot be answered in time: their
    /// deadline is before `now` plus the cost of a pass of their own rows.
    pub fn remove_expired(&mut self, now: Instant, cost: Cost) -> Vec<T> {
        if !self
            .items
            .iter()
            .any(|i| now + cost(i.rows()) > i.deadline())
        {
            return Vec::new();
        }
        let (late, keep): (Vec<T>, Vec<T>) = self
            .items
            .drain(..)
            .partition(|i| now + cost(i.rows()) > i.deadline());
        self.items = keep.into();
        self.rows -= late.iter().map(Queued::rows).sum::<usize>();
        late
    }

    /// Decides the next batch at `now`. With `flush`, whatever fits goes at once.
    pub fn next(&mut self, now: Instant, policy: Policy, flush: bool, cost: Cost) -> Next<T> {
        let Some(head) = self.items.front() else {
            return Next::Empty;
        };
        let max_rows = policy.max_rows.max(1);
        if head.rows() >= max_rows {
            return Next::Batch(self.take(1));
        }
        let mut rows = 0;
        let mut count = 0;
        let mut due = head.deadline();
        let mut blocked = false;
        for item in &self.items {
            let due_with = due.min(item.deadline());
            if rows + item.rows() > max_rows
                || (count > 0 && now + cost(rows + item.rows()) > due_with)
            {
                blocked = true;
                break;
            }
            rows += item.rows();
            due = due_with;
            count += 1;
        }
        // Waiting for more rows ends when the oldest has waited `max_delay`, or when
        // the pass must start to meet the earliest deadline in it.
        let wait_until =
            (head.enqueued_at() + policy.max_delay).min(due.checked_sub(cost(rows)).unwrap_or(now));
        if rows == max_rows || blocked || flush || now >= wait_until {
            Next::Batch(self.take(count))
        } else {
            Next::WaitUntil(wait_until)
        }
    }

    fn take(&mut self, count: usize) -> Vec<T> {
        let batch: Vec<T> = self.items.drain(..count).collect();
        self.rows -= batch.iter().map(Queued::rows).sum::<usize>();
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug)]
    struct Req {
        id: usize,
        rows: usize,
        at: Instant,
        due: Instant,
        gone: Arc<AtomicBool>,
    }

    impl Queued for Req {
        fn rows(&self) -> usize {
            self.rows
        }
        fn enqueued_at(&self) -> Instant {
            self.at
        }
        fn is_abandoned(&self) -> bool {
            self.gone.load(Ordering::Relaxed)
        }
        fn deadline(&self) -> Instant {
            self.due
        }
    }

    fn req(id: usize, rows: usize) -> Req {
        Req {
            id,
            rows,
            at: Instant::now(),
            due: Instant::now() + Duration::from_secs(60),
            gone: Arc::default(),
        }
    }

    fn ids(next: Next<Req>) -> Vec<usize> {
        match next {
            Next::Batch(b) => b.into_iter().map(|r| r.id).collect(),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    /// Passes that cost nothing.
    const FREE: Cost = &|_| Duration::ZERO;

    const POLICY: Policy = Policy {
        max_rows: 8,
        max_delay: Duration::from_millis(5),
    };

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_deadline_of_the_oldest_request() {
        let mut q = Queue::default();
        let start = Instant::now();
        q.push(req(1, 2));
        tokio::time::advance(Duration::from_millis(3)).await;
        q.push(req(2, 2));
        match q.next(Instant::now(), POLICY, false, FREE) {
            Next::WaitUntil(t) => assert_eq!(t, start + Duration::from_millis(5)),
            other => panic!("expected to wait, got {other:?}"),
        }
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, FREE)), vec![1, 2]);
        assert!(matches!(
            q.next(Instant::now(), POLICY, false, FREE),
            Next::Empty
        ));
        assert_eq!(q.rows(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_before_the_deadline() {
        let mut q = Queue::default();
        for id in 0..4 {
            q.push(req(id, 2));
        }
        assert_eq!(
            ids(q.next(Instant::now(), POLICY, false, FREE)),
            vec![0, 1, 2, 3]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn row_budget_is_never_exceeded_and_order_is_kept() {
        let mut q = Queue::default();
        q.push(req(0, 5));
        q.push(req(1, 2));
        q.push(req(2, 3)); // would make 10 > 8: blocks, so the first two go at once
        q.push(req(3, 1));
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, FREE)), vec![0, 1]);
        assert_eq!(q.rows(), 4);
        tokio::time::advance(POLICY.max_delay).await;
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, FREE)), vec![2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversized_request_goes_alone_and_never_stalls() {
        let mut q = Queue::default();
        q.push(req(0, 100));
        q.push(req(1, 1));
        // No waiting at all: the oversized head is due at once.
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, FREE)), vec![0]);
        // And the request behind it is not starved either.
        tokio::time::advance(POLICY.max_delay).await;
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, FREE)), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversized_request_behind_others_goes_next() {
        let mut q = Queue::default();
        q.push(req(0, 3));
        q.push(req(1, 50));
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, FREE)), vec![0]);
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, FREE)), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn batching_off_means_one_row_per_batch() {
        let one = Policy {
            max_rows: 1,
            ..POLICY
        };
        let mut q = Queue::default();
        for id in 0..3 {
            q.push(req(id, 1));
        }
        for id in 0..3 {
            assert_eq!(ids(q.next(Instant::now(), one, false, FREE)), vec![id]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_requests_are_skipped() {
        let mut q = Queue::default();
        let gone = req(0, 3);
        gone.gone.store(true, Ordering::Relaxed);
        q.push(gone);
        q.push(req(1, 2));
        assert_eq!(q.remove_abandoned(Instant::now()), 3);
        assert_eq!(q.rows(), 2);
        tokio::time::advance(POLICY.max_delay).await;
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, FREE)), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn flush_sends_partial_batches_at_once() {
        let mut q = Queue::default();
        q.push(req(0, 1));
        assert_eq!(ids(q.next(Instant::now(), POLICY, true, FREE)), vec![0]);
    }

    fn due_in(id: usize, rows: usize, ms: u64) -> Req {
        Req {
            due: Instant::now() + Duration::from_millis(ms),
            ..req(id, rows)
        }
    }

    /// A pass costs 1 ms per row.
    const PER_ROW: Cost = &|rows| Duration::from_millis(rows as u64);

    #[tokio::test(start_paused = true)]
    async fn a_request_that_cannot_finish_in_time_is_removed_not_computed() {
        let mut q = Queue::default();
        q.push(due_in(0, 2, 1)); // needs 2 ms, has 1
        q.push(due_in(1, 2, 50));
        let late = q.remove_expired(Instant::now(), PER_ROW);
        assert_eq!(late.iter().map(|r| r.id).collect::<Vec<_>>(), vec![0]);
        assert_eq!(q.rows(), 2);
        tokio::time::advance(Duration::from_millis(49)).await;
        // 1 ms left, the pass needs 2: expired too.
        assert_eq!(q.remove_expired(Instant::now(), PER_ROW).len(), 1);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_never_grows_past_its_earliest_deadline() {
        let mut q = Queue::default();
        q.push(due_in(0, 3, 5)); // alone: 3 ms of its 5
        q.push(due_in(1, 3, 100)); // together: 6 ms, past the first one's 5
        q.push(due_in(2, 1, 100));
        assert_eq!(ids(q.next(Instant::now(), POLICY, false, PER_ROW)), vec![0]);
        assert_eq!(
            ids(q.next(Instant::now(), POLICY, true, PER_ROW)),
            vec![1, 2]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_rows_stops_when_the_deadline_needs_the_pass() {
        let slow = Policy {
            max_rows: 8,
            max_delay: Duration::from_millis(100),
        };
        let mut q = Queue::default();
        let start = Instant::now();
        q.push(due_in(0, 2, 10)); // must start by 8 ms
        match q.next(Instant::now(), slow, false, PER_ROW) {
            Next::WaitUntil(t) => assert_eq!(t, start + Duration::from_millis(8)),
            other => panic!("expected to wait, got {other:?}"),
        }
        tokio::time::advance(Duration::from_millis(8)).await;
        assert_eq!(ids(q.next(Instant::now(), slow, false, PER_ROW)), vec![0]);
    }
}
