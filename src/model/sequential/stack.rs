//! The Burn module of a layer stack ([`Sequential`]) and the activations that flow
//! between its layers ([`Act`], a tensor of rank 2 to 4, batch included).

use burn::prelude::*;

use super::Layer;
use crate::model::columns::{self, Team};

/// An activation between layers, by rank (batch included).
pub enum Act {
    R2(Tensor<2>),
    R3(Tensor<3>),
    R4(Tensor<4>),
}

impl Act {
    pub fn rank(&self) -> usize {
        match self {
            Act::R2(_) => 2,
            Act::R3(_) => 3,
            Act::R4(_) => 4,
        }
    }

    fn batch(&self) -> usize {
        match self {
            Act::R2(t) => t.dims()[0],
            Act::R3(t) => t.dims()[0],
            Act::R4(t) => t.dims()[0],
        }
    }

    /// Reshapes every instance to `instance` (a shape without the batch dimension).
    pub fn reshape(self, instance: &[usize]) -> Act {
        let b = self.batch();
        let mut dims = vec![b];
        dims.extend_from_slice(instance);
        fn to<const D: usize>(t: Tensor<D>, dims: &[usize]) -> Act {
            match *dims {
                [a, b] => Act::R2(t.reshape([a, b])),
                [a, b, c] => Act::R3(t.reshape([a, b, c])),
                [a, b, c, d] => Act::R4(t.reshape([a, b, c, d])),
                _ => unreachable!("instance ranks are 1 to 3 (checked at load)"),
            }
        }
        match self {
            Act::R2(t) => to(t, &dims),
            Act::R3(t) => to(t, &dims),
            Act::R4(t) => to(t, &dims),
        }
    }

    /// `[batch, ...]` -> `[batch, values]`.
    pub fn flatten(self) -> Tensor<2> {
        match self {
            Act::R2(t) => t,
            Act::R3(t) => t.flatten(1, 2),
            Act::R4(t) => t.flatten(1, 3),
        }
    }
}

/// The Burn module of a `sequential` config.
#[derive(Module, Debug)]
pub struct Sequential {
    layers: Vec<Layer>,
    #[module(skip)]
    input_shape: Vec<usize>,
    /// The last layer is a softmax / log_softmax / sigmoid head.
    #[module(skip)]
    head_layer: bool,
}

impl Sequential {
    pub(super) fn new(layers: Vec<Layer>, input_shape: Vec<usize>, head_layer: bool) -> Self {
        Self {
            layers,
            input_shape,
            head_layer,
        }
    }

    /// `[batch, prod(input_shape)]` -> `[batch, prod(output shape)]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.run(x, self.layers.len(), None)
    }

    /// [`forward`](Self::forward), its large 2-D dense layers split among `team`.
    pub fn forward_with(&self, x: Tensor<2>, team: Option<&dyn Team>) -> Tensor<2> {
        self.run(x, self.layers.len(), team)
    }

    /// [`forward`](Self::forward) without a trailing softmax / log_softmax /
    /// sigmoid head: the logits.
    pub fn forward_logits(&self, x: Tensor<2>) -> Tensor<2> {
        self.run(x, self.layers.len() - usize::from(self.head_layer), None)
    }

    fn run(&self, x: Tensor<2>, upto: usize, team: Option<&dyn Team>) -> Tensor<2> {
        let mut a = Act::R2(x).reshape(&self.input_shape);
        for layer in &self.layers[..upto] {
            a = match (layer, a) {
                (Layer::Linear(l), Act::R2(t)) if team.is_some() => {
                    Act::R2(columns::linear(l, t, team))
                }
                (layer, a) => layer.forward(a),
            };
        }
        a.flatten()
    }
}
