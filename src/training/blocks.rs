//! A batch's gradients as the optimizer takes them: whole tensors, and weight
//! gradients that the trainer's threads left in row blocks (one block per thread,
//! in row order, `training::columns`). The fused optimizer updates each block's
//! rows where the block lies, on the thread count that made it; any other
//! optimizer, and gradient clipping, take the blocks joined.

use std::collections::HashMap;

use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::prelude::*;

/// One batch's gradients.
#[derive(Default)]
pub struct Grads {
    whole: GradientsParams,
    blocks: HashMap<ParamId, Vec<Tensor<2>>>,
}

impl From<GradientsParams> for Grads {
    fn from(whole: GradientsParams) -> Self {
        Self {
            whole,
            blocks: HashMap::new(),
        }
    }
}

impl Grads {
    /// Registers `g` as the gradient of parameter `id`.
    pub fn register<const D: usize>(&mut self, id: ParamId, g: Tensor<D>) {
        self.whole.register(id, g);
    }

    /// Registers the row blocks of a 2-D parameter's gradient, in row order.
    pub fn register_blocks(&mut self, id: ParamId, blocks: Vec<Tensor<2>>) {
        self.blocks.insert(id, blocks);
    }

    /// The row blocks of parameter `id`'s gradient, when it was left in blocks.
    pub fn take_blocks(&mut self, id: ParamId) -> Option<Vec<Tensor<2>>> {
        self.blocks.remove(&id)
    }

    /// The whole gradient of parameter `id`, when it was not left in blocks.
    pub fn take_whole<const D: usize>(&mut self, id: ParamId) -> Option<Tensor<D>> {
        self.whole.remove::<D>(id)
    }

    /// Every gradient as one tensor per parameter.
    pub fn joined(mut self) -> GradientsParams {
        for (id, blocks) in std::mem::take(&mut self.blocks) {
            self.whole.register(id, Tensor::cat(blocks, 0));
        }
        self.whole
    }
}
