//! Picking a share of a stream deterministically: the prediction log's sampling
//! and the canary and shadow routes' percentages.

/// Whether request `k` of a stream is picked at `rate` (0 to 1): exactly
/// `rate * n` of any `n` consecutive requests, rounded, spread evenly.
pub fn spread(k: u64, rate: f64) -> bool {
    let k = k as f64;
    ((k + 1.0) * rate).floor() > (k * rate).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_exact_and_spread() {
        let take = |rate: f64, n: u64| (0..n).filter(|k| spread(*k, rate)).count();
        assert_eq!(take(0.1, 5000), 500);
        assert_eq!(take(1.0, 7), 7);
        assert_eq!(take(0.025, 400), 10);
        assert_eq!(take(0.0, 50), 0);
        // Evenly: every run of 10 at 10% holds exactly one.
        for start in 0..50 {
            assert_eq!((start..start + 10).filter(|k| spread(*k, 0.1)).count(), 1);
        }
    }
}
