//! Pooling over 1-D (`[C, L]`) and 2-D (`[C, H, W]`) inputs: max, average and
//! adaptive average, run as Burn's functional ops (no parameters).

use burn::prelude::*;
use burn::tensor::module::{
    adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d,
};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use serde::{Deserialize, Serialize};

use super::args::Dims;
use super::conv::{Window, expand, spatial_input};
use super::layer_error::LayerError;

/// `nn.MaxPool1d/2d`, `nn.AvgPool1d/2d`: `stride` defaults to `kernel_size`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolArgs {
    pub kernel_size: Dims,
    #[serde(default)]
    pub stride: Option<Dims>,
    #[serde(default)]
    pub padding: Option<Dims>,
    /// Max pooling only.
    #[serde(default)]
    pub dilation: Option<Dims>,
    #[serde(default)]
    pub ceil_mode: bool,
    /// Average pooling only (PyTorch's default: true).
    #[serde(default)]
    pub count_include_pad: Option<bool>,
}

/// Max or average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

impl PoolArgs {
    /// The resolved window (validated by [`output_shape`](Self::output_shape)).
    pub fn window(&self, kind: PoolKind, n: usize) -> Result<Window, LayerError> {
        let kernel = expand(&self.kernel_size, n, "kernel_size")?;
        let stride = match &self.stride {
            Some(s) => expand(s, n, "stride")?,
            None => kernel.clone(),
        };
        let dilation = match (&self.dilation, kind) {
            (Some(_), PoolKind::Avg) => {
                return Err(LayerError::AvgPoolDilation);
            }
            (Some(d), PoolKind::Max) => expand(d, n, "dilation")?,
            (None, _) => vec![1; n],
        };
        if kind == PoolKind::Max && self.count_include_pad.is_some() {
            return Err(LayerError::MaxPoolCountIncludePad);
        }
        let padding = match &self.padding {
            None => vec![0; n],
            Some(p) => match n {
                1 => p.expand::<1>("padding")?.to_vec(),
                _ => p.expand::<2>("padding")?.to_vec(),
            },
        };
        for (p, k) in padding.iter().zip(&kernel) {
            if *p > k / 2 {
                return Err(LayerError::PoolPadding {
                    padding: *p,
                    kernel: *k,
                });
            }
        }
        Ok(Window {
            kernel,
            stride,
            dilation,
            padding: padding.into_iter().map(|p| (p, p)).collect(),
        })
    }

    pub fn output_shape(
        &self,
        kind: PoolKind,
        n: usize,
        input: &[usize],
    ) -> Result<Vec<usize>, LayerError> {
        spatial_input(n, input)?;
        self.window(kind, n)?
            .output_shape(input[0], input, self.ceil_mode)
    }
}

/// `nn.AdaptiveAvgPool1d/2d(output_size)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveArgs {
    pub output_size: Dims,
}

impl AdaptiveArgs {
    pub fn sizes(&self, n: usize) -> Result<Vec<usize>, LayerError> {
        expand(&self.output_size, n, "output_size")
    }

    pub fn output_shape(&self, n: usize, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        spatial_input(n, input)?;
        let mut out = vec![input[0]];
        out.extend(self.sizes(n)?);
        Ok(out)
    }
}

/// A pooling step with its geometry resolved (what the stateless layer keeps).
#[derive(Debug, Clone, PartialEq)]
pub enum Pool {
    Max1d(Window, bool),
    Max2d(Window, bool),
    Avg1d(Window, bool, bool),
    Avg2d(Window, bool, bool),
    Adaptive1d(usize),
    Adaptive2d([usize; 2]),
}

impl Pool {
    pub fn forward3(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Pool::Max1d(w, ceil) => max_pool1d(
                x,
                MaxPoolOptions {
                    kernel_size: [w.kernel[0]],
                    stride: [w.stride[0]],
                    padding: [w.padding[0]],
                    dilation: [w.dilation[0]],
                    ceil_mode: *ceil,
                },
            ),
            Pool::Avg1d(w, include_pad, ceil) => avg_pool1d(
                x,
                AvgPoolOptions {
                    kernel_size: [w.kernel[0]],
                    stride: [w.stride[0]],
                    padding: [w.padding[0]],
                    count_include_pad: *include_pad,
                    ceil_mode: *ceil,
                },
            ),
            Pool::Adaptive1d(n) => adaptive_avg_pool1d(x, *n),
            other => unreachable!("{other:?} takes a 4-D input (checked at load)"),
        }
    }

    pub fn forward4(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Pool::Max2d(w, ceil) => max_pool2d(
                x,
                MaxPoolOptions {
                    kernel_size: [w.kernel[0], w.kernel[1]],
                    stride: [w.stride[0], w.stride[1]],
                    padding: [w.padding[0], w.padding[1]],
                    dilation: [w.dilation[0], w.dilation[1]],
                    ceil_mode: *ceil,
                },
            ),
            Pool::Avg2d(w, include_pad, ceil) => avg_pool2d(
                x,
                AvgPoolOptions {
                    kernel_size: [w.kernel[0], w.kernel[1]],
                    stride: [w.stride[0], w.stride[1]],
                    padding: [w.padding[0], w.padding[1]],
                    count_include_pad: *include_pad,
                    ceil_mode: *ceil,
                },
            ),
            Pool::Adaptive2d(s) => adaptive_avg_pool2d(x, *s),
            other => unreachable!("{other:?} takes a 3-D input (checked at load)"),
        }
    }
}
