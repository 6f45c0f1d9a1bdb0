//! Live quality per version: the last `monitoring.window` labelled predictions of
//! each version, scored as accuracy (classifiers) or MAE and R² (regression).

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::ids::PredictionId;

/// What one labelled prediction says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A classifier's answer: was the label right?
    Class { correct: bool },
    /// A regression answer and its target.
    Value { predicted: f64, target: f64 },
}

/// A version's window, scored.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Score {
    /// Labelled predictions in the window.
    pub labelled: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Undefined (absent) while every target in the window is the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
}

/// Most versions tracked at once; the least recently labelled one is forgotten.
const MAX_VERSIONS: usize = 16;

/// Sliding windows of labelled outcomes, per version.
#[derive(Debug)]
pub struct Windows {
    size: usize,
    versions: HashMap<String, (u64, Window)>,
    tick: u64,
}

/// One version's last labelled predictions: each once, by its latest label
/// (a map, so a label is placed in constant time whatever the window's size).
#[derive(Debug, Default)]
struct Window {
    /// Oldest first.
    order: VecDeque<PredictionId>,
    outcomes: HashMap<PredictionId, Outcome>,
}

impl Windows {
    pub fn new(size: usize) -> Self {
        Self {
            size: size.max(1),
            versions: HashMap::new(),
            tick: 0,
        }
    }

    /// Adds one labelled outcome of `version`'s prediction `id`; a prediction
    /// still in the window is scored once, by its latest label.
    pub fn push(&mut self, version: &str, id: PredictionId, outcome: Outcome) {
        self.tick += 1;
        if !self.versions.contains_key(version) && self.versions.len() >= MAX_VERSIONS {
            let oldest = self
                .versions
                .iter()
                .min_by_key(|(_, (tick, _))| *tick)
                .map(|(v, _)| v.clone());
            if let Some(v) = oldest {
                self.versions.remove(&v);
            }
        }
        let (tick, window) = self
            .versions
            .entry(version.to_string())
            .or_insert_with(|| (0, Window::default()));
        *tick = self.tick;
        if let Some(slot) = window.outcomes.get_mut(&id) {
            *slot = outcome;
            return;
        }
        if window.order.len() == self.size
            && let Some(oldest) = window.order.pop_front()
        {
            window.outcomes.remove(&oldest);
        }
        window.order.push_back(id);
        window.outcomes.insert(id, outcome);
    }

    /// Every tracked version's score.
    pub fn scores(&self) -> Vec<(String, Score)> {
        let mut out: Vec<_> = self
            .versions
            .iter()
            .map(|(v, (_, w))| (v.clone(), score(w)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// One version's score, if it has labels.
    pub fn score(&self, version: &str) -> Option<Score> {
        self.versions.get(version).map(|(_, w)| score(w))
    }

    /// How many of `version`'s newest labelled predictions came after its
    /// quality fell, if its window shows a fall (see [`change_point`]).
    pub fn fell_since(&self, version: &str) -> Option<usize> {
        let (_, w) = self.versions.get(version)?;
        let signal: Vec<f64> = w
            .order
            .iter()
            .filter_map(|id| w.outcomes.get(id))
            .map(|o| match *o {
                Outcome::Class { correct } => f64::from(u8::from(correct)),
                Outcome::Value { predicted, target } => -(predicted - target).abs(),
            })
            .collect();
        change_point(&signal)
    }
}

/// Fewest labels on either side of a change point.
const MIN_SEGMENT: usize = 20;
/// How many standard errors the two sides' means must differ by.
const CHANGE_Z: f64 = 4.0;

/// The most likely single fall in `signal` (oldest first, higher is better):
/// the split that best explains it as two means, kept only when the newer side
/// is worse by more than [`CHANGE_Z`] standard errors. Returns the length of
/// the newer side.
pub fn change_point(signal: &[f64]) -> Option<usize> {
    let n = signal.len();
    if n < 2 * MIN_SEGMENT {
        return None;
    }
    let total: f64 = signal.iter().sum();
    let mean = total / n as f64;
    let var = signal.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let mut before = 0.0;
    let mut best: Option<(f64, usize)> = None;
    for (j, v) in signal.iter().enumerate().take(n - MIN_SEGMENT) {
        before += v;
        let older = j + 1;
        if older < MIN_SEGMENT {
            continue;
        }
        let newer = n - older;
        let fall = before / older as f64 - (total - before) / newer as f64;
        // Between-segment sum of squares: what the split explains.
        let gain = fall * fall * (older * newer) as f64 / n as f64;
        if fall > 0.0 && best.is_none_or(|(g, _)| gain > g) {
            best = Some((gain, older));
        }
    }
    let (_, older) = best?;
    let newer = n - older;
    let (a, b) = signal.split_at(older);
    let mean_of = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (ma, mb) = (mean_of(a), mean_of(b));
    let pooled = (a.iter().map(|v| (v - ma).powi(2)).sum::<f64>()
        + b.iter().map(|v| (v - mb).powi(2)).sum::<f64>())
        / (n - 2) as f64;
    let se = (pooled.max(var * 1e-6) * (1.0 / older as f64 + 1.0 / newer as f64)).sqrt();
    (se > 0.0 && (ma - mb) / se > CHANGE_Z).then_some(newer)
}

fn score(window: &Window) -> Score {
    let n = window.outcomes.len();
    let mut correct = 0usize;
    let mut classes = 0usize;
    let (mut abs, mut values) = (0.0, Vec::new());
    for outcome in window.outcomes.values() {
        match *outcome {
            Outcome::Class { correct: c } => {
                classes += 1;
                correct += usize::from(c);
            }
            Outcome::Value { predicted, target } => {
                abs += (predicted - target).abs();
                values.push((predicted, target));
            }
        }
    }
    let accuracy = (classes > 0).then(|| correct as f64 / classes as f64);
    let mae = (!values.is_empty()).then(|| abs / values.len() as f64);
    let r2 = (!values.is_empty())
        .then(|| {
            let mean = values.iter().map(|(_, t)| t).sum::<f64>() / values.len() as f64;
            let total: f64 = values.iter().map(|(_, t)| (t - mean).powi(2)).sum();
            let residual: f64 = values.iter().map(|(p, t)| (t - p).powi(2)).sum();
            (total > 0.0).then(|| 1.0 - residual / total)
        })
        .flatten();
    Score {
        labelled: n,
        accuracy,
        mae,
        r2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> PredictionId {
        PredictionId::batch(1_795_000_000_000, 1)[0]
    }

    #[test]
    fn a_prediction_labelled_again_counts_once_by_its_latest_label() {
        let mut w = Windows::new(10);
        let once = id();
        for _ in 0..1_000 {
            w.push("v1", once, Outcome::Class { correct: true });
        }
        w.push("v1", once, Outcome::Class { correct: false });
        let s = w.score("v1").unwrap();
        assert_eq!((s.labelled, s.accuracy), (1, Some(0.0)));
        w.push("v1", id(), Outcome::Class { correct: true });
        assert_eq!(w.score("v1").unwrap().labelled, 2);
    }

    #[test]
    fn windows_slide_and_score() {
        let mut w = Windows::new(4);
        for correct in [false, false, true, true, true, true] {
            w.push("v1", id(), Outcome::Class { correct });
        }
        let s = w.score("v1").unwrap();
        assert_eq!(s.labelled, 4);
        assert_eq!(s.accuracy, Some(1.0));
        for (p, t) in [(1.0, 1.0), (2.0, 3.0), (3.0, 3.0)] {
            w.push(
                "v2",
                id(),
                Outcome::Value {
                    predicted: p,
                    target: t,
                },
            );
        }
        let s = w.score("v2").unwrap();
        assert!((s.mae.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // mean 7/3; total = 16/9 + 4/9 + 4/9 = 24/9; residual 1.
        assert!((s.r2.unwrap() - (1.0 - 9.0 / 24.0)).abs() < 1e-12);
        assert_eq!(w.scores().len(), 2);
    }

    #[test]
    fn a_fall_is_found_where_it_happened_and_noise_is_not_one() {
        // Deterministic noise: 90% right, then 40% right from label 600.
        let mut signal = Vec::new();
        for i in 0..1000u32 {
            let p = if i < 600 { 0.9 } else { 0.4 };
            let u = f64::from(i.wrapping_mul(2_654_435_761) % 1000) / 1000.0;
            signal.push(f64::from(u8::from(u < p)));
        }
        let newer = change_point(&signal).expect("a fall");
        assert!((370..=430).contains(&newer), "{newer}");
        // The same rate throughout: no fall.
        let flat: Vec<f64> = (0..1000u32)
            .map(|i| f64::from(u8::from(i.wrapping_mul(2_654_435_761) % 1000 < 880)))
            .collect();
        assert_eq!(change_point(&flat), None);
        // A rise is not a fall.
        let rise: Vec<f64> = signal.iter().rev().copied().collect();
        assert_eq!(change_point(&rise), None);
        assert_eq!(change_point(&[1.0; 10]), None);
    }

    #[test]
    fn versions_are_bounded() {
        let mut w = Windows::new(2);
        for i in 0..40 {
            w.push(&format!("v{i}"), id(), Outcome::Class { correct: true });
        }
        assert_eq!(w.scores().len(), MAX_VERSIONS);
        assert!(w.score("v39").is_some());
        assert!(w.score("v0").is_none());
    }
}
