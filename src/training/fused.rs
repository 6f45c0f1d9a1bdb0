//! A fused Adam / AdamW step for the CPU backend.
//!
//! Burn's generic optimizer spends about a dozen element-wise tensor operations per
//! parameter on Adam's arithmetic, each one allocating and walking memory. Here the
//! moments are plain vectors and one loop does all of it in place, per chunk of a
//! parameter buffer, on the trainer's rayon pool (so `training.threads = 2` splits
//! it). `into_data` hands over a uniquely owned CPU tensor without a copy.
//!
//! The arithmetic is PyTorch's (`torch.optim.Adam` / `AdamW`, `foreach=False`):
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`, with AdamW first
//! decaying `w *= 1 - lr wd`. GPU backends keep Burn's generic optimizer.

use std::collections::HashMap;

use burn::module::{ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rayon::prelude::*;

use crate::model::Net;

/// Elements per parallel chunk: big enough that the split costs nothing.
const CHUNK: usize = 1 << 15;

/// Adam (or AdamW with `weight_decay > 0`) with its per-parameter moments.
pub struct FusedAdam {
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    weight_decay: f32,
    moments: HashMap<ParamId, Moments>,
}

struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl FusedAdam {
    pub fn new(beta1: f64, beta2: f64, epsilon: f64, weight_decay: f64) -> Self {
        Self {
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            epsilon: epsilon as f32,
            weight_decay: weight_decay as f32,
            moments: HashMap::new(),
        }
    }

    /// Applies one step of `grads` to every parameter of `net` that has a gradient.
    pub fn step(&mut self, lr: f64, net: Net, mut grads: GradientsParams) -> Net {
        net.map(&mut Step {
            optim: self,
            lr: lr as f32,
            grads: &mut grads,
        })
    }

    /// Updates `w` in place from its gradient `g`.
    fn update(&mut self, id: ParamId, lr: f32, w: &mut [f32], g: &[f32]) {
        let moments = self.moments.entry(id).or_insert_with(|| Moments {
            m: vec![0.0; w.len()],
            v: vec![0.0; w.len()],
            t: 0,
        });
        moments.t += 1;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
        let step_size = lr / (1.0 - b1.powi(moments.t));
        let bc2_sqrt = (1.0 - b2.powi(moments.t)).sqrt();
        let decay = 1.0 - lr * self.weight_decay;
        let kernel = |(((w, g), m), v): Chunks| {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w = *w * decay - step_size * *m / (v.sqrt() / bc2_sqrt + eps);
            }
        };
        let Moments { m, v, .. } = moments;
        if w.len() > CHUNK && rayon::current_num_threads() > 1 {
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(kernel);
        } else {
            w.chunks_mut(CHUNK)
                .zip(g.chunks(CHUNK))
                .zip(m.chunks_mut(CHUNK))
                .zip(v.chunks_mut(CHUNK))
                .for_each(kernel);
        }
    }
}

/// One chunk of a parameter, its gradient and its two moments, as zipped.
type Chunks<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);

/// The module walk of one step.
struct Step<'a> {
    optim: &'a mut FusedAdam,
    lr: f32,
    grads: &'a mut GradientsParams,
}

impl ModuleMapper for Step<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let strategy = tensor.gradient_checkpointing_strategy();
        let inner = tensor.inner();
        let device = inner.device();
        let shape = inner.shape();
        let mut w = inner
            .into_data()
            .try_into_vec::<f32>()
            .expect("parameters are f32");
        let g = grad
            .into_data()
            .try_into_vec::<f32>()
            .expect("gradients are f32");
        self.optim.update(id, self.lr, &mut w, &g);
        let mut updated =
            Tensor::from_inner(Tensor::<D>::from_data(TensorData::new(w, shape), &device));
        if let Some(strategy) = strategy {
            updated = updated.with_gradient_checkpointing_strategy(strategy);
        }
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}
