//! The `sequential` architecture: a stack of layers described in the model config,
//! mirroring PyTorch (`nn.Sequential`, or a custom module's layers in order), so a
//! PyTorch definition translates line by line and its `state_dict` imports as is.
//!
//! [`SequentialConfig`] is plain data; [`SequentialConfig::plan`] checks every
//! argument and every layer's input shape before anything is built, so a bad config
//! is an error naming the layer and both shapes, never a Burn panic at the first
//! request. [`Sequential`] is the Burn module: it reshapes the flat rows it is
//! given to `[batch, ..input_shape]`, runs the layers, and flattens the result per
//! instance.
//!
//! Layers are named as PyTorch names a module's children: by position (`0`, `2`,
//! ...) unless the config gives a `name` (`conv1` -> `conv1.weight`).

macro_rules! each_rank {
    ($x:expr, $t:ident => $e:expr) => {
        match $x {
            Act::R2($t) => Act::R2($e),
            Act::R3($t) => Act::R3($e),
            Act::R4($t) => Act::R4($e),
        }
    };
}

mod args;
mod attention;
mod conv;
mod dense;
pub mod error;
mod layer;
pub mod layer_error;
pub mod mismatch;
mod norm;
mod ops;
mod pool;
mod recurrent;
mod stack;
pub mod torch;

use std::collections::{BTreeMap, HashSet};

use burn::nn::Initializer;
use burn::prelude::*;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use error::{BuildError, EntryError, LayerRef, SpecError, Unmatched};
pub use layer::{Layer, LayerKind};
pub use layer_error::LayerError;
pub use stack::{Act, Sequential};
use torch::{Expected, Source};

/// Most values a model may store (parameters and running statistics): 1 GiB of f32.
pub const MAX_PARAMETERS: u64 = 1 << 28;
/// Most values one instance may have after any layer.
pub const MAX_ACTIVATION: u64 = 1 << 24;
/// Most layers in one stack.
pub const MAX_LAYERS: usize = 256;

/// `[architecture] kind = "sequential"`: the shape of one instance and the layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialConfig {
    /// One instance's shape without the batch dimension, e.g. `[1, 28, 28]`.
    pub input_shape: Vec<usize>,
    #[serde(deserialize_with = "parse_layers")]
    pub layers: Vec<LayerEntry>,
}

/// One entry of `layers`: an optional `name` and the layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerEntry {
    pub name: Option<String>,
    pub kind: LayerKind,
}

impl Serialize for LayerEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.kind).map_err(serde::ser::Error::custom)?;
        if let (Some(name), serde_json::Value::Object(m)) = (&self.name, &mut v) {
            m.insert("name".into(), name.clone().into());
        }
        v.serialize(s)
    }
}

/// Reads `layers` entry by entry, so an error names the entry.
fn parse_layers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LayerEntry>, D::Error> {
    let raw = Vec::<serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .enumerate()
        .map(|(i, v)| parse_entry(i, v).map_err(D::Error::custom))
        .collect()
}

fn parse_entry(index: usize, v: serde_json::Value) -> Result<LayerEntry, EntryError> {
    let serde_json::Value::Object(mut m) = v else {
        return Err(EntryError::NotATable { index, value: v });
    };
    let name = match m.remove("name") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(value) => return Err(EntryError::Name { index, value }),
    };
    let type_name = m
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("?")
        .to_string();
    let kind =
        serde_json::from_value::<LayerKind>(serde_json::Value::Object(m)).map_err(|source| {
            EntryError::Layer {
                index,
                type_name,
                source,
            }
        })?;
    Ok(LayerEntry { name, kind })
}

/// The checked shapes of a stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The instance shape each layer receives.
    pub inputs: Vec<Vec<usize>>,
    /// The instance shape the stack gives.
    pub output: Vec<usize>,
    /// Values stored by all layers.
    pub parameters: u64,
    /// The most values one instance holds at once in any layer (its input, output,
    /// or inside it: attention scores, a feed-forward block).
    pub widest: u64,
}

/// How a classifier's last layer shapes its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Raw scores: kiln applies softmax (or sigmoid for one output).
    Logits,
    /// A trailing `softmax`: outputs are probabilities already.
    Softmax,
    /// A trailing `log_softmax`: outputs are log-probabilities.
    LogSoftmax,
    /// A trailing `sigmoid` on one output: the probability of the second class.
    Sigmoid,
}

impl SequentialConfig {
    /// The name of layer `i` in PyTorch's `state_dict`: its `name`, else its position.
    pub fn layer_name(&self, i: usize) -> String {
        self.layers[i].name.clone().unwrap_or_else(|| i.to_string())
    }

    /// Layer `i` for messages: `layer 2 (conv2d "conv1")`.
    pub fn layer_ref(&self, i: usize) -> LayerRef {
        let entry = &self.layers[i];
        LayerRef {
            index: i,
            kind: entry.kind.type_name(),
            name: entry.name.clone(),
        }
    }

    /// Checks the input shape, every layer's arguments and input, the names and the
    /// size limits.
    pub fn plan(&self) -> Result<Plan, SpecError> {
        let s = &self.input_shape;
        if s.is_empty() || s.len() > 3 || s.contains(&0) {
            return Err(SpecError::InputShape(s.clone()));
        }
        let volume = |shape: &[usize]| -> u64 {
            shape
                .iter()
                .fold(1u64, |acc, d| acc.saturating_mul(*d as u64))
        };
        if volume(s) > MAX_ACTIVATION {
            return Err(SpecError::InputTooLarge(s.clone()));
        }
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(SpecError::LayerCount(self.layers.len()));
        }
        self.check_names()?;
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut shape = s.clone();
        let mut parameters = 0u64;
        let mut widest = 0u64;
        for (i, entry) in self.layers.iter().enumerate() {
            let layer = || self.layer_ref(i);
            let output = entry
                .kind
                .output_shape(i, &shape)
                .map_err(|source| SpecError::Layer {
                    layer: layer(),
                    source,
                })?;
            if output.len() > 3 {
                return Err(SpecError::OutputRank {
                    layer: layer(),
                    output,
                });
            }
            if volume(&output) > MAX_ACTIVATION {
                return Err(SpecError::OutputTooLarge {
                    layer: layer(),
                    output,
                });
            }
            parameters = parameters.saturating_add(entry.kind.parameters());
            let inside = entry.kind.inner_values(&shape);
            if inside > MAX_ACTIVATION {
                return Err(SpecError::InnerTooLarge {
                    layer: layer(),
                    values: inside,
                });
            }
            widest = widest.max(volume(&shape)).max(volume(&output)).max(inside);
            if parameters > MAX_PARAMETERS {
                return Err(SpecError::TooManyParameters { layer: layer() });
            }
            inputs.push(std::mem::replace(&mut shape, output));
        }
        Ok(Plan {
            inputs,
            output: shape,
            parameters,
            widest,
        })
    }

    fn check_names(&self) -> Result<(), SpecError> {
        let mut seen = HashSet::new();
        let names: Vec<String> = (0..self.layers.len()).map(|i| self.layer_name(i)).collect();
        for (i, name) in names.iter().enumerate() {
            let ok = !name.is_empty()
                && name.len() <= 128
                && name.split('.').all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if !ok {
                return Err(SpecError::BadName {
                    layer: self.layer_ref(i),
                    name: name.clone(),
                });
            }
            if !seen.insert(name.clone()) {
                return Err(SpecError::DuplicateName {
                    layer: self.layer_ref(i),
                    name: name.clone(),
                });
            }
        }
        for a in &names {
            if let Some(b) = names.iter().find(|b| b.starts_with(&format!("{a}."))) {
                return Err(SpecError::OverlappingNames(a.clone(), b.clone()));
            }
        }
        Ok(())
    }

    /// Values per instance the network takes.
    pub fn input_width(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// How the last layer shapes a classifier's outputs.
    pub fn head(&self) -> Head {
        match self.layers.last().map(|l| &l.kind) {
            Some(LayerKind::Softmax(_)) => Head::Softmax,
            Some(LayerKind::LogSoftmax(_)) => Head::LogSoftmax,
            Some(LayerKind::Sigmoid(_)) => Head::Sigmoid,
            _ => Head::Logits,
        }
    }

    /// Whether a layer computes statistics across a batch's rows in training (batch
    /// normalisation), so that rows are not independent.
    pub fn batch_statistics(&self) -> bool {
        self.layers.iter().any(|l| {
            matches!(
                l.kind,
                LayerKind::BatchNorm1d(_) | LayerKind::BatchNorm2d(_)
            )
        })
    }

    /// Whether the stack has a recurrent layer (LSTM, GRU).
    pub fn recurrent(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l.kind, LayerKind::Lstm(_) | LayerKind::Gru(_)))
    }

    /// Whether the input is one series in time order: `[steps, 1]` into a recurrent
    /// or attention layer, or `[1, steps]` into a 1-d convolution.
    pub fn single_series(&self) -> bool {
        match (
            self.input_shape.as_slice(),
            self.layers.first().map(|l| &l.kind),
        ) {
            (
                [steps, 1],
                Some(
                    LayerKind::Lstm(_) | LayerKind::Gru(_) | LayerKind::TransformerEncoderLayer(_),
                ),
            ) => *steps > 1,
            ([1, steps], Some(LayerKind::Conv1d(_))) => *steps > 1,
            _ => false,
        }
    }

    /// `Some(num_embeddings)` when the first layer is an embedding: the inputs are
    /// integer ids in `[0, num_embeddings)`.
    pub fn ids(&self) -> Option<usize> {
        match self.layers.first().map(|l| &l.kind) {
            Some(LayerKind::Embedding(e)) => Some(e.num_embeddings),
            _ => None,
        }
    }

    /// Builds the stack with fresh weights; the config must have a [`plan`](Self::plan).
    pub fn init(&self, init: &Initializer, device: &Device) -> Result<Sequential, SpecError> {
        let plan = self.plan()?;
        let layers = self
            .layers
            .iter()
            .zip(&plan.inputs)
            .map(|(entry, input)| entry.kind.init(input, init, device))
            .collect();
        Ok(self.module(layers))
    }

    fn module(&self, layers: Vec<Layer>) -> Sequential {
        Sequential::new(
            layers,
            self.input_shape.clone(),
            self.head() != Head::Logits,
        )
    }

    /// Every tensor the stack has in a PyTorch `state_dict`, in PyTorch's names and
    /// shapes, each with the layer that wants it.
    pub fn torch_tensors(&self) -> Vec<Expected> {
        (0..self.layers.len())
            .flat_map(|i| {
                let prefix = self.layer_name(i);
                let label = self.layer_ref(i).to_string();
                self.layers[i]
                    .kind
                    .torch_tensors()
                    .into_iter()
                    .map(move |(suffix, shape)| Expected {
                        name: format!("{prefix}.{suffix}"),
                        shape,
                        layer: label.clone(),
                    })
            })
            .collect()
    }

    /// Builds the stack from PyTorch tensors already matched against
    /// [`torch_tensors`](Self::torch_tensors).
    pub fn import(
        &self,
        mut tensors: BTreeMap<String, Vec<f32>>,
        device: &Device,
    ) -> Result<Sequential, BuildError> {
        let plan = self.plan()?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, (entry, input)) in self.layers.iter().zip(&plan.inputs).enumerate() {
            let mut src = Source {
                tensors: &mut tensors,
                prefix: self.layer_name(i),
            };
            layers.push(
                entry
                    .kind
                    .import(input, &mut src, device)
                    .map_err(|source| BuildError::Layer {
                        layer: self.layer_ref(i),
                        source,
                    })?,
            );
        }
        Ok(self.module(layers))
    }
}
