//! Clean, encoded data: cleaning, task inference and target encoding, the seeded
//! (stratified) split, standardisation statistics.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{DataError, RawTable, Target};
use crate::model::{Standardize, Task};

/// Row counts of a training run's data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RowCounts {
    /// Rows received.
    pub input: usize,
    /// Rows dropped for a missing or non-finite value.
    pub dropped: usize,
    pub train: usize,
    pub validation: usize,
}

/// Clean, encoded data ready for fitting.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub features: Vec<String>,
    /// Row-major features, all finite.
    pub x: Vec<f32>,
    /// Regression: the target; classification: the class index.
    pub y: Vec<f32>,
    pub task: Task,
    /// Class names (classification only), index-aligned with `y`'s values.
    pub labels: Vec<String>,
    /// Why the task is what it is (given, or how it was inferred).
    pub task_reason: String,
    /// Rows in the input, and rows dropped for missing or non-finite values.
    pub rows_in: usize,
    pub rows_dropped: usize,
}

/// Most distinct integer targets still read as classes when the task is inferred.
const MAX_INFERRED_CLASSES: usize = 20;

impl Dataset {
    /// Drops unusable rows, then settles the task (given or inferred) and encodes
    /// the targets.
    pub fn prepare(raw: RawTable, task: Option<Task>) -> Result<Self, DataError> {
        let width = raw.width();
        let rows_in = raw.targets.len();
        let mut x = Vec::with_capacity(raw.x.len());
        let mut targets = Vec::with_capacity(rows_in);
        for (row, target) in raw.x.chunks_exact(width).zip(raw.targets) {
            let finite_target = match &target {
                Some(Target::Number(v)) => v.is_finite(),
                Some(Target::Text(_)) => true,
                None => false,
            };
            if finite_target && row.iter().all(|v| v.is_finite()) {
                x.extend_from_slice(row);
                targets.push(target.expect("checked above"));
            }
        }
        let rows_dropped = rows_in - targets.len();
        if targets.is_empty() {
            return Err(DataError::NothingLeft(rows_in));
        }

        let any_text = targets.iter().any(|t| matches!(t, Target::Text(_)));
        let numbers: Vec<f64> = targets
            .iter()
            .filter_map(|t| match t {
                Target::Number(v) => Some(*v),
                Target::Text(_) => None,
            })
            .collect();
        let integral = numbers.iter().all(|v| v.fract() == 0.0);
        let distinct = numbers
            .iter()
            .map(|v| v.to_bits())
            .collect::<BTreeSet<_>>()
            .len();
        let (task, task_reason) = match task {
            Some(Task::Regression) if any_text => {
                return Err(DataError::Task(
                    "regression needs numeric targets, found text".into(),
                ));
            }
            Some(t) => (t, "given".to_string()),
            None if any_text => (
                Task::Classification,
                "inferred: the target column holds text".into(),
            ),
            None if integral && distinct <= MAX_INFERRED_CLASSES => (
                Task::Classification,
                format!("inferred: {distinct} distinct integer targets"),
            ),
            None => (
                Task::Regression,
                format!("inferred: {distinct} distinct numeric targets"),
            ),
        };

        let (y, labels) = match task {
            Task::Regression => (numbers.iter().map(|v| *v as f32).collect(), Vec::new()),
            Task::Classification => encode_classes(&targets),
        };
        if task == Task::Classification && labels.len() < 2 {
            return Err(DataError::Task(format!(
                "classification needs at least 2 classes; the target has only {:?}",
                labels
            )));
        }
        Ok(Self {
            features: raw.features,
            x,
            y,
            task,
            labels,
            task_reason,
            rows_in,
            rows_dropped,
        })
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// The rows at `idx`, as a new dataset (same task and labels).
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let w = self.width();
        let mut x = Vec::with_capacity(idx.len() * w);
        for &i in idx {
            x.extend_from_slice(&self.x[i * w..(i + 1) * w]);
        }
        Dataset {
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            rows_in: idx.len(),
            rows_dropped: 0,
            ..self.clone_meta()
        }
    }

    fn clone_meta(&self) -> Dataset {
        Dataset {
            features: self.features.clone(),
            x: Vec::new(),
            y: Vec::new(),
            task: self.task,
            labels: self.labels.clone(),
            task_reason: self.task_reason.clone(),
            rows_in: 0,
            rows_dropped: 0,
        }
    }

    /// Seeded split into (train, validation) index sets; classification splits
    /// each class separately (stratified) so both sides see every class.
    pub fn split(&self, validation: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>), DataError> {
        let mut rng = SplitMix64(seed);
        let groups: Vec<Vec<usize>> = match self.task {
            Task::Classification => {
                let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
                for (i, y) in self.y.iter().enumerate() {
                    by_class.entry(*y as u32).or_default().push(i);
                }
                by_class.into_values().collect()
            }
            Task::Regression => vec![(0..self.len()).collect()],
        };
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for mut group in groups {
            rng.shuffle(&mut group);
            let n_val = ((group.len() as f64) * validation).round() as usize;
            let n_val = n_val.min(group.len().saturating_sub(1));
            val.extend_from_slice(&group[..n_val]);
            train.extend_from_slice(&group[n_val..]);
        }
        if train.is_empty() || val.is_empty() {
            return Err(DataError::Shape(format!(
                "{} usable rows cannot be split into training and validation rows (validation_split = {validation})",
                self.len()
            )));
        }
        rng.shuffle(&mut train);
        val.sort_unstable();
        Ok((train, val))
    }

    /// The last `n` rows for validation, the rest (shuffled by `seed`) for
    /// training.
    pub fn split_last(&self, n: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>), DataError> {
        if n == 0 || n >= self.len() {
            return Err(DataError::Shape(format!(
                "validation_last = {n} must leave rows to train on: the data has {} usable rows",
                self.len()
            )));
        }
        let cut = self.len() - n;
        let mut train: Vec<usize> = (0..cut).collect();
        SplitMix64(seed).shuffle(&mut train);
        Ok((train, (cut..self.len()).collect()))
    }

    /// Per-column mean and standard deviation (a constant column gets deviation 1).
    pub fn fit_standardize(&self) -> Standardize {
        Standardize::fit(&self.x, self.width())
    }
}

/// Class names sorted (numerically when all numbers, else as text), and each
/// row's class index.
fn encode_classes(targets: &[Target]) -> (Vec<f32>, Vec<String>) {
    let name = |t: &Target| match t {
        Target::Number(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", *v as i64),
        Target::Number(v) => v.to_string(),
        Target::Text(s) => s.clone(),
    };
    let all_numbers = targets.iter().all(|t| matches!(t, Target::Number(_)));
    let mut names: Vec<(Option<f64>, String)> = targets
        .iter()
        .map(|t| {
            let key = match t {
                Target::Number(v) if all_numbers => Some(*v),
                _ => None,
            };
            (key, name(t))
        })
        .collect();
    names.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.1.cmp(&b.1),
    });
    names.dedup_by(|a, b| a.1 == b.1);
    let labels: Vec<String> = names.into_iter().map(|(_, n)| n).collect();
    let index: BTreeMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let y = targets
        .iter()
        .map(|t| index[name(t).as_str()] as f32)
        .collect();
    (y, labels)
}

/// A small seeded generator (SplitMix64): reproducible splits and shuffles on every
/// platform and across dependency upgrades.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::data::RawTable;

    #[test]
    fn cleaning_drops_and_counts_unusable_rows() {
        let raw =
            RawTable::from_csv("a,target\n1,0\nnan,1\ninf,0\n2,\n3,1\n4,0\n", "target").unwrap();
        let d = Dataset::prepare(raw, None).unwrap();
        assert_eq!((d.rows_in, d.rows_dropped, d.len()), (6, 3, 3));
        assert_eq!(d.task, Task::Classification);
        let raw = RawTable::from_csv("a,target\nnan,1\n,0\n", "target").unwrap();
        assert!(matches!(
            Dataset::prepare(raw, None),
            Err(DataError::NothingLeft(2))
        ));
    }

    #[test]
    fn task_inference_and_label_order() {
        let raw = RawTable::from_csv("a,target\n1,10\n2,2\n3,10\n", "target").unwrap();
        let d = Dataset::prepare(raw, None).unwrap();
        assert_eq!(d.labels, ["2", "10"]); // numeric order, not text order
        assert_eq!(d.y, [1.0, 0.0, 1.0]);
        let raw = RawTable::from_csv("a,target\n1,cat\n2,dog\n", "target").unwrap();
        assert_eq!(Dataset::prepare(raw, None).unwrap().labels, ["cat", "dog"]);
        let many: String = (0..50).map(|i| format!("{i},{}.5\n", i)).collect();
        let raw = RawTable::from_csv(&format!("a,target\n{many}"), "target").unwrap();
        assert_eq!(Dataset::prepare(raw, None).unwrap().task, Task::Regression);
        let raw = RawTable::from_csv("a,target\n1,3\n2,3\n", "target").unwrap();
        assert!(matches!(
            Dataset::prepare(raw, Some(Task::Classification)),
            Err(DataError::Task(_))
        ));
    }

    #[test]
    fn split_is_seeded_stratified_and_disjoint() {
        let csv: String = (0..100).map(|i| format!("{i},{}\n", i % 4)).collect();
        let d = Dataset::prepare(
            RawTable::from_csv(&format!("a,target\n{csv}"), "target").unwrap(),
            None,
        )
        .unwrap();
        let (t1, v1) = d.split(0.2, 7).unwrap();
        let (t2, v2) = d.split(0.2, 7).unwrap();
        assert_eq!((&t1, &v1), (&t2, &v2));
        assert_eq!(v1.len(), 20);
        for class in 0..4 {
            assert_eq!(v1.iter().filter(|&&i| d.y[i] == class as f32).count(), 5);
        }
        let mut all: Vec<usize> = t1.iter().chain(&v1).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_ne!(d.split(0.2, 8).unwrap().1, v1);
    }

    #[test]
    fn standardize_statistics() {
        let raw = RawTable::from_csv("a,c,target\n1,5,0.5\n3,5,1.5\n", "target").unwrap();
        let s = Dataset::prepare(raw, None).unwrap().fit_standardize();
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.std, [1.0, 1.0]);
    }
}
