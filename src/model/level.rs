//! Levelling a window of one series: each instance's inputs and its target are
//! taken relative to the mean of that instance's inputs, and the level is added
//! back to every prediction.
//!
//! A network fed lags of a trending series meets, in its validation and live rows,
//! values above anything it trained on; a `tanh` recurrence cannot extrapolate
//! there. Relative to its own window, every instance looks like the training rows
//! again (the model is the same under a shift of the whole window). Chosen for a
//! single-series regression when the window's mean explains most of the target
//! ([`worth_it`]), or set by the recipe's `level`.

use serde::{Deserialize, Serialize};

/// How instances are levelled before the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Relative to the mean of the instance's own inputs.
    WindowMean,
}

impl Level {
    /// Each row's level (`rows` row-major, `width` values per row).
    pub fn offsets(self, rows: &[f32], width: usize) -> Vec<f32> {
        match self {
            Self::WindowMean => rows
                .chunks_exact(width.max(1))
                .map(|r| (r.iter().map(|v| f64::from(*v)).sum::<f64>() / r.len() as f64) as f32)
                .collect(),
        }
    }

    /// Subtracts each row's level from its values.
    pub fn remove(values: &mut [f32], per_row: usize, offsets: &[f32]) {
        for (row, o) in values.chunks_exact_mut(per_row.max(1)).zip(offsets) {
            row.iter_mut().for_each(|v| *v -= o);
        }
    }

    /// Adds each row's level back to its values.
    pub fn restore(values: &mut [f32], per_row: usize, offsets: &[f32]) {
        for (row, o) in values.chunks_exact_mut(per_row.max(1)).zip(offsets) {
            row.iter_mut().for_each(|v| *v += o);
        }
    }
}

/// Share of the target's variance that must remain, relative to the window's mean,
/// for levelling to be chosen: at most half.
pub const WORTH_IT: f64 = 0.5;

/// The target's variance relative to the window mean over its plain variance, on
/// the training rows (`y` one target per row).
pub fn variance_ratio(x: &[f32], width: usize, y: &[f32]) -> f64 {
    let offsets = Level::WindowMean.offsets(x, width);
    let var = |v: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = v.collect();
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n
    };
    let plain = var(&mut y.iter().map(|v| f64::from(*v)));
    let relative = var(&mut y.iter().zip(&offsets).map(|(v, o)| f64::from(v - o)));
    if plain > 0.0 { relative / plain } else { 1.0 }
}

/// Whether levelling pays on these training rows ([`WORTH_IT`]).
pub fn worth_it(ratio: f64) -> bool {
    ratio.is_finite() && ratio <= WORTH_IT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_window_levels_to_the_same_values() {
        let rows = [1.0, 2.0, 3.0, 101.0, 102.0, 103.0];
        let offsets = Level::WindowMean.offsets(&rows, 3);
        assert_eq!(offsets, vec![2.0, 102.0]);
        let mut levelled = rows.to_vec();
        Level::remove(&mut levelled, 3, &offsets);
        assert_eq!(levelled[..3], levelled[3..]);
        Level::restore(&mut levelled, 3, &offsets);
        assert_eq!(levelled, rows);
    }

    #[test]
    fn a_trend_is_worth_levelling_and_a_stationary_cycle_is_not() {
        let window = 12;
        let rows_of = |series: &[f32]| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for t in window..series.len() {
                x.extend_from_slice(&series[t - window..t]);
                y.push(series[t]);
            }
            (x, y)
        };
        let trend: Vec<f32> = (0..300)
            .map(|t| t as f32 * 0.5 + (t as f32 * 0.5).sin())
            .collect();
        let (x, y) = rows_of(&trend);
        assert!(worth_it(variance_ratio(&x, window, &y)));
        let cycle: Vec<f32> = (0..300)
            .map(|t| 10.0 + (t as f32 * std::f32::consts::TAU / 12.0).sin())
            .collect();
        let (x, y) = rows_of(&cycle);
        assert!(!worth_it(variance_ratio(&x, window, &y)));
    }
}
