//! A fused Adam / AdamW step for the CPU backend.
//!
//! Burn's generic optimizer spends about a dozen element-wise tensor operations per
//! parameter on Adam's arithmetic, each one allocating and walking memory. Here the
//! moments are plain vectors and one loop does all of it in place, per chunk of a
//! parameter buffer, on the trainer's rayon pool (so `training.threads = 2` splits
//! it). The parameter is updated inside its own CPU buffer and the gradient read
//! where it lies (no copy either way, when the buffers are contiguous and the
//! parameter's is not shared), and the loop is compiled for the SIMD features the
//! CPU has, picked at run time (`pulp`), since the crate itself targets baseline
//! x86-64.
//!
//! The arithmetic is PyTorch's (`torch.optim.Adam` / `AdamW`, `foreach=False`):
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`, with AdamW first
//! decaying `w *= 1 - lr wd`. GPU backends keep Burn's generic optimizer.

use std::collections::HashMap;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::module::{ModuleMapper, Param, ParamId};
use burn::prelude::*;
use rayon::prelude::*;

use super::blocks::Grads;
use crate::compute::ComputePool;
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
    /// With `pool`, each parameter's loop is shared among its threads (the caller
    /// runs on its first); without, among the rayon pool the caller runs in.
    pub fn step(&mut self, lr: f64, net: Net, mut grads: Grads, pool: Option<&ComputePool>) -> Net {
        net.map(&mut Step {
            optim: self,
            lr: lr as f32,
            grads: &mut grads,
            pool,
        })
    }

    /// Updates `w` in place from its gradient, given in `pieces` that cover it in
    /// order: one piece is shared among `pool`'s threads by chunks; several (row
    /// blocks, one per thread) are each updated on their own thread.
    fn update(
        &mut self,
        id: ParamId,
        lr: f32,
        w: &mut [f32],
        pieces: &[&[f32]],
        pool: Option<&ComputePool>,
    ) {
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
        let kernel = AdamChunk {
            b1,
            b2,
            eps,
            step_size,
            bc2_sqrt,
            decay,
        };
        let Moments { m, v, .. } = moments;
        let run = |(((w, g), m), v): Chunks| pulp::Arch::new().dispatch(kernel.on(w, g, m, v));
        if let [g] = pieces {
            update_whole(w, g, m, v, pool, run);
            return;
        }
        let (mut w, mut m, mut v) = (&mut *w, &mut m[..], &mut v[..]);
        let mut parts: Vec<Chunks> = Vec::with_capacity(pieces.len());
        for g in pieces {
            let (wh, wt) = std::mem::take(&mut w).split_at_mut(g.len());
            let (mh, mt) = std::mem::take(&mut m).split_at_mut(g.len());
            let (vh, vt) = std::mem::take(&mut v).split_at_mut(g.len());
            parts.push((((wh, g), mh), vh));
            (w, m, v) = (wt, mt, vt);
        }
        match pool.filter(|p| p.threads() >= parts.len()) {
            Some(pool) => {
                pool.run_each(parts, |_, part| run(part));
            }
            None => parts.into_iter().for_each(run),
        }
    }
}

/// One whole gradient's update: shared among `pool`'s threads by chunks, else
/// among the rayon pool the caller runs in, else on the caller's thread.
fn update_whole(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    pool: Option<&ComputePool>,
    run: impl Fn(Chunks) + Sync + Send,
) {
    if let Some(pool) = pool.filter(|p| p.threads() > 1 && w.len() > CHUNK) {
        // One contiguous range per thread, cut at chunk bounds.
        let chunks = w.len().div_ceil(CHUNK);
        let per = chunks.div_ceil(pool.threads()) * CHUNK;
        let ranges: Vec<Chunks> = w
            .chunks_mut(per)
            .zip(g.chunks(per))
            .zip(m.chunks_mut(per))
            .zip(v.chunks_mut(per))
            .collect();
        pool.run_each(ranges, |_, part| run(part));
    } else if w.len() > CHUNK && rayon::current_num_threads() > 1 {
        w.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(run);
    } else {
        w.chunks_mut(CHUNK)
            .zip(g.chunks(CHUNK))
            .zip(m.chunks_mut(CHUNK))
            .zip(v.chunks_mut(CHUNK))
            .for_each(run);
    }
}

/// One step's constants.
#[derive(Clone, Copy)]
struct AdamChunk {
    b1: f32,
    b2: f32,
    eps: f32,
    step_size: f32,
    bc2_sqrt: f32,
    decay: f32,
}

impl AdamChunk {
    fn on<'a>(
        self,
        w: &'a mut [f32],
        g: &'a [f32],
        m: &'a mut [f32],
        v: &'a mut [f32],
    ) -> AdamSlices<'a> {
        AdamSlices {
            k: self,
            w,
            g,
            m,
            v,
        }
    }
}

/// The loop over one chunk, run by `pulp` inside a function compiled for the CPU's
/// SIMD features (AVX-512, AVX2+FMA, or the baseline), so it vectorises to them.
struct AdamSlices<'a> {
    k: AdamChunk,
    w: &'a mut [f32],
    g: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
}

impl pulp::WithSimd for AdamSlices<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let AdamChunk {
            b1,
            b2,
            eps,
            step_size,
            bc2_sqrt,
            decay,
        } = self.k;
        for (((w, &g), m), v) in self
            .w
            .iter_mut()
            .zip(self.g)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *w = *w * decay - step_size * *m / (v.sqrt() / bc2_sqrt + eps);
        }
    }
}

/// One chunk of a parameter, its gradient and its two moments, as zipped.
type Chunks<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);

/// The module walk of one step.
struct Step<'a> {
    optim: &'a mut FusedAdam,
    lr: f32,
    grads: &'a mut Grads,
    pool: Option<&'a ComputePool>,
}

impl Step<'_> {
    /// Updates `w` from its gradient `g` (whole, or row blocks that cover it in
    /// order) inside `w`'s buffer when it can (contiguous, not shared, every piece
    /// contiguous and `w`'s length together), on one copy of `w` when only shared;
    /// otherwise on contiguous copies.
    fn update_in_place(
        &mut self,
        id: ParamId,
        mut w: FlexTensor,
        g: Vec<FlexTensor>,
    ) -> FlexTensor {
        let whole = w.layout().contiguous_offsets() == Some((0, w.layout().shape().num_elements()));
        let pieces: Option<Vec<&[f32]>> = g.iter().map(|p| p.as_slice::<f32>()).collect();
        if whole
            && let Some(pieces) = pieces
            && (pieces.len() > 1 || w.layout().shape() == g[0].layout().shape())
        {
            let total: usize = pieces.iter().map(|p| p.len()).sum();
            if let Some(weights) = w.try_storage_mut::<f32>()
                && weights.len() == total
            {
                self.optim.update(id, self.lr, weights, &pieces, self.pool);
                return w;
            }
            // Shared (a snapshot of the best weights holds it): one copy.
            if let Some(weights) = w.as_slice::<f32>()
                && weights.len() == total
            {
                let mut values = weights.to_vec();
                self.optim
                    .update(id, self.lr, &mut values, &pieces, self.pool);
                let shape = w.layout().shape().clone();
                return FlexTensor::from_data(TensorData::new(values, shape));
            }
        }
        // A view, a shared buffer or a dtype this loop does not take: work on copies.
        let w = w.to_contiguous();
        let shape = w.layout().shape().clone();
        let mut values = w
            .into_data()
            .try_into_vec::<f32>()
            .expect("parameters are f32");
        let mut grad = Vec::with_capacity(values.len());
        for piece in g {
            grad.extend(
                piece
                    .to_contiguous()
                    .into_data()
                    .try_into_vec::<f32>()
                    .expect("gradients are f32"),
            );
        }
        self.optim
            .update(id, self.lr, &mut values, &[&grad], self.pool);
        FlexTensor::from_data(TensorData::new(values, shape))
    }
}

impl ModuleMapper for Step<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let grad: Vec<FlexTensor> = match self.grads.take_blocks(id) {
            Some(blocks) => blocks
                .into_iter()
                .map(|b| b.try_into_primitive::<Flex>().ok())
                .collect::<Option<_>>()
                .expect("the fused optimizer runs on the CPU backend only"),
            None => match self.grads.take_whole::<D>(id) {
                Some(g) => vec![
                    g.try_into_primitive::<Flex>()
                        .expect("the fused optimizer runs on the CPU backend only"),
                ],
                None => return Param::from_mapped_value(id, tensor, mapper),
            },
        };
        let require_grad = tensor.is_require_grad();
        let strategy = tensor.gradient_checkpointing_strategy();
        let inner = tensor.inner();
        let w = inner
            .try_into_primitive::<Flex>()
            .expect("the fused optimizer runs on the CPU backend only");
        let mut updated = Tensor::from_inner(Tensor::<D>::from_primitive::<Flex>(
            self.update_in_place(id, w, grad),
        ));
        if let Some(strategy) = strategy {
            updated = updated.with_gradient_checkpointing_strategy(strategy);
        }
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}
