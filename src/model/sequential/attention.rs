//! `transformer_encoder_layer` (PyTorch's `nn.TransformerEncoderLayer`, one layer)
//! and `positional_encoding` (sinusoidal, as Burn's `PositionalEncoding`): both take
//! and give `[T, d_model]`.
//!
//! PyTorch packs the query, key and value projections into `in_proj_weight`
//! (`[3d, d]`, rows q, k, v); Burn keeps three `Linear`s. Burn's encoder layer also
//! swaps the roles of its two norms with `norm_first`: post-norm maps PyTorch's
//! `norm1` to `norm_1`, pre-norm maps it to `norm_2`.

use burn::nn::activation::ActivationConfig;
use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderLayer};
use burn::nn::{Initializer, LayerNorm, PositionalEncoding, PositionalEncodingConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::args::{epsilon, positive, probability, yes};
use super::dense::{linear_from_rows, linear_from_torch};
use super::error::Unmatched;
use super::layer_error::LayerError;
use super::torch::{Source, TorchShape, param};

fn ff_default() -> usize {
    2048
}
fn dropout_default() -> f64 {
    0.1
}
fn relu() -> String {
    "relu".into()
}
fn eps_default() -> f64 {
    1e-5
}
fn timescale() -> usize {
    10_000
}

/// Longest sequence an encoder layer attends over (attention is quadratic in it).
pub const MAX_TOKENS: usize = 2048;

/// `nn.TransformerEncoderLayer` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderArgs {
    pub d_model: usize,
    pub nhead: usize,
    #[serde(default = "ff_default")]
    pub dim_feedforward: usize,
    #[serde(default = "dropout_default")]
    pub dropout: f64,
    /// `"relu"` or `"gelu"`.
    #[serde(default = "relu")]
    pub activation: String,
    #[serde(default = "eps_default")]
    pub layer_norm_eps: f64,
    /// Accepted either way (kiln's tensors are always batch-first).
    #[serde(default = "yes")]
    pub batch_first: bool,
    #[serde(default)]
    pub norm_first: bool,
    /// Only PyTorch's default (true) is supported.
    #[serde(default = "yes")]
    pub bias: bool,
}

impl EncoderArgs {
    fn activation(&self) -> Result<ActivationConfig, LayerError> {
        match self.activation.as_str() {
            "relu" => Ok(ActivationConfig::Relu),
            "gelu" => Ok(ActivationConfig::Gelu),
            other => Err(LayerError::Choice {
                arg: "activation",
                expected: "\"relu\" or \"gelu\"",
                got: other.to_string(),
            }),
        }
    }

    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        positive("d_model", self.d_model)?;
        positive("nhead", self.nhead)?;
        positive("dim_feedforward", self.dim_feedforward)?;
        probability("dropout", self.dropout)?;
        epsilon("layer_norm_eps", self.layer_norm_eps)?;
        self.activation()?;
        if !self.d_model.is_multiple_of(self.nhead) {
            return Err(LayerError::Heads {
                d_model: self.d_model,
                nhead: self.nhead,
            });
        }
        if !self.bias {
            return Err(LayerError::EncoderBias);
        }
        if input.len() != 2 || input[1] != self.d_model {
            return Err(LayerError::EncoderInput {
                d_model: self.d_model,
                input: input.to_vec(),
            });
        }
        if input[0] > MAX_TOKENS {
            return Err(LayerError::TooManyTokens(input[0]));
        }
        Ok(input.to_vec())
    }

    /// Attention scores (`nhead x T x T`) and the feed-forward block (`T x ff`).
    pub fn inner_values(&self, input: &[usize]) -> u64 {
        let t = input.first().copied().unwrap_or(0) as u64;
        (self.nhead as u64 * t * t).max(t * self.dim_feedforward as u64)
    }

    pub fn parameters(&self) -> u64 {
        let (d, f) = (self.d_model as u64, self.dim_feedforward as u64);
        (4 * d * d + 4 * d) + (2 * d * f + f + d) + 4 * d
    }

    pub fn init(&self, init: &Initializer, device: &Device) -> TransformerEncoderLayer {
        let config =
            TransformerEncoderConfig::new(self.d_model, self.dim_feedforward, self.nhead, 1)
                .with_dropout(self.dropout)
                .with_norm_first(self.norm_first)
                .with_activation(self.activation().expect("validated"))
                .with_layer_norm_eps(self.layer_norm_eps)
                .with_initializer(init.clone());
        TransformerEncoderLayer::new(&config, device)
    }

    pub fn torch_tensors(&self) -> Vec<(String, TorchShape)> {
        let (d, f) = (self.d_model, self.dim_feedforward);
        [
            ("self_attn.in_proj_weight", vec![3 * d, d]),
            ("self_attn.in_proj_bias", vec![3 * d]),
            ("self_attn.out_proj.weight", vec![d, d]),
            ("self_attn.out_proj.bias", vec![d]),
            ("linear1.weight", vec![f, d]),
            ("linear1.bias", vec![f]),
            ("linear2.weight", vec![d, f]),
            ("linear2.bias", vec![d]),
            ("norm1.weight", vec![d]),
            ("norm1.bias", vec![d]),
            ("norm2.weight", vec![d]),
            ("norm2.bias", vec![d]),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect()
    }

    pub fn import(
        &self,
        src: &mut Source,
        device: &Device,
    ) -> Result<TransformerEncoderLayer, Unmatched> {
        let (d, f) = (self.d_model, self.dim_feedforward);
        let mut layer = self.init(&Initializer::Zeros, device);
        let w = src.take("self_attn.in_proj_weight")?;
        let b = src.take("self_attn.in_proj_bias")?;
        let part = |k: usize| {
            linear_from_rows(
                &w[k * d * d..(k + 1) * d * d],
                Some(b[k * d..(k + 1) * d].to_vec()),
                d,
                d,
                device,
            )
        };
        layer.mha.query = part(0);
        layer.mha.key = part(1);
        layer.mha.value = part(2);
        layer.mha.output = linear_from_torch(
            src,
            "self_attn.out_proj.weight",
            Some("self_attn.out_proj.bias"),
            d,
            d,
            device,
        )?;
        layer.pwff.linear_inner =
            linear_from_torch(src, "linear1.weight", Some("linear1.bias"), d, f, device)?;
        layer.pwff.linear_outer =
            linear_from_torch(src, "linear2.weight", Some("linear2.bias"), f, d, device)?;
        let mut norm = |name: &str, target: &mut LayerNorm| -> Result<(), Unmatched> {
            target.gamma = param(src.take(&format!("{name}.weight"))?, [d], device);
            target.beta = Some(param(src.take(&format!("{name}.bias"))?, [d], device));
            Ok(())
        };
        if self.norm_first {
            norm("norm1", &mut layer.norm_2)?;
            norm("norm2", &mut layer.norm_1)?;
        } else {
            norm("norm1", &mut layer.norm_1)?;
            norm("norm2", &mut layer.norm_2)?;
        }
        Ok(layer)
    }
}

/// Sinusoidal positional encoding added to `[T, d_model]` (no parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionalArgs {
    #[serde(default = "timescale")]
    pub max_timescale: usize,
}

impl PositionalArgs {
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        if !(2..=1_000_000_000).contains(&self.max_timescale) {
            return Err(LayerError::MaxTimescale(self.max_timescale));
        }
        if input.len() != 2 {
            return Err(LayerError::Rank {
                takes: "sequences [T, d_model]",
                input: input.to_vec(),
            });
        }
        if !input[1].is_multiple_of(2) {
            return Err(LayerError::OddModelWidth {
                d_model: input[1],
                input: input.to_vec(),
            });
        }
        Ok(input.to_vec())
    }

    pub fn init(&self, input: &[usize], device: &Device) -> PositionalEncoding {
        PositionalEncodingConfig::new(input[1])
            .with_max_sequence_size(input[0])
            .with_max_timescale(self.max_timescale)
            .init(device)
    }
}
