//! A model version ready to serve: network on its device, preprocessing, labels and
//! version id together, so one `Arc<LoadedModel>` is all a batch needs.
//!
//! Immutable after construction; shared read-only by the executor thread(s).

use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::Serialize;

use super::manifest::Manifest;
use super::net::{Net, Task};

/// A version in memory, ready for forward passes.
#[derive(Debug)]
pub struct LoadedModel {
    version: String,
    manifest: Manifest,
    labels: Vec<String>,
    net: Net,
    device: Device,
}

/// One row's answer, shaped by the task.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
        probabilities: Probabilities,
    },
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
        Self {
            version: version.into(),
            manifest,
            labels,
            net,
            device,
        }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Features each row must have.
    pub fn input_width(&self) -> usize {
        self.manifest.net.input_width()
    }

    /// Raw values the network gives per row.
    pub fn output_width(&self) -> usize {
        self.manifest.net.output_width()
    }

    /// Preprocesses and runs `rows` (row-major, `n` x [`input_width`](Self::input_width))
    /// through the network; returns raw outputs, row-major `n` x `output_width`
    /// (probabilities for classifiers).
    pub fn forward(&self, mut rows: Vec<f32>, n: usize) -> Vec<f32> {
        debug_assert_eq!(rows.len(), n * self.input_width());
        if let Some(s) = &self.manifest.standardize {
            s.apply(&mut rows);
        }
        let x =
            Tensor::<2>::from_data(TensorData::new(rows, [n, self.input_width()]), &self.device);
        let mut y = self.net.forward(x);
        if self.manifest.net.task == Task::Classification {
            y = softmax(y, 1);
        }
        y.into_data()
            .try_into_vec::<f32>()
            .expect("the network's output is f32")
    }

    /// Turns one row of [`forward`](Self::forward)'s output into an answer.
    pub fn interpret(&self, out: &[f32]) -> Prediction {
        match self.manifest.net.task {
            Task::Regression if out.len() == 1 => Prediction::Value(out[0]),
            Task::Regression => Prediction::Values(out.to_vec()),
            Task::Classification => {
                let (best, p) =
                    out.iter()
                        .copied()
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |acc, (i, p)| if p > acc.1 { (i, p) } else { acc },
                        );
                Prediction::Class {
                    label: self.labels[best].clone(),
                    probability: p,
                    probabilities: Probabilities(
                        self.labels
                            .iter()
                            .cloned()
                            .zip(out.iter().copied())
                            .collect(),
                    ),
                }
            }
        }
    }

    /// Runs one small batch so the first real request pays no first-use costs
    /// (allocations, kernel selection, autotuning on GPU backends).
    pub fn warm_up(&self) {
        let n = 2;
        let _ = self.forward(vec![0.0; n * self.input_width()], n);
    }
}
