//! [`LayerError`]: why one layer's arguments, or the input shape it would receive,
//! are refused. One variant per check, with the argument and the numbers; the
//! stack adds which layer ([`super::error::SpecError::Layer`]).

use super::args::{Dims, MAX_DIM};
use super::attention::MAX_TOKENS;
use super::recurrent::{MAX_LAYERS as MAX_RNN_LAYERS, MAX_STEPS};

/// A layer's argument out of its range, or an input shape the layer cannot take.
/// `arg` names the argument as PyTorch spells it (`in_features`, `kernel_size`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayerError {
    /// A size (channels, features, widths) outside `1..=MAX_DIM`.
    #[error("{arg} must be between 1 and {max}, got {got}", max = MAX_DIM)]
    Size { arg: &'static str, got: usize },
    /// A per-dimension size (`kernel_size`, `stride`, ...) outside `1..=MAX_DIM`.
    #[error("{arg} must be between 1 and {max}, got {got}", max = MAX_DIM)]
    Sizes { arg: &'static str, got: Dims },
    /// A list of sizes whose length is neither 1 nor the layer's dimensions.
    #[error("{arg} has {got} values; this layer takes 1 or {takes}")]
    Arity {
        arg: &'static str,
        got: usize,
        takes: usize,
    },
    /// A probability (`p`, `dropout`) outside `[0, 1)`.
    #[error("{arg} must be in [0, 1), got {got}")]
    Probability { arg: &'static str, got: f64 },
    /// A small constant (`eps`) outside `[1e-12, 1]`.
    #[error("{arg} must be between 1e-12 and 1, got {got}")]
    Epsilon { arg: &'static str, got: f64 },
    /// A number that must be finite (and of sane size) is not.
    #[error("{arg} must be a finite number, got {got}")]
    NotFinite { arg: &'static str, got: f64 },
    /// Batch norm's `momentum` outside `[0, 1]`.
    #[error("momentum must be in [0, 1], got {0}")]
    Momentum(f64),
    /// A string argument with none of the values kiln knows.
    #[error("{arg} must be {expected}, got {got:?}")]
    Choice {
        arg: &'static str,
        /// The values it takes, as the message lists them.
        expected: &'static str,
        got: String,
    },
    /// A `padding_mode` other than `"zeros"`.
    #[error("padding_mode {0:?} is not supported (only \"zeros\")")]
    PaddingMode(String),
    /// A convolution's padding over `MAX_DIM`.
    #[error("padding must be at most {max}", max = MAX_DIM)]
    PaddingTooLarge,
    /// `padding = "same"` with a stride other than 1.
    #[error("padding = \"same\" needs stride 1 (as in PyTorch)")]
    SamePaddingStride,
    /// A pooling window padded by more than half its size.
    #[error("padding ({padding}) must be at most half of kernel_size ({kernel}), as in PyTorch")]
    PoolPadding { padding: usize, kernel: usize },
    /// `dilation` on an average pooling layer.
    #[error("average pooling has no dilation")]
    AvgPoolDilation,
    /// `count_include_pad` on a max pooling layer.
    #[error("count_include_pad is for average pooling")]
    MaxPoolCountIncludePad,
    /// Channel counts that `groups` does not divide.
    #[error(
        "in_channels ({in_channels}) and out_channels ({out_channels}) must both be divisible by groups ({groups})"
    )]
    Groups {
        in_channels: usize,
        out_channels: usize,
        groups: usize,
    },
    /// A model width that the number of attention heads does not divide.
    #[error("d_model ({d_model}) must be divisible by nhead ({nhead})")]
    Heads { d_model: usize, nhead: usize },
    /// A recurrent layer's `num_layers` outside `1..=16`.
    #[error("num_layers must be between 1 and {max}, got {0}", max = MAX_RNN_LAYERS)]
    NumLayers(usize),
    /// An LSTM projection (`proj_size` other than 0).
    #[error("proj_size is not supported (only 0)")]
    ProjSize(usize),
    /// Batch norm without its affine parameters or running statistics.
    #[error("only affine = true and track_running_stats = true are supported")]
    BatchNormAffine,
    /// Layer norm without its affine parameters.
    #[error("only elementwise_affine = true is supported")]
    LayerNormAffine,
    /// An encoder layer without biases.
    #[error("only bias = true is supported")]
    EncoderBias,
    /// Layer norm over more than the last dimension.
    #[error("normalized_shape {0:?}: only the last dimension can be normalised (one size)")]
    NormalizedShape(Vec<usize>),
    /// A positional encoding's `max_timescale` outside `2..=1e9`.
    #[error("max_timescale must be between 2 and 1e9, got {0}")]
    MaxTimescale(usize),
    /// A dimension index outside a tensor of `rank` dimensions (batch included).
    #[error("{arg} = {dim} is out of range for a {rank}-dimensional tensor (batch included)")]
    DimOutOfRange {
        arg: &'static str,
        dim: i64,
        rank: usize,
    },
    /// A dimension index naming the batch dimension, which a layer may not change.
    #[error("{arg} = {dim} is the batch dimension")]
    BatchDim { arg: &'static str, dim: i64 },
    /// `flatten` with `start_dim` after `end_dim`.
    #[error("start_dim ({start_dim}) comes after end_dim ({end_dim})")]
    FlattenOrder { start_dim: i64, end_dim: i64 },
    /// `select`'s index outside the dimension.
    #[error("index {index} is out of range for a dimension of size {len}")]
    IndexOutOfRange { index: i64, len: usize },
    /// An input of a rank (or form) the layer does not take.
    #[error("takes {takes}, got shape {input:?}")]
    Rank {
        /// What it takes, as the message says it: `[C, H, W] inputs`.
        takes: &'static str,
        input: Vec<usize>,
    },
    /// An encoder layer's input that is not `[T, d_model]`.
    #[error("takes sequences [T, d_model = {d_model}], got shape {input:?}")]
    EncoderInput { d_model: usize, input: Vec<usize> },
    /// `select` on an instance of one dimension.
    #[error("select needs an input of at least 2 dimensions, got shape {0:?}")]
    SelectRank(Vec<usize>),
    /// An embedding whose input is not a sequence of ids.
    #[error("embedding takes a sequence of ids: input_shape must be [T], got {0:?}")]
    IdsInput(Vec<usize>),
    /// An embedding anywhere but first.
    #[error("embedding may only be the first layer (its inputs are ids)")]
    EmbeddingNotFirst,
    /// The input's last dimension is not the width the layer takes.
    #[error("{arg} = {expected} but the input's last dimension is {got} (input shape {input:?})")]
    LastDim {
        arg: &'static str,
        expected: usize,
        got: usize,
        input: Vec<usize>,
    },
    /// The input's channel count is not the one the layer takes.
    #[error("{arg} = {expected} but the input has {got} channels (input shape {input:?})")]
    Channels {
        arg: &'static str,
        expected: usize,
        got: usize,
        input: Vec<usize>,
    },
    /// A recurrent layer's input with another number of features per step.
    #[error(
        "input_size = {expected} but the input has {got} features per step (input shape {input:?})"
    )]
    StepFeatures {
        expected: usize,
        got: usize,
        input: Vec<usize>,
    },
    /// A positional encoding over an odd width.
    #[error("needs an even d_model, got {d_model} (input shape {input:?})")]
    OddModelWidth { d_model: usize, input: Vec<usize> },
    /// A sliding window larger than its (padded) input.
    #[error(
        "a window of {span} (kernel {kernel}, dilation {dilation}) does not fit in {len} (+{padding} padding)"
    )]
    WindowTooLarge {
        span: usize,
        kernel: usize,
        dilation: usize,
        len: usize,
        padding: usize,
    },
    /// A sequence longer than a recurrent layer steps through.
    #[error("sequences of {0} steps are longer than the {max} a recurrent layer takes", max = MAX_STEPS)]
    TooManySteps(usize),
    /// A sequence longer than an encoder layer attends over.
    #[error(
        "sequences of {0} positions are longer than the {max} an encoder layer attends over",
        max = MAX_TOKENS
    )]
    TooManyTokens(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument_and_both_numbers() {
        let e = LayerError::LastDim {
            arg: "in_features",
            expected: 4,
            got: 3,
            input: vec![2, 3],
        };
        assert_eq!(
            e.to_string(),
            "in_features = 4 but the input's last dimension is 3 (input shape [2, 3])"
        );
        let e = LayerError::Sizes {
            arg: "stride",
            got: Dims::Many(vec![0, 2]),
        };
        assert_eq!(
            e.to_string(),
            "stride must be between 1 and 65536, got [0, 2]"
        );
        assert_eq!(
            LayerError::NumLayers(17).to_string(),
            "num_layers must be between 1 and 16, got 17"
        );
        assert_eq!(
            LayerError::TooManyTokens(5000).to_string(),
            "sequences of 5000 positions are longer than the 2048 an encoder layer attends over"
        );
        let e = LayerError::Choice {
            arg: "approximate",
            expected: "\"none\" or \"tanh\"",
            got: "erf".into(),
        };
        assert_eq!(
            e.to_string(),
            "approximate must be \"none\" or \"tanh\", got \"erf\""
        );
    }
}
