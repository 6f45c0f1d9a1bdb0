//! Convolutions over 1-D (`[C, L]`) and 2-D (`[C, H, W]`) inputs, and the window
//! geometry pooling shares with them.

use burn::nn::Initializer;
use burn::nn::PaddingConfig1d;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::args::{Dims, MAX_DIM, Padding, PaddingMode, positive, window_out, yes};
use super::error::Unmatched;
use super::layer_error::LayerError;
use super::torch::{Source, TorchShape, param};

fn one() -> Dims {
    Dims::One(1)
}
fn one_usize() -> usize {
    1
}
fn zeros() -> String {
    "zeros".into()
}

/// `nn.Conv1d` / `nn.Conv2d`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvArgs {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: Dims,
    #[serde(default = "one")]
    pub stride: Dims,
    #[serde(default)]
    pub padding: Padding,
    #[serde(default = "one")]
    pub dilation: Dims,
    #[serde(default = "one_usize")]
    pub groups: usize,
    #[serde(default = "yes")]
    pub bias: bool,
    /// Only PyTorch's default, `"zeros"`.
    #[serde(default = "zeros")]
    pub padding_mode: String,
}

/// The resolved geometry of a convolution or pooling window over `n` dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub dilation: Vec<usize>,
    /// (before, after) per dimension.
    pub padding: Vec<(usize, usize)>,
}

impl Window {
    /// `[channels, ..spatial]` after sliding this window over `input`
    /// (`[_, ..spatial]`), or why it does not fit.
    pub fn output_shape(
        &self,
        channels: usize,
        input: &[usize],
        ceil_mode: bool,
    ) -> Result<Vec<usize>, LayerError> {
        let mut out = vec![channels];
        for (i, len) in input[1..].iter().enumerate() {
            out.push(window_out(
                *len,
                self.kernel[i],
                self.stride[i],
                self.padding[i],
                self.dilation[i],
                ceil_mode,
            )?);
        }
        Ok(out)
    }
}

/// Checks `input` is `[channels, ..n spatial dimensions]`.
pub fn spatial_input(n: usize, input: &[usize]) -> Result<(), LayerError> {
    if input.len() != n + 1 {
        return Err(LayerError::Rank {
            takes: if n == 1 {
                "[channels, length] inputs"
            } else {
                "[channels, height, width] inputs"
            },
            input: input.to_vec(),
        });
    }
    Ok(())
}

/// `d` for `n` spatial dimensions, each between 1 and [`MAX_DIM`].
pub fn expand(d: &Dims, n: usize, arg: &'static str) -> Result<Vec<usize>, LayerError> {
    let v = match n {
        1 => d.expand::<1>(arg)?.to_vec(),
        _ => d.expand::<2>(arg)?.to_vec(),
    };
    if v.iter().any(|x| *x == 0 || *x > MAX_DIM) {
        return Err(LayerError::Sizes {
            arg,
            got: d.clone(),
        });
    }
    Ok(v)
}

impl ConvArgs {
    fn window(&self, n: usize) -> Result<Window, LayerError> {
        let kernel = expand(&self.kernel_size, n, "kernel_size")?;
        let stride = expand(&self.stride, n, "stride")?;
        let dilation = expand(&self.dilation, n, "dilation")?;
        let padding = match &self.padding {
            Padding::Size(p) => {
                let p = match n {
                    1 => p.expand::<1>("padding")?.to_vec(),
                    _ => p.expand::<2>("padding")?.to_vec(),
                };
                if p.iter().any(|x| *x > MAX_DIM) {
                    return Err(LayerError::PaddingTooLarge);
                }
                p.into_iter().map(|p| (p, p)).collect()
            }
            Padding::Mode(PaddingMode::Valid) => vec![(0, 0); n],
            Padding::Mode(PaddingMode::Same) => {
                if stride.iter().any(|s| *s != 1) {
                    return Err(LayerError::SamePaddingStride);
                }
                // PyTorch pads the odd one out after.
                kernel
                    .iter()
                    .zip(&dilation)
                    .map(|(k, d)| {
                        let total = d * (k - 1);
                        (total / 2, total - total / 2)
                    })
                    .collect()
            }
        };
        Ok(Window {
            kernel,
            stride,
            dilation,
            padding,
        })
    }

    /// Checks the arguments against an input of `n` spatial dimensions.
    pub fn output_shape(&self, n: usize, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        positive("in_channels", self.in_channels)?;
        positive("out_channels", self.out_channels)?;
        positive("groups", self.groups)?;
        if self.padding_mode != "zeros" {
            return Err(LayerError::PaddingMode(self.padding_mode.clone()));
        }
        if !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return Err(LayerError::Groups {
                in_channels: self.in_channels,
                out_channels: self.out_channels,
                groups: self.groups,
            });
        }
        spatial_input(n, input)?;
        if input[0] != self.in_channels {
            return Err(LayerError::Channels {
                arg: "in_channels",
                expected: self.in_channels,
                got: input[0],
                input: input.to_vec(),
            });
        }
        self.window(n)?
            .output_shape(self.out_channels, input, false)
    }

    pub fn parameters(&self, n: usize) -> u64 {
        let k: u64 = self
            .window(n)
            .map(|w| w.kernel.iter().map(|k| *k as u64).product())
            .unwrap_or(0);
        let o = self.out_channels as u64;
        o * (self.in_channels / self.groups.max(1)) as u64 * k + if self.bias { o } else { 0 }
    }

    fn weight_shape(&self, n: usize) -> Vec<usize> {
        let w = self.window(n).expect("validated");
        let mut s = vec![self.out_channels, self.in_channels / self.groups];
        s.extend(w.kernel);
        s
    }

    pub fn init1d(&self, init: &Initializer, device: &Device) -> Conv1d {
        let w = self.window(1).expect("validated");
        let mut conv = Conv1dConfig::new(self.in_channels, self.out_channels, w.kernel[0])
            .with_stride(w.stride[0])
            .with_dilation(w.dilation[0])
            .with_groups(self.groups)
            .with_bias(false)
            .with_padding(PaddingConfig1d::Explicit(w.padding[0].0, w.padding[0].1))
            .with_initializer(init.clone())
            .init(device);
        // Burn's Conv1d gives its bias no fan_out, which Xavier needs (a panic at
        // first use): make the bias here, with both fans.
        if self.bias {
            let k = w.kernel[0];
            let fan_in = self.in_channels / self.groups * k;
            let fan_out = self.out_channels / self.groups * k;
            conv.bias =
                Some(init.init_with([self.out_channels], Some(fan_in), Some(fan_out), device));
        }
        conv
    }

    pub fn init2d(&self, init: &Initializer, device: &Device) -> Conv2d {
        let w = self.window(2).expect("validated");
        Conv2dConfig::new(
            [self.in_channels, self.out_channels],
            [w.kernel[0], w.kernel[1]],
        )
        .with_stride([w.stride[0], w.stride[1]])
        .with_dilation([w.dilation[0], w.dilation[1]])
        .with_groups(self.groups)
        .with_bias(self.bias)
        .with_padding(PaddingConfig2d::Explicit(
            w.padding[0].0,
            w.padding[1].0,
            w.padding[0].1,
            w.padding[1].1,
        ))
        .with_initializer(init.clone())
        .init(device)
    }

    pub fn torch_tensors(&self, n: usize) -> Vec<(String, TorchShape)> {
        let mut t = vec![("weight".to_string(), self.weight_shape(n))];
        if self.bias {
            t.push(("bias".into(), vec![self.out_channels]));
        }
        t
    }

    pub fn import1d(&self, src: &mut Source, device: &Device) -> Result<Conv1d, Unmatched> {
        let mut conv = self.init1d(&Initializer::Zeros, device);
        let s = self.weight_shape(1);
        conv.weight = param(src.take("weight")?, [s[0], s[1], s[2]], device);
        if self.bias {
            conv.bias = Some(param(src.take("bias")?, [self.out_channels], device));
        }
        Ok(conv)
    }

    pub fn import2d(&self, src: &mut Source, device: &Device) -> Result<Conv2d, Unmatched> {
        let mut conv = self.init2d(&Initializer::Zeros, device);
        let s = self.weight_shape(2);
        conv.weight = param(src.take("weight")?, [s[0], s[1], s[2], s[3]], device);
        if self.bias {
            conv.bias = Some(param(src.take("bias")?, [self.out_channels], device));
        }
        Ok(conv)
    }
}
