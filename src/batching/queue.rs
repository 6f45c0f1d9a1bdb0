//! Pure batch assembly: which waiting requests form the next batch, and when.
//!
//! No I/O and no clock of its own: the caller passes `now`, so the rules are tested
//! exactly with paused time. Rules, in order:
//! 1. requests whose client has gone are removed and never computed;
//! 2. a request at the head with at least `max_rows` rows is a batch on its own
//!    (the executor splits it into passes of `max_rows`), so an oversized request can
//!    never stall the queue (the infinite loop of a budget no request can meet);
//! 3. otherwise the longest FIFO prefix that fits in `max_rows` is taken as soon as it
//!    is full (exactly `max_rows`, or the next request would not fit), or once the
//!    oldest request has waited `max_delay`, or at once when flushing for shutdown.

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
}

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

    /// Removes the requests whose client has gone; returns how many rows that freed.
    pub fn remove_abandoned(&mut self) -> usize {
        let before = self.rows;
        self.items.retain(|item| {
            let keep = !item.is_abandoned();
            if !keep {
                self.rows -= item.rows();
            }
            keep
        });
        before - self.rows
    }

    /// Decides the next batch at `now`. With `flush`, whatever fits goes at once.
    pub fn next(&mut self, now: Instant, policy: Policy, flush: bool) -> Next<T> {
        let Some(head) = self.items.front() else {
            return Next::Empty;
        };
        let max_rows = policy.max_rows.max(1);
        let deadline = head.enqueued_at() + policy.max_delay;
        if head.rows() >= max_rows {
            return Next::Batch(self.take(1));
        }
        let mut rows = 0;
        let mut count = 0;
        let mut blocked = false;
        for item in &self.items {
            if rows + item.rows() > max_rows {
                blocked = true;
                break;
            }
            rows += item.rows();
            count += 1;
        }
        if rows == max_rows || blocked || flush || now >= deadline {
            Next::Batch(self.take(count))
        } else {
            Next::WaitUntil(deadline)
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
    }

    fn req(id: usize, rows: usize) -> Req {
        Req {
            id,
            rows,
            at: Instant::now(),
            gone: Arc::default(),
        }
    }

    fn ids(next: Next<Req>) -> Vec<usize> {
        match next {
            Next::Batch(b) => b.into_iter().map(|r| r.id).collect(),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

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
        match q.next(Instant::now(), POLICY, false) {
            Next::WaitUntil(t) => assert_eq!(t, start + Duration::from_millis(5)),
            other => panic!("expected to wait, got {other:?}"),
        }
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![1, 2]);
        assert!(matches!(q.next(Instant::now(), POLICY, false), Next::Empty));
        assert_eq!(q.rows(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_before_the_deadline() {
        let mut q = Queue::default();
        for id in 0..4 {
            q.push(req(id, 2));
        }
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![0, 1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn row_budget_is_never_exceeded_and_order_is_kept() {
        let mut q = Queue::default();
        q.push(req(0, 5));
        q.push(req(1, 2));
        q.push(req(2, 3)); // would make 10 > 8: blocks, so the first two go at once
        q.push(req(3, 1));
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![0, 1]);
        assert_eq!(q.rows(), 4);
        tokio::time::advance(POLICY.max_delay).await;
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversized_request_goes_alone_and_never_stalls() {
        let mut q = Queue::default();
        q.push(req(0, 100));
        q.push(req(1, 1));
        // No waiting at all: the oversized head is due at once.
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![0]);
        // And the request behind it is not starved either.
        tokio::time::advance(POLICY.max_delay).await;
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversized_request_behind_others_goes_next() {
        let mut q = Queue::default();
        q.push(req(0, 3));
        q.push(req(1, 50));
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![0]);
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![1]);
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
            assert_eq!(ids(q.next(Instant::now(), one, false)), vec![id]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_requests_are_skipped() {
        let mut q = Queue::default();
        let gone = req(0, 3);
        gone.gone.store(true, Ordering::Relaxed);
        q.push(gone);
        q.push(req(1, 2));
        assert_eq!(q.remove_abandoned(), 3);
        assert_eq!(q.rows(), 2);
        tokio::time::advance(POLICY.max_delay).await;
        assert_eq!(ids(q.next(Instant::now(), POLICY, false)), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn flush_sends_partial_batches_at_once() {
        let mut q = Queue::default();
        q.push(req(0, 1));
        assert_eq!(ids(q.next(Instant::now(), POLICY, true)), vec![0]);
    }
}
