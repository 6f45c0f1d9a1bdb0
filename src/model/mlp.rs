//! The `mlp` architecture: fully connected layers with one activation between them,
//! the shorthand for the most common `nn.Sequential(Linear, ReLU, ..., Linear)`.

use std::collections::{BTreeMap, BTreeSet};

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

mod error;
mod padded;

pub use error::{MAX_HIDDEN, MlpError};

use super::columns::{self, Team};
use super::sequential::Unmatched;
use super::sequential::torch::{Expected, transpose};

/// A multi-layer perceptron: `input -> hidden[0] -> ... -> output`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Number of input features.
    pub input: usize,
    /// Widths of the hidden layers, in order (may be empty).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Number of outputs (classes, for classification).
    pub output: usize,
    /// Activation after every hidden layer.
    #[serde(default)]
    pub activation: ActivationKind,
}

/// Activation applied after each hidden layer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    #[default]
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    LeakyRelu,
}

impl ActivationKind {
    /// The activation applied to `x`.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Relu => activation::relu(x),
            Self::Gelu => activation::gelu(x),
            Self::Tanh => activation::tanh(x),
            Self::Sigmoid => activation::sigmoid(x),
            Self::LeakyRelu => activation::leaky_relu(x, 0.01),
        }
    }
}

/// Widest layer an MLP may have.
pub const MAX_WIDTH: usize = 65_536;

impl MlpConfig {
    fn widths(&self) -> Vec<usize> {
        std::iter::once(self.input)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(self.output))
            .collect()
    }

    pub fn validate(&self) -> Result<(), MlpError> {
        let widths = self.widths();
        if widths.iter().any(|w| *w == 0 || *w > MAX_WIDTH) || self.hidden.len() > MAX_HIDDEN {
            return Err(MlpError::Widths { widths });
        }
        let params: u64 = widths
            .windows(2)
            .map(|w| (w[0] as u64 + 1) * w[1] as u64)
            .sum();
        if params > super::sequential::MAX_PARAMETERS {
            return Err(MlpError::TooManyParameters { params });
        }
        Ok(())
    }

    /// The `nn.Sequential` indices of the Linear layers in `keys` (a state_dict's
    /// names): the distinct leading numbers, in order, when there is one per layer
    /// (so `Linear, ReLU, Dropout, Linear` = 0, 3 works); else 0, 2, 4, ...
    fn torch_indices(&self, keys: &BTreeSet<String>) -> Vec<u64> {
        let n = self.hidden.len() + 1;
        let found: BTreeSet<u64> = keys
            .iter()
            .filter_map(|k| k.split_once('.')?.0.parse().ok())
            .collect();
        if found.len() == n {
            found.into_iter().collect()
        } else {
            (0..n as u64).map(|i| 2 * i).collect()
        }
    }

    /// The tensors of the MLP in a PyTorch `nn.Sequential` state_dict.
    pub fn torch_tensors(&self, keys: &BTreeSet<String>) -> Vec<Expected> {
        let widths = self.widths();
        self.torch_indices(keys)
            .into_iter()
            .zip(widths.windows(2))
            .enumerate()
            .flat_map(|(i, (key, w))| {
                let layer = format!("linear layer {i} of the mlp ({} -> {})", w[0], w[1]);
                [
                    Expected {
                        name: format!("{key}.weight"),
                        shape: vec![w[1], w[0]],
                        layer: layer.clone(),
                    },
                    Expected {
                        name: format!("{key}.bias"),
                        shape: vec![w[1]],
                        layer,
                    },
                ]
            })
            .collect()
    }

    /// Builds the MLP from matched PyTorch tensors.
    pub fn import(
        &self,
        mut tensors: BTreeMap<String, Vec<f32>>,
        keys: &BTreeSet<String>,
        device: &Device,
    ) -> Result<Mlp, Unmatched> {
        let widths = self.widths();
        let mut layers = Vec::new();
        for (key, w) in self.torch_indices(keys).into_iter().zip(widths.windows(2)) {
            let mut take = |s: &str| {
                let name = format!("{key}.{s}");
                tensors.remove(&name).ok_or(Unmatched { name })
            };
            let (weight, bias) = (take("weight")?, take("bias")?);
            let mut linear = LinearConfig::new(w[0], w[1]).init(device);
            linear.weight = super::sequential::torch::param(
                transpose(&weight, w[1], w[0]),
                [w[0], w[1]],
                device,
            );
            linear.bias = Some(super::sequential::torch::param(bias, [w[1]], device));
            layers.push(linear);
        }
        Ok(Mlp {
            layers,
            activation: self.activation,
        })
    }
}

/// A multi-layer perceptron.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    #[module(skip)]
    activation: ActivationKind,
}

impl Mlp {
    pub fn new(cfg: &MlpConfig, init: &Initializer, device: &Device) -> Self {
        let layers = cfg
            .widths()
            .windows(2)
            .map(|w| {
                LinearConfig::new(w[0], w[1])
                    .with_initializer(init.clone())
                    .init(device)
            })
            .collect();
        Self {
            layers,
            activation: cfg.activation,
        }
    }

    /// The dense layers, first to last.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// The activation after every layer but the last.
    pub fn activation(&self) -> ActivationKind {
        self.activation
    }

    /// `[batch, input] -> [batch, output]`; the activation follows every layer but
    /// the last.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_with(x, None)
    }

    /// [`forward`](Self::forward), its large layers split among `team`.
    pub fn forward_with(&self, mut x: Tensor<2>, team: Option<&dyn Team>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = columns::linear(layer, x, team);
            if i < last {
                x = self.activation.apply(x);
            }
        }
        x
    }
}
