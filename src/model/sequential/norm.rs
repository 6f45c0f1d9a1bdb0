//! Normalisation and regularisation: `batch_norm1d/2d`, `layer_norm`, `dropout`.
//!
//! Batch norm and dropout behave as in training only on an autodiff device with the
//! layer's training flag on (Burn's rule): `.valid()` models, which is every model
//! kiln serves or explains, use the running statistics and keep every value.

use burn::module::RunningState;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::args::{Dims, epsilon, positive, probability, yes};
use super::error::Unmatched;
use super::layer_error::LayerError;
use super::torch::{Source, TorchShape, param};

fn eps_default() -> f64 {
    1e-5
}
fn momentum_default() -> f64 {
    0.1
}
fn half() -> f64 {
    0.5
}

/// `nn.BatchNorm1d` / `nn.BatchNorm2d(num_features, eps, momentum)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormArgs {
    pub num_features: usize,
    #[serde(default = "eps_default")]
    pub eps: f64,
    #[serde(default = "momentum_default")]
    pub momentum: f64,
    /// Only PyTorch's default (true) is supported.
    #[serde(default = "yes")]
    pub affine: bool,
    /// Only PyTorch's default (true) is supported.
    #[serde(default = "yes")]
    pub track_running_stats: bool,
}

impl BatchNormArgs {
    /// `batch_norm1d` (`two_d = false`) takes `[C]` or `[C, L]`; `batch_norm2d` takes
    /// `[C, H, W]`.
    pub fn output_shape(&self, two_d: bool, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        positive("num_features", self.num_features)?;
        epsilon("eps", self.eps)?;
        if !(self.momentum.is_finite() && (0.0..=1.0).contains(&self.momentum)) {
            return Err(LayerError::Momentum(self.momentum));
        }
        if !self.affine || !self.track_running_stats {
            return Err(LayerError::BatchNormAffine);
        }
        let ok_rank = if two_d {
            input.len() == 3
        } else {
            matches!(input.len(), 1 | 2)
        };
        if !ok_rank {
            return Err(LayerError::Rank {
                takes: if two_d {
                    "[C, H, W] inputs"
                } else {
                    "[C] or [C, L] inputs"
                },
                input: input.to_vec(),
            });
        }
        if input[0] != self.num_features {
            return Err(LayerError::Channels {
                arg: "num_features",
                expected: self.num_features,
                got: input[0],
                input: input.to_vec(),
            });
        }
        Ok(input.to_vec())
    }

    pub fn parameters(&self) -> u64 {
        4 * self.num_features as u64
    }

    /// Norm layers keep their ones and zeros whatever the recipe's `init`.
    pub fn init(&self, device: &Device) -> BatchNorm {
        BatchNormConfig::new(self.num_features)
            .with_epsilon(self.eps)
            .with_momentum(self.momentum)
            .init(device)
    }

    pub fn torch_tensors(&self) -> Vec<(String, TorchShape)> {
        let c = self.num_features;
        ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|n| (n.to_string(), vec![c]))
            .collect()
    }

    pub fn import(&self, src: &mut Source, device: &Device) -> Result<BatchNorm, Unmatched> {
        let c = self.num_features;
        let mut bn = self.init(device);
        bn.gamma = param(src.take("weight")?, [c], device);
        bn.beta = param(src.take("bias")?, [c], device);
        let state = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [c]), device);
        bn.running_mean = RunningState::new(state(src.take("running_mean")?));
        bn.running_var = RunningState::new(state(src.take("running_var")?));
        Ok(bn)
    }
}

/// `nn.LayerNorm(normalized_shape, eps)` over the last dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerNormArgs {
    pub normalized_shape: Dims,
    #[serde(default = "eps_default")]
    pub eps: f64,
    /// Only PyTorch's default (true) is supported.
    #[serde(default = "yes")]
    pub elementwise_affine: bool,
    #[serde(default = "yes")]
    pub bias: bool,
}

impl LayerNormArgs {
    fn width(&self) -> Result<usize, LayerError> {
        match &self.normalized_shape {
            Dims::One(d) => Ok(*d),
            Dims::Many(v) if v.len() == 1 => Ok(v[0]),
            Dims::Many(v) => Err(LayerError::NormalizedShape(v.clone())),
        }
    }

    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        let d = self.width()?;
        positive("normalized_shape", d)?;
        epsilon("eps", self.eps)?;
        if !self.elementwise_affine {
            return Err(LayerError::LayerNormAffine);
        }
        let last = *input.last().expect("shapes are never empty");
        if last != d {
            return Err(LayerError::LastDim {
                arg: "normalized_shape",
                expected: d,
                got: last,
                input: input.to_vec(),
            });
        }
        Ok(input.to_vec())
    }

    pub fn parameters(&self) -> u64 {
        self.width().unwrap_or(0) as u64 * if self.bias { 2 } else { 1 }
    }

    pub fn init(&self, device: &Device) -> LayerNorm {
        LayerNormConfig::new(self.width().expect("validated"))
            .with_epsilon(self.eps)
            .with_bias(self.bias)
            .init(device)
    }

    pub fn torch_tensors(&self) -> Vec<(String, TorchShape)> {
        let d = self.width().expect("validated");
        let mut t = vec![("weight".to_string(), vec![d])];
        if self.bias {
            t.push(("bias".into(), vec![d]));
        }
        t
    }

    pub fn import(&self, src: &mut Source, device: &Device) -> Result<LayerNorm, Unmatched> {
        let d = self.width().expect("validated");
        let mut ln = self.init(device);
        ln.gamma = param(src.take("weight")?, [d], device);
        if self.bias {
            ln.beta = Some(param(src.take("bias")?, [d], device));
        }
        Ok(ln)
    }
}

/// `nn.Dropout(p)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutArgs {
    #[serde(default = "half")]
    pub p: f64,
    /// Accepted for line-by-line translation; has no effect.
    #[serde(default)]
    pub inplace: bool,
}

impl DropoutArgs {
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        probability("p", self.p)?;
        Ok(input.to_vec())
    }

    pub fn init(&self) -> Dropout {
        DropoutConfig::new(self.p).init()
    }
}
