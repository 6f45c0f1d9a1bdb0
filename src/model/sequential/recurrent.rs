//! `lstm` and `gru`: `[T, input_size]` -> `[T, hidden_size * directions]`, the
//! whole output sequence (follow with `select` or pooling for one vector).
//!
//! Burn keeps one `GateController` per gate, each with an input and a hidden
//! `Linear`; PyTorch packs the gates' rows into one matrix (`weight_ih_l0` is
//! `[4H, in]` with rows i, f, g, o for an LSTM; `[3H, in]` with rows r, z, n for a
//! GRU). The import slices those rows apart. Burn's GRU with `reset_after` computes
//! PyTorch's `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`.

use burn::nn::{
    BiGru, BiGruConfig, BiLstm, BiLstmConfig, Dropout, DropoutConfig, GateController, Gru,
    GruConfig, Initializer, Lstm, LstmConfig,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::args::{positive, probability, yes};
use super::dense::linear_from_rows;
use super::error::Unmatched;
use super::layer_error::LayerError;
use super::torch::{Source, TorchShape};

fn one() -> usize {
    1
}

/// Most stacked layers in one `lstm` / `gru`.
pub const MAX_LAYERS: usize = 16;
/// Longest sequence a recurrent layer steps through (one step at a time).
pub const MAX_STEPS: usize = 4096;

/// `nn.LSTM` / `nn.GRU` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnArgs {
    pub input_size: usize,
    pub hidden_size: usize,
    #[serde(default = "one")]
    pub num_layers: usize,
    #[serde(default = "yes")]
    pub bias: bool,
    /// kiln's tensors are always batch-first; `false` is accepted (an instance is
    /// still `[T, features]`) so a PyTorch definition can be copied as it is.
    #[serde(default = "yes")]
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last (training only).
    #[serde(default)]
    pub dropout: f64,
    #[serde(default)]
    pub bidirectional: bool,
    /// LSTM projections are not supported (only 0).
    #[serde(default)]
    pub proj_size: usize,
}

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

impl RnnArgs {
    fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    fn layer_input(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.hidden_size * self.directions()
        }
    }

    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, LayerError> {
        positive("input_size", self.input_size)?;
        positive("hidden_size", self.hidden_size)?;
        if self.num_layers == 0 || self.num_layers > MAX_LAYERS {
            return Err(LayerError::NumLayers(self.num_layers));
        }
        probability("dropout", self.dropout)?;
        if self.proj_size != 0 {
            return Err(LayerError::ProjSize(self.proj_size));
        }
        if input.len() != 2 {
            return Err(LayerError::Rank {
                takes: "sequences [T, input_size]",
                input: input.to_vec(),
            });
        }
        if input[0] > MAX_STEPS {
            return Err(LayerError::TooManySteps(input[0]));
        }
        if input[1] != self.input_size {
            return Err(LayerError::StepFeatures {
                expected: self.input_size,
                got: input[1],
                input: input.to_vec(),
            });
        }
        Ok(vec![input[0], self.hidden_size * self.directions()])
    }

    pub fn parameters(&self, cell: Cell) -> u64 {
        let (g, h) = (cell.gates() as u64, self.hidden_size as u64);
        (0..self.num_layers)
            .map(|l| {
                let per_dir = g * h * (self.layer_input(l) as u64 + h)
                    + if self.bias { 2 * g * h } else { 0 };
                per_dir * self.directions() as u64
            })
            .sum()
    }

    pub fn init(&self, cell: Cell, init: &Initializer, device: &Device) -> Recurrent {
        let layers = (0..self.num_layers)
            .map(|l| {
                let (i, h) = (self.layer_input(l), self.hidden_size);
                match (cell, self.bidirectional) {
                    (Cell::Lstm, false) => RnnLayer::Lstm(
                        LstmConfig::new(i, h, self.bias)
                            .with_initializer(init.clone())
                            .with_batch_first(true)
                            .init(device),
                    ),
                    (Cell::Lstm, true) => RnnLayer::BiLstm(
                        BiLstmConfig::new(i, h, self.bias)
                            .with_initializer(init.clone())
                            .with_batch_first(true)
                            .init(device),
                    ),
                    (Cell::Gru, false) => RnnLayer::Gru(
                        GruConfig::new(i, h, self.bias)
                            .with_reset_after(true)
                            .with_initializer(init.clone())
                            .init(device),
                    ),
                    (Cell::Gru, true) => RnnLayer::BiGru(
                        BiGruConfig::new(i, h, self.bias)
                            .with_reset_after(true)
                            .with_batch_first(true)
                            .with_initializer(init.clone())
                            .init(device),
                    ),
                }
            })
            .collect();
        Recurrent {
            layers,
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }

    /// PyTorch's parameter names: `weight_ih_l0`, `bias_hh_l1_reverse`, ...
    pub fn torch_tensors(&self, cell: Cell) -> Vec<(String, TorchShape)> {
        let gh = cell.gates() * self.hidden_size;
        let mut t = Vec::new();
        for l in 0..self.num_layers {
            for sfx in self.suffixes() {
                t.push((
                    format!("weight_ih_l{l}{sfx}"),
                    vec![gh, self.layer_input(l)],
                ));
                t.push((format!("weight_hh_l{l}{sfx}"), vec![gh, self.hidden_size]));
                if self.bias {
                    t.push((format!("bias_ih_l{l}{sfx}"), vec![gh]));
                    t.push((format!("bias_hh_l{l}{sfx}"), vec![gh]));
                }
            }
        }
        t
    }

    fn suffixes(&self) -> &'static [&'static str] {
        if self.bidirectional {
            &["", "_reverse"]
        } else {
            &[""]
        }
    }

    pub fn import(
        &self,
        cell: Cell,
        src: &mut Source,
        device: &Device,
    ) -> Result<Recurrent, Unmatched> {
        let mut rnn = self.init(cell, &Initializer::Zeros, device);
        for (l, layer) in rnn.layers.iter_mut().enumerate() {
            let mut gates = |sfx: &str| -> Result<Vec<GateController>, Unmatched> {
                let w_ih = src.take(&format!("weight_ih_l{l}{sfx}"))?;
                let w_hh = src.take(&format!("weight_hh_l{l}{sfx}"))?;
                let (b_ih, b_hh) = if self.bias {
                    (
                        Some(src.take(&format!("bias_ih_l{l}{sfx}"))?),
                        Some(src.take(&format!("bias_hh_l{l}{sfx}"))?),
                    )
                } else {
                    (None, None)
                };
                let (i, h) = (self.layer_input(l), self.hidden_size);
                Ok((0..cell.gates())
                    .map(|g| {
                        let rows = |w: &[f32], width: usize| {
                            w[g * h * width..(g + 1) * h * width].to_vec()
                        };
                        let part = |b: &Option<Vec<f32>>| {
                            b.as_ref().map(|b| b[g * h..(g + 1) * h].to_vec())
                        };
                        GateController {
                            input_transform: linear_from_rows(
                                &rows(&w_ih, i),
                                part(&b_ih),
                                i,
                                h,
                                device,
                            ),
                            hidden_transform: linear_from_rows(
                                &rows(&w_hh, h),
                                part(&b_hh),
                                h,
                                h,
                                device,
                            ),
                        }
                    })
                    .collect())
            };
            match layer {
                RnnLayer::Lstm(m) => set_lstm(m, gates("")?),
                RnnLayer::BiLstm(m) => {
                    set_lstm(&mut m.forward, gates("")?);
                    set_lstm(&mut m.reverse, gates("_reverse")?);
                }
                RnnLayer::Gru(m) => set_gru(m, gates("")?),
                RnnLayer::BiGru(m) => {
                    set_gru(&mut m.forward, gates("")?);
                    set_gru(&mut m.reverse, gates("_reverse")?);
                }
            }
        }
        Ok(rnn)
    }
}

/// PyTorch's LSTM gate order: input, forget, cell (g), output.
fn set_lstm(m: &mut Lstm, gates: Vec<GateController>) {
    let [i, f, g, o]: [GateController; 4] = gates.try_into().expect("four gates");
    m.input_gate = i;
    m.forget_gate = Some(f);
    m.cell_gate = g;
    m.output_gate = o;
}

/// PyTorch's GRU gate order: reset, update (z), new (n).
fn set_gru(m: &mut Gru, gates: Vec<GateController>) {
    let [r, z, n]: [GateController; 3] = gates.try_into().expect("three gates");
    m.reset_gate = r;
    m.update_gate = z;
    m.new_gate = n;
}

/// One stacked layer of a recurrent net.
// A few per layer, built once: boxing the bidirectional variants would only add an
// indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum RnnLayer {
    Lstm(Lstm),
    BiLstm(BiLstm),
    Gru(Gru),
    BiGru(BiGru),
}

/// A (stacked, possibly bidirectional) LSTM or GRU.
#[derive(Module, Debug)]
pub struct Recurrent {
    pub layers: Vec<RnnLayer>,
    pub dropout: Dropout,
}

impl Recurrent {
    /// `[batch, T, input_size]` -> `[batch, T, hidden * directions]`.
    pub fn forward(&self, mut x: Tensor<3>) -> Tensor<3> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = match layer {
                RnnLayer::Lstm(m) => m.forward(x, None).0,
                RnnLayer::BiLstm(m) => m.forward(x, None).0,
                RnnLayer::Gru(m) => m.forward(x, None),
                RnnLayer::BiGru(m) => m.forward(x, None).0,
            };
            if i < last {
                x = self.dropout.forward(x);
            }
        }
        x
    }
}
