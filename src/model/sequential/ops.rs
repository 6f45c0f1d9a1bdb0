//! Layers without parameters: activations, softmax, `flatten`, `select`, and the
//! pooling steps. Each resolves its dimensions once, when the layer is built, into
//! an [`OpKind`]; [`Op`] is the (parameterless) module that runs it.

use burn::prelude::*;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

use super::Act;
use super::args::resolve_dim;
use super::layer_error::LayerError;
use super::pool::Pool;

fn minus_one() -> i64 {
    -1
}
fn plus_one() -> i64 {
    1
}
fn slope() -> f64 {
    0.01
}
fn none() -> String {
    "none".into()
}

/// `nn.Tanh()`, `nn.Sigmoid()`: no arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// `nn.ReLU(inplace=False)`: `inplace` is accepted and has no effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReluArgs {
    #[serde(default)]
    pub inplace: bool,
}

/// `nn.GELU(approximate="none")`; `"tanh"` selects the tanh approximation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeluArgs {
    #[serde(default = "none")]
    pub approximate: String,
}

/// `nn.LeakyReLU(negative_slope=0.01)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyReluArgs {
    #[serde(default = "slope")]
    pub negative_slope: f64,
    #[serde(default)]
    pub inplace: bool,
}

/// `nn.Softmax(dim)` / `nn.LogSoftmax(dim)`; `dim` counts the batch dimension as 0
/// (as PyTorch does on a batch) and defaults to the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimArgs {
    #[serde(default = "minus_one")]
    pub dim: i64,
}

/// `nn.Flatten(start_dim=1, end_dim=-1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenArgs {
    #[serde(default = "plus_one")]
    pub start_dim: i64,
    #[serde(default = "minus_one")]
    pub end_dim: i64,
}

/// `x[:, index]` on dimension `dim` (default 1, the time dimension of a sequence):
/// turns a recurrent layer's output sequence into its last step, for example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectArgs {
    #[serde(default = "plus_one")]
    pub dim: i64,
    #[serde(default = "minus_one")]
    pub index: i64,
}

/// `x.transpose(dim0, dim1)` (what a PyTorch `forward` writes to put a sequence's
/// features first for `conv1d`, or back); dimensions count the batch as 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransposeArgs {
    pub dim0: i64,
    pub dim1: i64,
}

impl TransposeArgs {
    pub fn resolve(&self, input: &[usize]) -> Result<(usize, usize), LayerError> {
        Ok((
            instance_dim(self.dim0, input, "dim0")?,
            instance_dim(self.dim1, input, "dim1")?,
        ))
    }

    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        let (a, b) = self.resolve(input)?;
        let mut out = input.to_vec();
        out.swap(a - 1, b - 1);
        Ok(out)
    }
}

impl GeluArgs {
    pub fn check(&self) -> Result<bool, LayerError> {
        match self.approximate.as_str() {
            "none" => Ok(false),
            "tanh" => Ok(true),
            other => Err(LayerError::Choice {
                arg: "approximate",
                expected: "\"none\" or \"tanh\"",
                got: other.to_string(),
            }),
        }
    }
}

impl LeakyReluArgs {
    pub fn check(&self) -> Result<(), LayerError> {
        if !(self.negative_slope.is_finite() && self.negative_slope.abs() <= 1e6) {
            return Err(LayerError::NotFinite {
                arg: "negative_slope",
                got: self.negative_slope,
            });
        }
        Ok(())
    }
}

/// A dimension that is not the batch dimension, resolved against `input` (the
/// shape of one instance).
fn instance_dim(dim: i64, input: &[usize], arg: &'static str) -> Result<usize, LayerError> {
    let d = resolve_dim(dim, input.len() + 1, arg)?;
    if d == 0 {
        return Err(LayerError::BatchDim { arg, dim });
    }
    Ok(d)
}

impl DimArgs {
    pub fn resolve(&self, input: &[usize]) -> Result<usize, LayerError> {
        instance_dim(self.dim, input, "dim")
    }
}

impl FlattenArgs {
    /// `(start, end)`, both counted with the batch dimension as 0.
    pub fn resolve(&self, input: &[usize]) -> Result<(usize, usize), LayerError> {
        let start = instance_dim(self.start_dim, input, "start_dim")?;
        let end = instance_dim(self.end_dim, input, "end_dim")?;
        if start > end {
            return Err(LayerError::FlattenOrder {
                start_dim: self.start_dim,
                end_dim: self.end_dim,
            });
        }
        Ok((start, end))
    }

    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        let (s, e) = self.resolve(input)?;
        let mut out = input[..s - 1].to_vec();
        out.push(input[s - 1..e].iter().product());
        out.extend_from_slice(&input[e..]);
        Ok(out)
    }
}

impl SelectArgs {
    /// `(dim, index)`, `dim` counted with the batch dimension as 0.
    pub fn resolve(&self, input: &[usize]) -> Result<(usize, usize), LayerError> {
        if input.len() < 2 {
            return Err(LayerError::SelectRank(input.to_vec()));
        }
        let d = instance_dim(self.dim, input, "dim")?;
        let len = input[d - 1] as i64;
        let i = if self.index < 0 {
            self.index + len
        } else {
            self.index
        };
        if !(0..len).contains(&i) {
            return Err(LayerError::IndexOutOfRange {
                index: self.index,
                len: input[d - 1],
            });
        }
        Ok((d, i as usize))
    }

    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        let (d, _) = self.resolve(input)?;
        let mut out = input.to_vec();
        out.remove(d - 1);
        Ok(out)
    }
}

/// A parameterless step, its dimensions resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    Relu,
    Gelu {
        approximate: bool,
    },
    Tanh,
    Sigmoid,
    LeakyRelu(f64),
    Softmax(usize),
    LogSoftmax(usize),
    /// Reshape each instance to this shape.
    Reshape(Vec<usize>),
    Select {
        dim: usize,
        index: usize,
    },
    Transpose(usize, usize),
    Pool(Pool),
}

/// The module of a parameterless layer.
#[derive(Module, Debug)]
pub struct Op {
    #[module(skip)]
    pub kind: OpKind,
}

impl Op {
    pub fn new(kind: OpKind) -> Self {
        Self { kind }
    }

    pub fn forward(&self, x: Act) -> Act {
        match &self.kind {
            OpKind::Relu => each_rank!(x, t => activation::relu(t)),
            OpKind::Gelu { approximate: false } => each_rank!(x, t => activation::gelu(t)),
            OpKind::Gelu { approximate: true } => {
                each_rank!(x, t => activation::gelu_approximate(t))
            }
            OpKind::Tanh => each_rank!(x, t => activation::tanh(t)),
            OpKind::Sigmoid => each_rank!(x, t => activation::sigmoid(t)),
            OpKind::LeakyRelu(s) => each_rank!(x, t => activation::leaky_relu(t, *s)),
            OpKind::Softmax(d) => each_rank!(x, t => activation::softmax(t, *d)),
            OpKind::LogSoftmax(d) => each_rank!(x, t => activation::log_softmax(t, *d)),
            OpKind::Reshape(shape) => x.reshape(shape),
            OpKind::Transpose(a, b) => each_rank!(x, t => t.swap_dims(*a, *b)),
            OpKind::Select { dim, index } => match x {
                Act::R3(t) => Act::R2(t.narrow(*dim, *index, 1).squeeze_dim::<2>(*dim)),
                Act::R4(t) => Act::R3(t.narrow(*dim, *index, 1).squeeze_dim::<3>(*dim)),
                Act::R2(_) => unreachable!("select on a 2-D tensor is refused at load"),
            },
            OpKind::Pool(p) => match x {
                Act::R3(t) => Act::R3(p.forward3(t)),
                Act::R4(t) => Act::R4(p.forward4(t)),
                Act::R2(_) => unreachable!("pooling a 2-D tensor is refused at load"),
            },
        }
    }
}
