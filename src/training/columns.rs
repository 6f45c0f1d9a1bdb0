//! A plain MLP's batch gradients computed layer by layer, each large dense layer's
//! three products shared among the trainer's threads (the CPU, batches of at most
//! [`MAX_ROWS`] rows).
//!
//! Autodiff runs a backward pass on one thread, and cutting a small batch by rows
//! gives every thread the whole weight matrix to stream (see `step`): on the seed
//! recipe (batch 32), 2 threads reached about 1.05x one. Here each product of a
//! layer that `model::columns` would split is cut so that every thread reads only
//! its share of the weights and writes only its share of their gradient:
//! - the forward product `z = h W` by `W`'s output columns;
//! - the weight gradient `dW = h^T dz` by `dW`'s rows, left in those row blocks
//!   (`blocks::Grads`): the fused optimizer updates each block's rows on the
//!   thread count that made it, so the gradient is never joined (2 MB a step on
//!   the seed MLP);
//! - the input gradient `dh = dz W^T` by `W`'s rows (`dh`'s columns).
//!
//! A step hands work over some ten times, so the pool's threads spin between
//! jobs (`ComputePool::warm`). The small parts stay with autodiff, so they are the
//! very code the autodiff path runs: the loss of the outputs (`parts::loss_of`)
//! and each activation's derivative (on a leaf of the batch's pre-activations).
//! The penalty's gradient is `l1 sign(w) + 2 l2 w`. The gradients match autodiff's
//! (tests).

use std::ops::Range;

use burn::prelude::*;

use super::blocks::Grads;
use super::parts::loss_of;
use super::step::LossTerms;
use crate::compute::ComputePool;
use crate::model::NetConfig;
use crate::model::columns::{slices, splits_shape};
use crate::model::net::{ActivationKind, Architecture, Mlp};

/// Batches above this many rows are cut by rows instead (each part's whole weight
/// costs little against many rows; the forward pass's bound, measured alike).
pub const MAX_ROWS: usize = crate::compute::MAX_COLUMN_ROWS;

/// Whether `net`'s batches of `rows` rows are computed here by `threads` threads:
/// a plain MLP with a layer worth splitting.
pub fn applies(net: &NetConfig, threads: usize, rows: usize) -> bool {
    let Architecture::Mlp(mlp) = &net.architecture else {
        return false;
    };
    let widths: Vec<usize> = std::iter::once(mlp.input)
        .chain(mlp.hidden.iter().copied())
        .chain(std::iter::once(mlp.output))
        .collect();
    rows <= MAX_ROWS && widths.windows(2).any(|w| splits_shape(w[0], w[1], threads))
}

/// [`applies`] for a built network.
pub fn applies_to(mlp: &Mlp, threads: usize, rows: usize) -> bool {
    rows <= MAX_ROWS
        && mlp.layers().iter().any(|l| {
            let [inputs, outputs] = l.weight.dims();
            splits_shape(inputs, outputs, threads)
        })
}

/// One dense layer's parameters as CPU tensors.
struct Dense {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    inputs: usize,
    outputs: usize,
}

/// The gradients of `mlp`'s loss on inputs `x` (`[rows, inputs]`) with targets
/// `y`, penalty included, and the mean data loss.
pub fn grads(
    mlp: &Mlp,
    x: Tensor<2>,
    y: Vec<f32>,
    terms: &LossTerms,
    pool: &ComputePool,
) -> (f64, Grads) {
    let layers: Vec<Dense> = mlp
        .layers()
        .iter()
        .map(|l| {
            let [inputs, outputs] = l.weight.dims();
            Dense {
                weight: l.weight.val().inner(),
                bias: l.bias.as_ref().map(|b| b.val().inner()),
                inputs,
                outputs,
            }
        })
        .collect();
    let activation = mlp.activation();
    let threads = pool.threads();
    let n = x.dims()[0];
    let last = layers.len() - 1;

    // Forward: every layer's input (for its weight gradient) and every hidden
    // layer's pre-activation (for the activation's derivative), left in the column
    // parts that made it: the same thread takes the same columns back.
    let mut inputs: Vec<Tensor<2>> = Vec::with_capacity(layers.len());
    let mut pre: Vec<Vec<Tensor<2>>> = Vec::with_capacity(last);
    let mut h = x.inner();
    for (i, layer) in layers.iter().enumerate() {
        let split = splits_shape(layer.inputs, layer.outputs, threads);
        let (w, b) = (&layer.weight, &layer.bias);
        // Each part: its columns of the pre-activation and of the activation.
        let parts = side_by_side(pool, layer.outputs, split, |_, r| {
            let mut z = h
                .clone()
                .matmul(w.clone().slice([0..layer.inputs, r.clone()]));
            if let Some(b) = b {
                z = z + b.clone().slice([r]).unsqueeze::<2>();
            }
            let a = (i < last).then(|| activation.apply(z.clone()));
            (z, a)
        });
        let (z, a): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        let next = match a.into_iter().collect::<Option<Vec<_>>>() {
            Some(a) => join(a),
            None => join(z.clone()),
        };
        inputs.push(std::mem::replace(&mut h, next));
        if i < last {
            pre.push(z);
        }
    }

    // The loss's derivative by the outputs, on a leaf.
    let out = h.autodiff().require_grad();
    let loss = loss_of(out.clone(), y, terms.loss, terms.head, terms.device);
    let value = f64::from(loss.clone().into_scalar::<f32>());
    let mut dz = out
        .grad(&loss.backward())
        .expect("the outputs are a leaf of the loss");

    let mut grads = Grads::default();
    for (i, layer) in layers.iter().enumerate().rev() {
        let l = &mlp.layers()[i];
        let (width, outs) = (layer.inputs, layer.outputs);
        let split = splits_shape(width, outs, threads);
        // dW = h^T dz, each thread computing its own rows (left in blocks).
        let ht = inputs[i].clone().transpose();
        let w = &layer.weight;
        let block = |r: Range<usize>| {
            let g = ht.clone().slice([r.clone(), 0..n]).matmul(dz.clone());
            penalized(g, w.clone().slice([r, 0..outs]), terms)
        };
        if split {
            let blocks = pool.run_each(ranges(width, threads, true), |_, r| block(r));
            grads.register_blocks(l.weight.id, blocks);
        } else {
            grads.register(l.weight.id, block(0..width));
        }
        if let (Some(param), Some(b)) = (&l.bias, &layer.bias) {
            let db = dz.clone().sum_dim(0).reshape([outs]);
            grads.register(param.id, penalized(db, b.clone(), terms));
        }
        if i == 0 {
            break;
        }
        // dh = dz W^T, each thread computing the columns of its rows of W, and
        // those columns of the previous layer's dz (the activation is elementwise).
        let w = &layer.weight;
        // The previous layer's pre-activation parts, when cut as these columns are.
        let z = std::mem::take(&mut pre[i - 1]);
        let z = if z.len() == ranges(width, threads, split).len() {
            z
        } else {
            vec![join(z)]
        };
        dz = join(side_by_side(pool, width, split, |k, r| {
            let dh = dz
                .clone()
                .matmul(w.clone().slice([r.clone(), 0..outs]).transpose());
            let z = match &z[..] {
                [whole] if r.len() < width => whole.clone().slice([0..n, r]),
                parts => parts[k].clone(),
            };
            activation_grad(activation, z, dh)
        }));
    }
    (value, grads)
}

/// `count` cut into one aligned range per thread when `split`, else one range.
fn ranges(count: usize, threads: usize, split: bool) -> Vec<Range<usize>> {
    if split {
        slices(count, threads)
    } else {
        std::iter::once(0..count).collect()
    }
}

/// `part(k, r)` for the `k`-th column range `r` of a matrix `width` wide: one
/// range per thread when `split` (computed all at once), else the whole width in
/// place.
fn side_by_side<T: Send>(
    pool: &ComputePool,
    width: usize,
    split: bool,
    part: impl Fn(usize, Range<usize>) -> T + Sync,
) -> Vec<T> {
    let ranges = ranges(width, pool.threads(), split);
    if ranges.len() == 1 {
        return vec![part(0, 0..width)];
    }
    pool.run_each(ranges, part)
}

/// Column blocks joined side by side.
fn join(mut parts: Vec<Tensor<2>>) -> Tensor<2> {
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Tensor::cat(parts, 1)
    }
}

/// `dh` through the activation at pre-activations `z`: autodiff on a leaf of `z`.
fn activation_grad(activation: ActivationKind, z: Tensor<2>, dh: Tensor<2>) -> Tensor<2> {
    let leaf = z.autodiff().require_grad();
    let total = (activation.apply(leaf.clone()) * dh.autodiff()).sum();
    leaf.grad(&total.backward())
        .expect("the pre-activations are a leaf")
}

/// `g` plus the penalty's gradient at the parameter's values `w`:
/// `l1 sign(w) + 2 l2 w`.
fn penalized<const D: usize>(g: Tensor<D>, w: Tensor<D>, terms: &LossTerms) -> Tensor<D> {
    let mut g = g;
    if terms.l1 > 0.0 {
        g = g + w.clone().sign().mul_scalar(terms.l1);
    }
    if terms.l2 > 0.0 {
        g = g + w.mul_scalar(2.0 * terms.l2);
    }
    g
}

#[cfg(test)]
mod tests;
