//! The network: its configuration (what a model-config file holds) and the Burn
//! module built from it.
//!
//! A [`NetConfig`] is plain data, saved next to every version's weights, so a saved
//! model rebuilds itself with [`NetConfig::init`]. [`Net`] is an enum of
//! architectures: `mlp` (the shorthand) and `sequential` (a PyTorch-shaped layer
//! stack: CNNs, recurrent nets, Transformer encoders).

use std::collections::{BTreeMap, BTreeSet};

use burn::nn::{Initializer, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::columns::Team;
pub use super::mlp::{ActivationKind, Mlp, MlpConfig};
use super::sequential::BuildError;
pub use super::sequential::{Head, Sequential, SequentialConfig};
use super::weights::{WeightFile, WeightsError};

/// What the network's outputs mean.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One real value per output.
    Regression,
    /// One score per class (softmax), or one for two classes (sigmoid); answered
    /// as label + probabilities.
    Classification,
}

impl std::fmt::Display for Task {
    /// As written in configs and recipes: `regression`, `classification`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Regression => "regression",
            Self::Classification => "classification",
        })
    }
}

impl Task {
    /// As configs and responses spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Regression => "regression",
            Self::Classification => "classification",
        }
    }
}

/// A network description: the contents of a model-config file such as
/// `config/models/seed-mlp.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// `regression` (the default) or `classification`.
    #[serde(default = "regression")]
    pub task: Task,
    pub architecture: Architecture,
    /// Preprocessing and labels of an imported model (`[preprocess]`). A version
    /// keeps them in its manifest instead; trained versions fit their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<Preprocess>,
}

/// The supported architectures, tagged by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Architecture {
    /// Fully connected layers with one activation between them.
    Mlp(MlpConfig),
    /// A PyTorch-shaped layer stack.
    Sequential(SequentialConfig),
}

/// `[preprocess]`: applied to every instance before the first layer, and class
/// names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Subtracted first: one number, or one per input value.
    #[serde(default)]
    pub mean: Option<PerFeature>,
    /// Then divided by: one number, or one per input value.
    #[serde(default)]
    pub std: Option<PerFeature>,
    /// Class names, index-aligned with the outputs; else `"0"`, `"1"`, ...
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

/// One number for every feature, or one number each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PerFeature {
    All(f32),
    Each(Vec<f32>),
}

impl PerFeature {
    fn expand(&self, width: usize, what: &str) -> Result<Vec<f32>, NetConfigError> {
        match self {
            PerFeature::All(v) => Ok(vec![*v; width]),
            PerFeature::Each(v) if v.len() == width => Ok(v.clone()),
            PerFeature::Each(v) => Err(NetConfigError(format!(
                "preprocess.{what} has {} values; the model takes {width} inputs (give one number, or one per input)",
                v.len()
            ))),
        }
    }
}

/// Most values one activation tensor of a forward pass may hold (256 MiB of f32).
pub const MAX_PASS_VALUES: u64 = 1 << 26;

fn regression() -> Task {
    Task::Regression
}

/// A network description that cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid model config: {0}")]
pub struct NetConfigError(pub String);

impl NetConfig {
    /// Checks the description: every layer's arguments and shapes, the head, the
    /// preprocessing.
    pub fn validate(&self) -> Result<(), NetConfigError> {
        let err = NetConfigError;
        match &self.architecture {
            Architecture::Mlp(mlp) => mlp.validate().map_err(|e| err(e.to_string()))?,
            Architecture::Sequential(seq) => {
                let plan = seq.plan().map_err(|e| err(e.to_string()))?;
                let head = seq.head();
                if self.task == Task::Classification {
                    if plan.output.len() != 1 {
                        return Err(err(format!(
                            "a classifier's output must be one vector of class scores per instance; this stack gives {:?} (add a flatten)",
                            plan.output
                        )));
                    }
                    if head == Head::Sigmoid && plan.output[0] != 1 {
                        return Err(err(format!(
                            "a trailing sigmoid makes a two-class classifier with 1 output, this one has {}",
                            plan.output[0]
                        )));
                    }
                    if matches!(head, Head::Softmax | Head::LogSoftmax) && plan.output[0] < 2 {
                        return Err(err("a softmax head needs at least 2 classes".into()));
                    }
                }
            }
        }
        if let Some(p) = &self.preprocess {
            self.preprocess_stats(p)?;
            if let Some(label) = p
                .labels
                .as_deref()
                .and_then(super::manifest::duplicate_label)
            {
                return Err(err(format!(
                    "preprocess.labels gives {} twice; class labels must be distinct",
                    crate::quote::quoted(label)
                )));
            }
            match (&p.labels, self.task) {
                (Some(_), Task::Regression) => {
                    return Err(err(
                        "preprocess.labels: a regression model has no labels".into()
                    ));
                }
                (Some(labels), Task::Classification) if labels.len() != self.class_count() => {
                    return Err(err(format!(
                        "preprocess.labels has {} names for {} classes",
                        labels.len(),
                        self.class_count()
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `[preprocess]` as per-feature statistics (`None` when it sets neither).
    pub fn preprocess_stats(
        &self,
        p: &Preprocess,
    ) -> Result<Option<super::Standardize>, NetConfigError> {
        if p.mean.is_none() && p.std.is_none() {
            return Ok(None);
        }
        let width = self.input_width();
        let mean = match &p.mean {
            Some(m) => m.expand(width, "mean")?,
            None => vec![0.0; width],
        };
        let std = match &p.std {
            Some(s) => s.expand(width, "std")?,
            None => vec![1.0; width],
        };
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(NetConfigError(
                "preprocess: mean must be finite and std finite and > 0".into(),
            ));
        }
        if self.ids().is_some() {
            return Err(NetConfigError(
                "preprocess: the inputs of an embedding are ids and are never standardised".into(),
            ));
        }
        Ok(Some(super::Standardize { mean, std }))
    }

    /// Number of classes: one per output, or two for a single output.
    pub fn class_count(&self) -> usize {
        self.output_width().max(2)
    }

    /// Number of input values per instance (`prod(input_shape)`).
    pub fn input_width(&self) -> usize {
        match &self.architecture {
            Architecture::Mlp(m) => m.input,
            Architecture::Sequential(s) => s.input_width(),
        }
    }

    /// One instance's shape (`[input]` for an MLP).
    pub fn input_shape(&self) -> Vec<usize> {
        match &self.architecture {
            Architecture::Mlp(m) => vec![m.input],
            Architecture::Sequential(s) => s.input_shape.clone(),
        }
    }

    /// Number of values the network produces per instance (its output, flattened).
    pub fn output_width(&self) -> usize {
        match &self.architecture {
            Architecture::Mlp(m) => m.output,
            Architecture::Sequential(s) => s.plan().map(|p| p.output.iter().product()).unwrap_or(0),
        }
    }

    /// Number of values the network stores (weights, biases, running statistics).
    pub fn parameters(&self) -> u64 {
        match &self.architecture {
            Architecture::Mlp(m) => std::iter::once(m.input)
                .chain(m.hidden.iter().copied())
                .chain(std::iter::once(m.output))
                .collect::<Vec<_>>()
                .windows(2)
                .map(|w| (w[0] as u64 + 1).saturating_mul(w[1] as u64))
                .fold(0u64, u64::saturating_add),
            Architecture::Sequential(s) => s.plan().map(|p| p.parameters).unwrap_or(u64::MAX),
        }
    }

    /// The most values one instance holds at once in any layer.
    pub fn widest(&self) -> u64 {
        match &self.architecture {
            Architecture::Mlp(m) => std::iter::once(m.input)
                .chain(m.hidden.iter().copied())
                .chain(std::iter::once(m.output))
                .max()
                .unwrap_or(1) as u64,
            Architecture::Sequential(s) => s.plan().map(|p| p.widest).unwrap_or(u64::MAX),
        }
    }

    /// Most rows one forward pass may take so that no activation tensor holds more
    /// than [`MAX_PASS_VALUES`] values (at least 1): serving, evaluation and
    /// explanations split larger batches into passes of this many rows.
    pub fn max_pass_rows(&self) -> usize {
        (MAX_PASS_VALUES / self.widest().max(1)).clamp(1, usize::MAX as u64) as usize
    }

    /// How a classifier's outputs are turned into probabilities.
    pub fn head(&self) -> Head {
        match &self.architecture {
            Architecture::Mlp(_) => Head::Logits,
            Architecture::Sequential(s) => s.head(),
        }
    }

    /// Whether a layer computes statistics across a batch's rows in training (batch
    /// normalisation): such a batch cannot be cut into parts.
    pub fn batch_statistics(&self) -> bool {
        match &self.architecture {
            Architecture::Mlp(_) => false,
            Architecture::Sequential(s) => s.batch_statistics(),
        }
    }

    /// Whether the network has a recurrent layer.
    pub fn recurrent(&self) -> bool {
        matches!(&self.architecture, Architecture::Sequential(s) if s.recurrent())
    }

    /// Whether the input is one series in time order (see
    /// [`SequentialConfig::single_series`]).
    pub fn single_series(&self) -> bool {
        matches!(&self.architecture, Architecture::Sequential(s) if s.single_series())
    }

    /// `Some(n)` when the inputs are embedding ids in `[0, n)`.
    pub fn ids(&self) -> Option<usize> {
        match &self.architecture {
            Architecture::Mlp(_) => None,
            Architecture::Sequential(s) => s.ids(),
        }
    }

    /// Builds the network with fresh weights from `init` on `device`. The config
    /// must be valid ([`validate`](Self::validate)).
    pub fn init(&self, init: &Initializer, device: &Device) -> Net {
        match &self.architecture {
            Architecture::Mlp(cfg) => Net::Mlp(Mlp::new(cfg, init, device)),
            Architecture::Sequential(cfg) => Net::Sequential(
                cfg.init(init, device)
                    .expect("configs are validated before they are built"),
            ),
        }
    }

    /// Builds the network with Burn's default initialisation (weights to be loaded).
    pub fn init_default(&self, device: &Device) -> Net {
        let init = LinearConfig::new(1, 1).initializer;
        self.init(&init, device)
    }

    /// Builds the network from a PyTorch `state_dict` (or safetensors in the same
    /// naming): every tensor must be present with PyTorch's shape and the file must
    /// hold nothing else, which is checked before any tensor is read; errors name
    /// tensors as PyTorch does.
    pub fn import(&self, file: WeightFile, device: &Device) -> Result<Net, WeightsError> {
        match &self.architecture {
            Architecture::Mlp(cfg) => {
                let keys: BTreeSet<String> = file.names();
                let tensors: BTreeMap<String, Vec<f32>> = file.take(&cfg.torch_tensors(&keys))?;
                let mlp = cfg
                    .import(tensors, &keys, device)
                    .map_err(BuildError::from)?;
                Ok(Net::Mlp(mlp))
            }
            Architecture::Sequential(cfg) => {
                let tensors = file.take(&cfg.torch_tensors())?;
                Ok(Net::Sequential(cfg.import(tensors, device)?))
            }
        }
    }
}

/// The network: one variant per architecture.
#[derive(Module, Debug)]
pub enum Net {
    Mlp(Mlp),
    Sequential(Sequential),
}

impl Net {
    /// Raw outputs: `[batch, input] -> [batch, output]`, after the whole network
    /// (a trailing softmax included).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Net::Mlp(m) => m.forward(x),
            Net::Sequential(s) => s.forward(x),
        }
    }

    /// [`forward`](Self::forward), its large 2-D dense layers split among `team`
    /// (inference only: the split is not differentiated).
    pub fn forward_with(&self, x: Tensor<2>, team: Option<&dyn Team>) -> Tensor<2> {
        match self {
            Net::Mlp(m) => m.forward_with(x, team),
            Net::Sequential(s) => s.forward_with(x, team),
        }
    }

    /// The scores before a classifier's softmax / log_softmax / sigmoid head (the
    /// same as [`forward`](Self::forward) without one).
    pub fn forward_logits(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Net::Mlp(m) => m.forward(x),
            Net::Sequential(s) => s.forward_logits(x),
        }
    }
}

mod file;
mod values;

pub use values::{BadInstance, BadValue, ValueFault};

#[cfg(test)]
mod tests;
