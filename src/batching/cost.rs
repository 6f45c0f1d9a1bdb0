//! What a forward pass costs, by batch size, as measured: the executor records each
//! pass, the batcher reads the estimate to keep batches inside their deadlines.
//!
//! One exponentially weighted mean per power-of-two bucket of rows, in atomics (one
//! writer, one reader, no lock). A bucket never measured is estimated from the
//! nearest measured one, scaled by rows for a smaller one; with no measurement at
//! all the estimate is zero (nothing is refused on a guess). It also adds up the
//! time spent in passes, which tells how much of a core the executor keeps busy
//! (`serving::decoding`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets: 1, 2, 4, ... 2^31 rows.
const BUCKETS: usize = 32;

/// Measured compute time per batch-size bucket.
#[derive(Debug)]
pub struct CostModel {
    nanos: [AtomicU64; BUCKETS],
    /// Every pass's time, added up.
    busy: AtomicU64,
}

impl Default for CostModel {
    fn default() -> Self {
        Self {
            nanos: std::array::from_fn(|_| AtomicU64::new(0)),
            busy: AtomicU64::new(0),
        }
    }
}

fn bucket(rows: usize) -> usize {
    (rows.max(1).next_power_of_two().trailing_zeros() as usize).min(BUCKETS - 1)
}

impl CostModel {
    /// Records a pass of `rows` rows that took `took`.
    pub fn record(&self, rows: usize, took: Duration) {
        let slot = &self.nanos[bucket(rows)];
        let sample = took.as_nanos().min(u64::MAX as u128) as u64;
        let old = slot.load(Ordering::Relaxed);
        // Mean with weight 1/4 on the new sample; the first sample is taken as is.
        let new = if old == 0 {
            sample.max(1)
        } else {
            (old - old / 4 + sample / 4).max(1)
        };
        slot.store(new, Ordering::Relaxed);
        self.busy.fetch_add(sample, Ordering::Relaxed);
    }

    /// The time spent in passes since the start.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy.load(Ordering::Relaxed))
    }

    /// The expected time of a pass of `rows` rows.
    pub fn estimate(&self, rows: usize) -> Duration {
        let b = bucket(rows);
        let at = |i: usize| self.nanos[i].load(Ordering::Relaxed);
        if at(b) > 0 {
            return Duration::from_nanos(at(b));
        }
        if let Some(lower) = (0..b).rev().find(|&i| at(i) > 0) {
            return Duration::from_nanos(at(lower).saturating_mul(1 << (b - lower)));
        }
        match (b + 1..BUCKETS).find(|&i| at(i) > 0) {
            Some(upper) => Duration::from_nanos(at(upper) >> (upper - b)),
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_come_from_the_measured_buckets() {
        let c = CostModel::default();
        assert_eq!(
            c.estimate(8),
            Duration::ZERO,
            "nothing measured, nothing refused"
        );
        c.record(8, Duration::from_millis(4));
        assert_eq!(c.estimate(5), Duration::from_millis(4), "same bucket");
        assert_eq!(
            c.estimate(32),
            Duration::from_millis(16),
            "scaled up by rows"
        );
        assert_eq!(
            c.estimate(2),
            Duration::from_millis(1),
            "scaled down by rows"
        );
        c.record(8, Duration::from_millis(8));
        assert_eq!(c.estimate(8), Duration::from_millis(5), "a weighted mean");
        assert_eq!(c.busy(), Duration::from_millis(12), "both passes' time");
    }
}
