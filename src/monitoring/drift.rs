//! Drift: the last `monitoring.drift_window` sampled instances of the serving
//! version, binned by that version's training profile, and their PSI per feature
//! and for the predictions. The score is the largest of them. Instances of a
//! version without a profile (an import) are not counted.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use crate::model::DriftBasis;
use crate::model::profile::psi;

/// The drift of the live window against a version's training profile.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DriftReport {
    /// The version whose profile the window is compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Sampled instances in the window.
    pub window: usize,
    /// Figures are given once the window holds `monitoring.drift_min_samples`.
    pub enough: bool,
    /// The largest PSI (features and predictions).
    pub score: f64,
    /// `score` is over `monitoring.drift_threshold`.
    pub drifted: bool,
    pub threshold: f64,
    /// PSI of the predictions against the training targets.
    pub prediction_psi: f64,
    /// Every profiled feature's PSI, largest first.
    pub features: Vec<FeaturePsi>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FeaturePsi {
    pub feature: String,
    pub psi: f64,
}

/// The live window of one version.
#[derive(Debug)]
pub struct Window {
    size: usize,
    min_samples: usize,
    threshold: f64,
    tracked: Option<Tracked>,
}

#[derive(Debug)]
struct Tracked {
    version: String,
    names: Vec<String>,
    basis: Arc<DriftBasis>,
    /// Per instance: its bin per feature, then its prediction's bin.
    rows: VecDeque<Vec<u16>>,
    /// Per feature (then the prediction): instances per bin.
    counts: Vec<Vec<u32>>,
}

impl Window {
    pub fn new(size: usize, min_samples: usize, threshold: f64) -> Self {
        Self {
            size: size.max(1),
            min_samples,
            threshold,
            tracked: None,
        }
    }

    /// Adds one sampled instance answered by `version` (its raw features and its
    /// prediction: a class index or a value). Another version's instance starts
    /// the window afresh (the serving version changed); one without a profile
    /// empties it.
    pub fn push(
        &mut self,
        version: &str,
        basis: &Arc<DriftBasis>,
        features: &[f32],
        prediction: f32,
    ) {
        if self.tracked.as_ref().is_none_or(|t| t.version != version) {
            let (profile, names) = (&basis.profile, &basis.names);
            let mut counts: Vec<Vec<u32>> =
                profile.features.iter().map(|b| vec![0; b.len()]).collect();
            counts.push(vec![0; profile.target.len()]);
            self.tracked = Some(Tracked {
                version: version.to_string(),
                names: (0..profile.features.len())
                    .map(|j| names.get(j).cloned().unwrap_or_else(|| format!("x{j}")))
                    .collect(),
                basis: basis.clone(),
                rows: VecDeque::with_capacity(self.size),
                counts,
            });
        }
        let t = self.tracked.as_mut().expect("set above");
        let profile = &t.basis.profile;
        let mut bins: Vec<u16> = profile
            .features
            .iter()
            .zip(features)
            .map(|(b, v)| b.bin(*v) as u16)
            .collect();
        bins.push(profile.target.bin(prediction) as u16);
        for (counts, b) in t.counts.iter_mut().zip(&bins) {
            counts[usize::from(*b)] += 1;
        }
        t.rows.push_back(bins);
        if t.rows.len() > self.size
            && let Some(old) = t.rows.pop_front()
        {
            for (counts, b) in t.counts.iter_mut().zip(&old) {
                counts[usize::from(*b)] -= 1;
            }
        }
    }

    pub fn report(&self) -> DriftReport {
        let Some(t) = &self.tracked else {
            return DriftReport {
                version: None,
                window: 0,
                enough: false,
                score: 0.0,
                drifted: false,
                threshold: self.threshold,
                prediction_psi: 0.0,
                features: Vec::new(),
            };
        };
        let enough = t.rows.len() >= self.min_samples;
        let (features, prediction_psi) = if enough {
            let profile = &t.basis.profile;
            let mut features: Vec<FeaturePsi> = profile
                .features
                .iter()
                .zip(&t.counts)
                .zip(&t.names)
                .map(|((bins, counts), name)| FeaturePsi {
                    feature: name.clone(),
                    psi: debiased(psi(&bins.shares, counts), bins.shares.len(), t.rows.len()),
                })
                .collect();
            features.sort_by(|a, b| b.psi.total_cmp(&a.psi));
            let last = t.counts.last().expect("the prediction's counts");
            let shares = &profile.target.shares;
            let prediction = debiased(psi(shares, last), shares.len(), t.rows.len());
            (features, prediction)
        } else {
            (Vec::new(), 0.0)
        };
        let score = features.first().map_or(0.0, |f| f.psi).max(prediction_psi);
        DriftReport {
            version: Some(t.version.clone()),
            window: t.rows.len(),
            enough,
            score,
            drifted: enough && score > self.threshold,
            threshold: self.threshold,
            prediction_psi,
            features,
        }
    }
}

/// PSI less what sampling alone gives a window of `n` rows from the profile's
/// own distribution over `bins` bins (about `(bins - 1) / n`): a small window
/// of an unchanged world, or one that sees a season's phases unevenly, reads
/// high by that much.
fn debiased(psi: f64, bins: usize, n: usize) -> f64 {
    (psi - bins.saturating_sub(1) as f64 / n.max(1) as f64).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::profile::Profile;

    #[test]
    fn sampling_noise_is_taken_off() {
        // 10 bins, 200 rows: 0.045 is what chance alone reads.
        assert_eq!(debiased(0.03, 10, 200), 0.0);
        assert!((debiased(0.5, 10, 1000) - 0.491).abs() < 1e-12);
        assert_eq!(debiased(0.5, 10, 0), 0.0);
    }

    #[test]
    fn the_window_slides_and_a_shift_drifts() {
        let x: Vec<f32> = (0..1000).map(|i| (i % 100) as f32).collect();
        let y: Vec<f32> = (0..1000).map(|i| (i % 2) as f32).collect();
        let basis = Arc::new(DriftBasis {
            profile: Profile::fit(&x, 1, &y, Some(2)),
            names: vec!["a".to_string()],
        });
        let mut w = Window::new(200, 100, 0.2);
        for i in 0..300 {
            w.push("v1", &basis, &[(i % 100) as f32], (i % 2) as f32);
        }
        let r = w.report();
        assert_eq!(r.window, 200);
        assert!(r.enough && !r.drifted, "{r:?}");
        for i in 0..200 {
            w.push("v1", &basis, &[80.0 + (i % 20) as f32], 1.0);
        }
        let r = w.report();
        assert!(r.drifted, "{r:?}");
        assert_eq!(r.features[0].feature, "a");
        assert!(r.prediction_psi > 0.2);
        // A new version starts afresh.
        w.push("v2", &basis, &[1.0], 0.0);
        assert_eq!(w.report().window, 1);
        assert!(!w.report().enough);
    }
}
