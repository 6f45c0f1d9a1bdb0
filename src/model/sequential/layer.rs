//! One layer: its description ([`LayerKind`], PyTorch's class in snake_case with
//! PyTorch's argument names) and its Burn module ([`Layer`]).
//!
//! Adding a layer is local: a variant in each enum, its arguments and module in the
//! family file, and one arm in each dispatch below.

use burn::nn::conv::{Conv1d, Conv2d};
use burn::nn::transformer::TransformerEncoderLayer;
use burn::nn::{BatchNorm, Dropout, Embedding, Initializer, LayerNorm, Linear, PositionalEncoding};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::Act;
use super::attention::{EncoderArgs, PositionalArgs};
use super::conv::ConvArgs;
use super::dense::{EmbeddingArgs, LinearArgs};
use super::error::Unmatched;
use super::layer_error::LayerError;
use super::norm::{BatchNormArgs, DropoutArgs, LayerNormArgs};
use super::ops::{
    DimArgs, FlattenArgs, GeluArgs, LeakyReluArgs, NoArgs, Op, OpKind, ReluArgs, SelectArgs,
    TransposeArgs,
};
use super::pool::{AdaptiveArgs, Pool, PoolArgs, PoolKind};
use super::recurrent::{Cell, Recurrent, RnnArgs};
use super::torch::{Source, TorchShape};

/// A layer as the model config describes it, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerKind {
    Linear(LinearArgs),
    Conv1d(ConvArgs),
    Conv2d(ConvArgs),
    MaxPool1d(PoolArgs),
    MaxPool2d(PoolArgs),
    AvgPool1d(PoolArgs),
    AvgPool2d(PoolArgs),
    AdaptiveAvgPool1d(AdaptiveArgs),
    AdaptiveAvgPool2d(AdaptiveArgs),
    BatchNorm1d(BatchNormArgs),
    BatchNorm2d(BatchNormArgs),
    LayerNorm(LayerNormArgs),
    Dropout(DropoutArgs),
    Flatten(FlattenArgs),
    Relu(ReluArgs),
    Gelu(GeluArgs),
    Tanh(NoArgs),
    Sigmoid(NoArgs),
    LeakyRelu(LeakyReluArgs),
    Softmax(DimArgs),
    LogSoftmax(DimArgs),
    Embedding(EmbeddingArgs),
    Lstm(RnnArgs),
    Gru(RnnArgs),
    TransformerEncoderLayer(EncoderArgs),
    PositionalEncoding(PositionalArgs),
    Select(SelectArgs),
    Transpose(TransposeArgs),
}

impl LayerKind {
    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Linear(_) => "linear",
            Self::Conv1d(_) => "conv1d",
            Self::Conv2d(_) => "conv2d",
            Self::MaxPool1d(_) => "max_pool1d",
            Self::MaxPool2d(_) => "max_pool2d",
            Self::AvgPool1d(_) => "avg_pool1d",
            Self::AvgPool2d(_) => "avg_pool2d",
            Self::AdaptiveAvgPool1d(_) => "adaptive_avg_pool1d",
            Self::AdaptiveAvgPool2d(_) => "adaptive_avg_pool2d",
            Self::BatchNorm1d(_) => "batch_norm1d",
            Self::BatchNorm2d(_) => "batch_norm2d",
            Self::LayerNorm(_) => "layer_norm",
            Self::Dropout(_) => "dropout",
            Self::Flatten(_) => "flatten",
            Self::Relu(_) => "relu",
            Self::Gelu(_) => "gelu",
            Self::Tanh(_) => "tanh",
            Self::Sigmoid(_) => "sigmoid",
            Self::LeakyRelu(_) => "leaky_relu",
            Self::Softmax(_) => "softmax",
            Self::LogSoftmax(_) => "log_softmax",
            Self::Embedding(_) => "embedding",
            Self::Lstm(_) => "lstm",
            Self::Gru(_) => "gru",
            Self::TransformerEncoderLayer(_) => "transformer_encoder_layer",
            Self::PositionalEncoding(_) => "positional_encoding",
            Self::Select(_) => "select",
            Self::Transpose(_) => "transpose",
        }
    }

    /// The shape of one instance after this layer, or why `input` does not fit.
    /// Checks every argument, so [`init`](Self::init) never reaches a Burn panic.
    pub fn output_shape(&self, position: usize, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        match self {
            Self::Linear(a) => a.output_shape(input),
            Self::Conv1d(a) => a.output_shape(1, input),
            Self::Conv2d(a) => a.output_shape(2, input),
            Self::MaxPool1d(a) => a.output_shape(PoolKind::Max, 1, input),
            Self::MaxPool2d(a) => a.output_shape(PoolKind::Max, 2, input),
            Self::AvgPool1d(a) => a.output_shape(PoolKind::Avg, 1, input),
            Self::AvgPool2d(a) => a.output_shape(PoolKind::Avg, 2, input),
            Self::AdaptiveAvgPool1d(a) => a.output_shape(1, input),
            Self::AdaptiveAvgPool2d(a) => a.output_shape(2, input),
            Self::BatchNorm1d(a) => a.output_shape(false, input),
            Self::BatchNorm2d(a) => a.output_shape(true, input),
            Self::LayerNorm(a) => a.output_shape(input),
            Self::Dropout(a) => a.output_shape(input),
            Self::Flatten(a) => a.output_shape(input),
            Self::Relu(_) | Self::Tanh(_) | Self::Sigmoid(_) => Ok(input.to_vec()),
            Self::Gelu(a) => a.check().map(|_| input.to_vec()),
            Self::LeakyRelu(a) => a.check().map(|_| input.to_vec()),
            Self::Softmax(a) | Self::LogSoftmax(a) => a.resolve(input).map(|_| input.to_vec()),
            Self::Embedding(a) => a.output_shape(position, input),
            Self::Lstm(a) | Self::Gru(a) => a.output_shape(input),
            Self::TransformerEncoderLayer(a) => a.output_shape(input),
            Self::PositionalEncoding(a) => a.output_shape(input),
            Self::Select(a) => a.output_shape(input),
            Self::Transpose(a) => a.output_shape(input),
        }
    }

    /// Values one instance holds inside the layer beyond its input and output
    /// (attention scores, a feed-forward block, gates); 0 for most layers.
    pub fn inner_values(&self, input: &[usize]) -> u64 {
        match self {
            Self::TransformerEncoderLayer(a) => a.inner_values(input),
            Self::Lstm(a) | Self::Gru(a) => {
                // Every step's gates: T x 4H.
                input
                    .first()
                    .map_or(0, |t| *t as u64 * 4 * a.hidden_size as u64)
            }
            _ => 0,
        }
    }

    /// Number of values the layer stores (parameters and running statistics).
    pub fn parameters(&self) -> u64 {
        match self {
            Self::Linear(a) => a.parameters(),
            Self::Conv1d(a) => a.parameters(1),
            Self::Conv2d(a) => a.parameters(2),
            Self::BatchNorm1d(a) | Self::BatchNorm2d(a) => a.parameters(),
            Self::LayerNorm(a) => a.parameters(),
            Self::Embedding(a) => a.parameters(),
            Self::Lstm(a) => a.parameters(Cell::Lstm),
            Self::Gru(a) => a.parameters(Cell::Gru),
            Self::TransformerEncoderLayer(a) => a.parameters(),
            _ => 0,
        }
    }

    /// Builds the layer with fresh weights (`init` for linear, conv, recurrent and
    /// attention weights; norms start at ones and zeros, embeddings at N(0, 1)).
    /// `input` is the instance shape before it; the description has been checked.
    pub fn init(&self, input: &[usize], init: &Initializer, device: &Device) -> Layer {
        match self {
            Self::Linear(a) => Layer::Linear(a.init(init, device)),
            Self::Conv1d(a) => Layer::Conv1d(a.init1d(init, device)),
            Self::Conv2d(a) => Layer::Conv2d(a.init2d(init, device)),
            Self::BatchNorm1d(a) | Self::BatchNorm2d(a) => Layer::BatchNorm(a.init(device)),
            Self::LayerNorm(a) => Layer::LayerNorm(a.init(device)),
            Self::Dropout(a) => Layer::Dropout(a.init()),
            Self::Embedding(a) => Layer::Embedding(a.init(device)),
            Self::Lstm(a) => Layer::Recurrent(a.init(Cell::Lstm, init, device)),
            Self::Gru(a) => Layer::Recurrent(a.init(Cell::Gru, init, device)),
            Self::TransformerEncoderLayer(a) => Layer::Encoder(a.init(init, device)),
            Self::PositionalEncoding(a) => Layer::Positional(a.init(input, device)),
            other => Layer::Op(Op::new(other.op(input))),
        }
    }

    /// The parameterless step this layer is (only for parameterless kinds).
    fn op(&self, input: &[usize]) -> OpKind {
        let checked = "checked when the config was loaded";
        let window = |a: &PoolArgs, kind, n| a.window(kind, n).expect(checked);
        let include_pad = |a: &PoolArgs| a.count_include_pad.unwrap_or(true);
        match self {
            Self::Relu(_) => OpKind::Relu,
            Self::Gelu(a) => OpKind::Gelu {
                approximate: a.check().expect(checked),
            },
            Self::Tanh(_) => OpKind::Tanh,
            Self::Sigmoid(_) => OpKind::Sigmoid,
            Self::LeakyRelu(a) => OpKind::LeakyRelu(a.negative_slope),
            Self::Softmax(a) => OpKind::Softmax(a.resolve(input).expect(checked)),
            Self::LogSoftmax(a) => OpKind::LogSoftmax(a.resolve(input).expect(checked)),
            Self::Flatten(a) => OpKind::Reshape(a.output_shape(input).expect(checked)),
            Self::Select(a) => {
                let (dim, index) = a.resolve(input).expect(checked);
                OpKind::Select { dim, index }
            }
            Self::Transpose(a) => {
                let (x, y) = a.resolve(input).expect(checked);
                OpKind::Transpose(x, y)
            }
            Self::MaxPool1d(a) => {
                OpKind::Pool(Pool::Max1d(window(a, PoolKind::Max, 1), a.ceil_mode))
            }
            Self::MaxPool2d(a) => {
                OpKind::Pool(Pool::Max2d(window(a, PoolKind::Max, 2), a.ceil_mode))
            }
            Self::AvgPool1d(a) => OpKind::Pool(Pool::Avg1d(
                window(a, PoolKind::Avg, 1),
                include_pad(a),
                a.ceil_mode,
            )),
            Self::AvgPool2d(a) => OpKind::Pool(Pool::Avg2d(
                window(a, PoolKind::Avg, 2),
                include_pad(a),
                a.ceil_mode,
            )),
            Self::AdaptiveAvgPool1d(a) => {
                OpKind::Pool(Pool::Adaptive1d(a.sizes(1).expect(checked)[0]))
            }
            Self::AdaptiveAvgPool2d(a) => {
                let s = a.sizes(2).expect(checked);
                OpKind::Pool(Pool::Adaptive2d([s[0], s[1]]))
            }
            other => unreachable!("{} has parameters", other.type_name()),
        }
    }

    /// The tensors this layer has in a PyTorch `state_dict`, relative to its name,
    /// with PyTorch's shapes (`num_batches_tracked` aside).
    pub fn torch_tensors(&self) -> Vec<(String, TorchShape)> {
        match self {
            Self::Linear(a) => a.torch_tensors(),
            Self::Conv1d(a) => a.torch_tensors(1),
            Self::Conv2d(a) => a.torch_tensors(2),
            Self::BatchNorm1d(a) | Self::BatchNorm2d(a) => a.torch_tensors(),
            Self::LayerNorm(a) => a.torch_tensors(),
            Self::Embedding(a) => a.torch_tensors(),
            Self::Lstm(a) => a.torch_tensors(Cell::Lstm),
            Self::Gru(a) => a.torch_tensors(Cell::Gru),
            Self::TransformerEncoderLayer(a) => a.torch_tensors(),
            _ => Vec::new(),
        }
    }

    /// Builds the layer from PyTorch tensors (present and shaped as
    /// [`torch_tensors`](Self::torch_tensors) says).
    pub fn import(
        &self,
        input: &[usize],
        src: &mut Source,
        device: &Device,
    ) -> Result<Layer, Unmatched> {
        Ok(match self {
            Self::Linear(a) => Layer::Linear(a.import(src, device)?),
            Self::Conv1d(a) => Layer::Conv1d(a.import1d(src, device)?),
            Self::Conv2d(a) => Layer::Conv2d(a.import2d(src, device)?),
            Self::BatchNorm1d(a) | Self::BatchNorm2d(a) => Layer::BatchNorm(a.import(src, device)?),
            Self::LayerNorm(a) => Layer::LayerNorm(a.import(src, device)?),
            Self::Embedding(a) => Layer::Embedding(a.import(src, device)?),
            Self::Lstm(a) => Layer::Recurrent(a.import(Cell::Lstm, src, device)?),
            Self::Gru(a) => Layer::Recurrent(a.import(Cell::Gru, src, device)?),
            Self::TransformerEncoderLayer(a) => Layer::Encoder(a.import(src, device)?),
            other => other.init(input, &Initializer::Zeros, device),
        })
    }
}

/// A layer's Burn module.
// A stack holds a handful of these, built once; boxing the large variants would only
// add an indirection to every forward pass.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Layer {
    Linear(Linear),
    Embedding(Embedding),
    Conv1d(Conv1d),
    Conv2d(Conv2d),
    BatchNorm(BatchNorm),
    LayerNorm(LayerNorm),
    Dropout(Dropout),
    Recurrent(Recurrent),
    Encoder(TransformerEncoderLayer),
    Positional(PositionalEncoding),
    Op(Op),
}

impl Layer {
    /// One step; the ranks were checked when the config was loaded.
    pub fn forward(&self, x: Act) -> Act {
        match (self, x) {
            (Layer::Linear(l), x) => each_rank!(x, t => l.forward(t)),
            (Layer::LayerNorm(l), x) => each_rank!(x, t => l.forward(t)),
            (Layer::BatchNorm(l), x) => each_rank!(x, t => l.forward(t)),
            (Layer::Dropout(l), x) => each_rank!(x, t => l.forward(t)),
            (Layer::Embedding(l), Act::R2(ids)) => Act::R3(l.forward(ids.int())),
            (Layer::Conv1d(l), Act::R3(t)) => Act::R3(l.forward(t)),
            (Layer::Conv2d(l), Act::R4(t)) => Act::R4(l.forward(t)),
            (Layer::Recurrent(l), Act::R3(t)) => Act::R3(l.forward(t)),
            (Layer::Encoder(l), Act::R3(t)) => Act::R3(l.forward(t, None, None)),
            (Layer::Positional(l), Act::R3(t)) => Act::R3(l.forward(t)),
            (Layer::Op(op), x) => op.forward(x),
            (_, x) => unreachable!(
                "a rank {} input reached a layer that cannot take it (shapes are checked at load)",
                x.rank()
            ),
        }
    }
}
