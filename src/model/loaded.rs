//! A model version ready to serve: network on its device, preprocessing, labels and
//! version id together, so one `Arc<LoadedModel>` is all a batch needs.
//!
//! Immutable after construction; shared read-only by the executor thread(s).

use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};
use serde::Serialize;

use std::sync::Arc;

use super::columns::Team;
use super::level::Level;
use super::manifest::Manifest;
use super::net::{BadInstance, Head, Net, Task};
use super::profile::Profile;

/// A version in memory, ready for forward passes.
#[derive(Debug)]
pub struct LoadedModel {
    version: String,
    manifest: Manifest,
    labels: Vec<String>,
    net: Net,
    device: Device,
    input_width: usize,
    net_outputs: usize,
    head: Head,
    max_pass_rows: usize,
    /// GPU backends: passes are padded to a power-of-two row count, so kernels are
    /// tuned for a few shapes only, all at warm-up.
    buckets: bool,
    drift: Option<Arc<DriftBasis>>,
    /// Whether a team would split any of the pass's dense layers (probed once).
    splits: std::sync::OnceLock<bool>,
}

/// What live inputs are compared with for drift: the version's training profile
/// and its feature names.
#[derive(Debug)]
pub struct DriftBasis {
    pub profile: Profile,
    pub names: Vec<String>,
}

/// One row's answer, shaped by the task.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Prediction {
    /// Single-output regression.
    Value(f32),
    /// Multi-output regression.
    Values(Vec<f32>),
    /// Classification: the most likely label and every class's probability.
    Class {
        label: String,
        probability: f32,
        #[schema(value_type = std::collections::HashMap<String, f32>)]
        probabilities: Probabilities,
        /// The most likely labels, best first (when asked for with `top_k`).
        #[serde(skip_serializing_if = "Option::is_none")]
        top_k: Option<Vec<Ranked>>,
    },
}

/// A probability as answered: 6 significant digits (more is noise from f32
/// arithmetic), and never 0 (a softmax or sigmoid output is positive; one that
/// underflowed f32 is answered as the smallest normal f32).
pub fn shown(p: f32) -> f32 {
    if p.is_nan() {
        return p;
    }
    if p <= 0.0 {
        return f32::MIN_POSITIVE;
    }
    // Arithmetic, not a format and parse: a 20,000-class answer rounds 20,000
    // of these per instance.
    let p = f64::from(p);
    let scale = 10f64.powi(5 - p.log10().floor() as i32);
    ((p * scale).round() / scale) as f32
}

#[cfg(test)]
mod shown_tests {
    use super::shown;

    #[test]
    fn six_significant_digits_and_never_zero() {
        for p in [
            0.999_587_1_f32,
            0.000_413_046_2,
            2.142_614e-9,
            1.0,
            0.5,
            1e-38,
            1e-44,
            0.123_456_79,
        ] {
            let want: f32 = format!("{p:.5e}").parse().unwrap();
            assert_eq!(shown(p), want, "{p}");
            let digits = format!("{:e}", shown(p))
                .split('e')
                .next()
                .unwrap()
                .replace('.', "");
            assert!(digits.len() <= 6, "{p}: {digits}");
        }
        assert_eq!(shown(0.0), f32::MIN_POSITIVE);
        assert!(shown(f32::NAN).is_nan());
    }
}

/// A label and its probability.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Ranked {
    pub label: String,
    pub probability: f32,
}

/// Class probabilities in label order, serialised as a JSON object
/// `{"label": probability, ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probabilities(pub Vec<(String, f32)>);

impl Serialize for Probabilities {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (label, p) in &self.0 {
            map.serialize_entry(label, p)?;
        }
        map.end()
    }
}

impl LoadedModel {
    /// Wraps a network whose weights are already in place.
    pub fn new(version: impl Into<String>, manifest: Manifest, net: Net, device: Device) -> Self {
        let labels = manifest.label_names();
        let drift = manifest.profile.clone().map(|profile| {
            Arc::new(DriftBasis {
                profile,
                names: manifest.feature_names.clone().unwrap_or_default(),
            })
        });
        Self {
            drift,
            version: version.into(),
            input_width: manifest.net.input_width(),
            net_outputs: manifest.net.output_width(),
            head: manifest.net.head(),
            max_pass_rows: manifest.net.max_pass_rows(),
            buckets: !crate::device::is_flex(&device),
            manifest,
            labels,
            net: if crate::device::is_flex(&device) {
                net.for_cpu_serving()
            } else {
                net
            },
            device,
            splits: std::sync::OnceLock::new(),
        }
    }

    /// Runs passes at their exact row count, even on a GPU (no shape buckets).
    pub fn without_buckets(mut self) -> Self {
        self.buckets = false;
        self
    }

    /// The network (inference mode, on [`device`](Self::device)).
    pub fn net(&self) -> &Net {
        &self.net
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether passes run on a GPU (the compute pool never cuts those into
    /// parts).
    pub fn is_gpu(&self) -> bool {
        !crate::device::is_flex(&self.device)
    }

    /// Most rows one forward pass of this model may take (its widest activation
    /// bounded; see [`NetConfig::max_pass_rows`](super::NetConfig::max_pass_rows)).
    pub fn max_pass_rows(&self) -> usize {
        self.max_pass_rows
    }

    /// Checks a request's row-major values against the model's input domain
    /// (finite; integer ids in range for an embedding); the error names the
    /// instance and value.
    pub fn check_instances(&self, values: &[f32]) -> Result<(), BadInstance> {
        self.manifest
            .net
            .check_values(values)
            .map_err(|bad| bad.in_instances(self.input_width))
    }

    /// Bytes its weights take in memory (4 per parameter).
    pub fn weight_bytes(&self) -> u64 {
        self.manifest().net.parameters().saturating_mul(4)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Features each row must have.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Values [`forward`](Self::forward) gives per row: one probability per class
    /// for classifiers, the network's outputs for regression.
    /// The training profile live inputs are compared with (versions made by
    /// training).
    pub fn drift_basis(&self) -> Option<&Arc<DriftBasis>> {
        self.drift.as_ref()
    }

    /// The class index of `label` (classifiers).
    pub fn class_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    pub fn output_width(&self) -> usize {
        match self.manifest.net.task {
            // One label per class (cached: this runs for every batch).
            Task::Classification => self.labels.len(),
            Task::Regression => self.net_outputs,
        }
    }

    /// Preprocesses and runs `rows` (row-major, `n` x [`input_width`](Self::input_width))
    /// through the network; returns row-major `n` x [`output_width`](Self::output_width):
    /// class probabilities for classifiers, target-unit values for regression.
    pub fn forward(&self, rows: Vec<f32>, n: usize) -> Vec<f32> {
        self.forward_with(rows, n, None)
    }

    /// Whether a CPU pass would share any dense layer with a [`Team`]: found by
    /// one pass of a row of zeros, the first time it is asked.
    pub fn splits_columns(&self) -> bool {
        *self.splits.get_or_init(|| {
            struct Probe(std::sync::atomic::AtomicBool);
            impl Team for Probe {
                fn size(&self) -> usize {
                    2
                }
                fn each(&self, job: &(dyn Fn(usize) -> Tensor<2> + Sync)) -> Vec<Tensor<2>> {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                    (0..2).map(job).collect()
                }
            }
            if self.is_gpu() {
                return false;
            }
            let probe = Probe(false.into());
            let zeros = vec![0.0; self.input_width()];
            self.forward_with(zeros, 1, Some(&probe));
            probe.0.into_inner()
        })
    }

    /// [`forward`](Self::forward), its large dense layers split among `team`.
    pub fn forward_with(&self, mut rows: Vec<f32>, n: usize, team: Option<&dyn Team>) -> Vec<f32> {
        debug_assert_eq!(rows.len(), n * self.input_width());
        let levels = self.manifest.level.map(|l| {
            let offsets = l.offsets(&rows, self.input_width());
            Level::remove(&mut rows, self.input_width(), &offsets);
            offsets
        });
        if let Some(s) = &self.manifest.standardize {
            s.apply(&mut rows);
        }
        let padded = self.bucket(n);
        rows.resize(padded * self.input_width(), 0.0);
        let x = Tensor::<2>::from_data(
            TensorData::new(rows, [padded, self.input_width()]),
            &self.device,
        );
        let y = self.net.forward_with(x, team);
        let y = match (self.manifest.net.task, self.head) {
            (Task::Regression, _) => y,
            // One output is P(second class): answer both classes.
            (Task::Classification, Head::Logits) if self.net_outputs == 1 => {
                two_classes(sigmoid(y))
            }
            (Task::Classification, Head::Sigmoid) => two_classes(y),
            (Task::Classification, Head::Logits) => softmax(y, 1),
            (Task::Classification, Head::Softmax) => y,
            (Task::Classification, Head::LogSoftmax) => y.exp(),
        };
        let mut out = y
            .into_data()
            .try_into_vec::<f32>()
            .expect("the network's output is f32");
        out.truncate(n * self.output_width());
        if let Some(t) = &self.manifest.target_standardize {
            t.invert(&mut out);
        }
        if let Some(offsets) = levels {
            Level::restore(&mut out, self.output_width(), &offsets);
        }
        out
    }

    /// Turns one row of [`forward`](Self::forward)'s output into an answer; with
    /// `top_k`, classifiers also list their `k` most likely labels.
    pub fn interpret(&self, out: &[f32], top_k: Option<usize>) -> Prediction {
        match self.manifest.net.task {
            Task::Regression if out.len() == 1 => Prediction::Value(out[0]),
            Task::Regression => Prediction::Values(out.to_vec()),
            Task::Classification => {
                let mut ranked: Vec<(usize, f32)> =
                    out.iter().map(|&p| shown(p)).enumerate().collect();
                // Stable: ties keep label order.
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let (best, probability) = ranked[0];
                Prediction::Class {
                    label: self.labels[best].clone(),
                    probability,
                    probabilities: Probabilities(
                        self.labels
                            .iter()
                            .cloned()
                            .zip(out.iter().map(|&p| shown(p)))
                            .collect(),
                    ),
                    top_k: top_k.map(|k| {
                        ranked
                            .iter()
                            .take(k)
                            .map(|&(i, probability)| Ranked {
                                label: self.labels[i].clone(),
                                probability,
                            })
                            .collect()
                    }),
                }
            }
        }
    }

    /// The rows a pass of `n` rows computes: `n` on the CPU; on a GPU the next
    /// power of two (a shape bucket), unless that is over the pass limit.
    pub fn bucket(&self, n: usize) -> usize {
        match n.checked_next_power_of_two() {
            Some(b) if self.buckets && b <= self.max_pass_rows => b,
            _ => n,
        }
    }

    /// Runs warm-up passes so no request pays first-use costs (allocations, kernel
    /// selection): on the CPU one small batch; on a GPU every shape bucket a pass of
    /// up to `max_rows` rows can use, so kernel autotuning happens here, before the
    /// version serves. Returns the row counts warmed.
    pub fn warm_up(&self, max_rows: usize) -> Vec<usize> {
        let sizes: Vec<usize> = if self.buckets {
            let top = self.bucket(max_rows.clamp(1, self.max_pass_rows.max(1)));
            let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |b| Some(b * 2))
                .take_while(|&b| b <= top)
                .collect();
            if !top.is_power_of_two() {
                sizes.push(top); // the pass limit itself, unpadded
            }
            sizes
        } else {
            vec![2]
        };
        for &n in &sizes {
            let _ = self.forward(vec![0.0; n * self.input_width()], n);
        }
        sizes
    }
}

/// `[n, 1]` probabilities of the second class -> `[n, 2]`.
fn two_classes(p: Tensor<2>) -> Tensor<2> {
    Tensor::cat(vec![p.clone().neg().add_scalar(1.0), p], 1)
}
