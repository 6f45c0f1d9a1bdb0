//! A version's training-data profile, saved in its manifest: per feature, decile
//! bin edges and the share of training rows in each bin; the same for the
//! target (class shares for classifiers). Live inputs and predictions are binned
//! the same way to measure drift (PSI).

use serde::{Deserialize, Serialize};

/// Bins per feature (deciles); fewer when values repeat.
pub const BINS: usize = 10;
/// Most features profiled (the first ones); wider inputs are profiled in part.
pub const MAX_FEATURES: usize = 1024;

/// One variable's bins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bins {
    /// Interior edges, ascending: bin `i` holds `edges[i-1] <= v < edges[i]`.
    pub edges: Vec<f32>,
    /// Share of training rows per bin (`edges.len() + 1` of them).
    pub shares: Vec<f32>,
}

impl Bins {
    /// Decile bins of `values` (finite values only).
    pub fn fit(values: &[f32]) -> Self {
        let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f32::total_cmp);
        let mut edges: Vec<f32> = Vec::new();
        if !sorted.is_empty() {
            for k in 1..BINS {
                let q = sorted[(k * sorted.len() / BINS).min(sorted.len() - 1)];
                // An edge at the minimum would leave its lower bin empty.
                if q > sorted[0] && edges.last().is_none_or(|last| q > *last) {
                    edges.push(q);
                }
            }
        }
        Self::with_edges(edges, values)
    }

    /// Categorical bins for class indices `0..classes`.
    pub fn classes(classes: usize, values: &[f32]) -> Self {
        let edges = (1..classes).map(|c| c as f32 - 0.5).collect();
        Self::with_edges(edges, values)
    }

    fn with_edges(edges: Vec<f32>, values: &[f32]) -> Self {
        let mut bins = Self {
            shares: vec![0.0; edges.len() + 1],
            edges,
        };
        for v in values {
            let b = bins.bin(*v);
            bins.shares[b] += 1.0;
        }
        let n = values.len().max(1) as f32;
        for s in &mut bins.shares {
            *s /= n;
        }
        bins
    }

    /// The bin `v` falls in.
    pub fn bin(&self, v: f32) -> usize {
        self.edges.partition_point(|e| *e <= v)
    }

    pub fn len(&self) -> usize {
        self.shares.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }
}

/// What a version's training data looked like.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    /// The first [`MAX_FEATURES`] features, in input order.
    pub features: Vec<Bins>,
    /// The target: class shares (by class index) or value bins.
    pub target: Bins,
    /// Training rows profiled.
    pub rows: usize,
}

impl Profile {
    /// Profiles `rows` rows of `width` raw features (`x`, row-major) and their
    /// targets (`y`: class indices when `classes` is given).
    pub fn fit(x: &[f32], width: usize, y: &[f32], classes: Option<usize>) -> Self {
        let rows = x.len().checked_div(width).unwrap_or(0);
        let features = (0..width.min(MAX_FEATURES))
            .map(|j| {
                let column: Vec<f32> = (0..rows).map(|r| x[r * width + j]).collect();
                Bins::fit(&column)
            })
            .collect();
        let target = match classes {
            Some(c) => Bins::classes(c, y),
            None => Bins::fit(y),
        };
        Self {
            features,
            target,
            rows,
        }
    }
}

/// Population stability index of `live` counts against `expected` shares; each
/// share is floored at 1e-4 so an empty bin counts as rare, not infinitely so.
pub fn psi(expected: &[f32], live: &[u32]) -> f64 {
    let n: u64 = live.iter().map(|c| u64::from(*c)).sum();
    if n == 0 {
        return 0.0;
    }
    expected
        .iter()
        .zip(live)
        .map(|(e, c)| {
            let e = f64::from(*e).max(1e-4);
            let a = (f64::from(*c) / n as f64).max(1e-4);
            (a - e) * (a / e).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_split_evenly_and_shifted_data_scores_high() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let bins = Bins::fit(&values);
        assert_eq!(bins.len(), BINS);
        for s in &bins.shares {
            assert!((s - 0.1).abs() < 1e-6, "{bins:?}");
        }
        let same: Vec<u32> = {
            let mut c = vec![0u32; bins.len()];
            for v in (0..500).map(|i| (i * 2) as f32) {
                c[bins.bin(v)] += 1;
            }
            c
        };
        assert!(psi(&bins.shares, &same) < 0.01);
        let mut shifted = vec![0u32; bins.len()];
        for v in (0..500).map(|i| 600.0 + i as f32) {
            shifted[bins.bin(v)] += 1;
        }
        assert!(psi(&bins.shares, &shifted) > 1.0);
    }

    #[test]
    fn repeated_values_and_classes_bin_sensibly() {
        let bins = Bins::fit(&[1.0; 50]);
        assert_eq!(bins.len(), 1);
        assert_eq!(bins.bin(-5.0), 0);
        let classes = Bins::classes(3, &[0.0, 1.0, 1.0, 2.0]);
        assert_eq!(classes.shares, vec![0.25, 0.5, 0.25]);
        assert_eq!(classes.bin(2.0), 2);
        let p = Profile::fit(
            &[1.0, 10.0, 2.0, 20.0, 3.0, 30.0],
            2,
            &[0.0, 1.0, 0.0],
            Some(2),
        );
        assert_eq!(p.features.len(), 2);
        assert_eq!(p.rows, 3);
    }
}
