//! `linear` and `embedding`: the layers that are one weight matrix.

use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::args::{positive, yes};
use super::error::Unmatched;
use super::layer_error::LayerError;
use super::torch::{Source, TorchShape, param, transpose};

/// `nn.Linear(in_features, out_features, bias=True)`: applies to the last dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearArgs {
    pub in_features: usize,
    pub out_features: usize,
    #[serde(default = "yes")]
    pub bias: bool,
}

impl LinearArgs {
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        positive("in_features", self.in_features)?;
        positive("out_features", self.out_features)?;
        let last = *input.last().expect("shapes are never empty");
        if last != self.in_features {
            return Err(LayerError::LastDim {
                arg: "in_features",
                expected: self.in_features,
                got: last,
                input: input.to_vec(),
            });
        }
        let mut out = input.to_vec();
        *out.last_mut().expect("non-empty") = self.out_features;
        Ok(out)
    }

    pub fn parameters(&self) -> u64 {
        let (i, o) = (self.in_features as u64, self.out_features as u64);
        i * o + if self.bias { o } else { 0 }
    }

    pub fn init(&self, init: &Initializer, device: &Device) -> Linear {
        LinearConfig::new(self.in_features, self.out_features)
            .with_bias(self.bias)
            .with_initializer(init.clone())
            .init(device)
    }

    pub fn torch_tensors(&self) -> Vec<(String, TorchShape)> {
        let mut t = vec![(
            "weight".to_string(),
            vec![self.out_features, self.in_features],
        )];
        if self.bias {
            t.push(("bias".into(), vec![self.out_features]));
        }
        t
    }

    pub fn import(&self, src: &mut Source, device: &Device) -> Result<Linear, Unmatched> {
        linear_from_torch(
            src,
            "weight",
            self.bias.then_some("bias"),
            self.in_features,
            self.out_features,
            device,
        )
    }
}

/// A Burn `Linear` (`[in, out]`) from a PyTorch weight `[out, in]` and bias `[out]`.
pub fn linear_from_torch(
    src: &mut Source,
    weight: &str,
    bias: Option<&str>,
    d_in: usize,
    d_out: usize,
    device: &Device,
) -> Result<Linear, Unmatched> {
    let w = src.take(weight)?;
    Ok(linear_from_rows(
        &w,
        bias.map(|b| src.take(b)).transpose()?,
        d_in,
        d_out,
        device,
    ))
}

/// A Burn `Linear` from row-major PyTorch data already in memory (`w` is `[out, in]`).
pub fn linear_from_rows(
    w: &[f32],
    b: Option<Vec<f32>>,
    d_in: usize,
    d_out: usize,
    device: &Device,
) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out)
        .with_bias(b.is_some())
        .init(device);
    linear.weight = param(transpose(w, d_out, d_in), [d_in, d_out], device);
    linear.bias = b.map(|b| param(b, [d_out], device));
    linear
}

/// `nn.Embedding(num_embeddings, embedding_dim)`: integer ids `[T]` -> `[T, dim]`.
/// Only as the first layer; its inputs must be integers in `[0, num_embeddings)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingArgs {
    pub num_embeddings: usize,
    pub embedding_dim: usize,
}

impl EmbeddingArgs {
    pub fn output_shape(&self, position: usize, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        positive("num_embeddings", self.num_embeddings)?;
        positive("embedding_dim", self.embedding_dim)?;
        if position != 0 {
            return Err(LayerError::EmbeddingNotFirst);
        }
        if input.len() != 1 {
            return Err(LayerError::IdsInput(input.to_vec()));
        }
        Ok(vec![input[0], self.embedding_dim])
    }

    pub fn parameters(&self) -> u64 {
        self.num_embeddings as u64 * self.embedding_dim as u64
    }

    /// Embeddings keep PyTorch's own initialisation, N(0, 1).
    pub fn init(&self, device: &Device) -> Embedding {
        EmbeddingConfig::new(self.num_embeddings, self.embedding_dim).init(device)
    }

    pub fn torch_tensors(&self) -> Vec<(String, TorchShape)> {
        vec![(
            "weight".into(),
            vec![self.num_embeddings, self.embedding_dim],
        )]
    }

    pub fn import(&self, src: &mut Source, device: &Device) -> Result<Embedding, Unmatched> {
        let mut e = self.init(device);
        e.weight = param(
            src.take("weight")?,
            [self.num_embeddings, self.embedding_dim],
            device,
        );
        Ok(e)
    }
}
