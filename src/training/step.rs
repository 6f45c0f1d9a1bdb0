//! One minibatch's gradients: the forward pass, the loss and the backward pass.
//!
//! On the CPU, when the loop runs in a rayon pool of more than one thread
//! (`training.threads`), a batch of at least [`MIN_PART_ROWS`] rows per thread is
//! cut by rows into one part per thread, and each part runs its whole forward and
//! backward pass single-threaded on a thread of its own (a [`ComputePool`]), with
//! its own copy of the parameter leaves (the same buffers, so its own autodiff
//! graph). Each part's mean loss is weighted by its share of the rows, so the
//! parts' gradients add up to the whole batch's. The training loop then runs on the
//! first part thread ([`BatchGrads::install`]), so that its own part and its share
//! of the optimizer step need no hand-over and no thread waits spinning beside it.
//!
//! A plain MLP's batch of at most `columns::MAX_ROWS` rows, when a layer is
//! large enough, shares each dense product among the threads instead
//! ([`columns`]: 1.3x to 1.9x one thread on the seed recipe). Other small batches
//! stay whole and let gemm split each multiply across the caller's pool.
//! A cut does not shrink a weight gradient (`x^T dy` has the layer's full
//! size at any row count), so below some tens of rows per part each part costs
//! nearly what the whole batch does: on the seed recipe (batch 32, 2 threads), cut
//! 0.95x one thread against 1.06x whole (mean of 4 runs each, issue 18).
//!
//! A batch is computed whole on a GPU (one launch does it) and for a network with
//! batch normalisation (its statistics are the whole batch's). The penalty is added
//! once, on the first part.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::blocks::Grads;
use super::columns;
use super::parts::{data_loss, penalty};
use super::spec::LossKind;
use crate::compute::ComputePool;
use crate::model::{Head, Net, NetConfig};

/// Rows below which a part is not worth a thread of its own (see the module doc).
pub const MIN_PART_ROWS: usize = 64;

/// Multiply-adds per part (rows x parameters) below which a cut costs more than it
/// saves (a hand-over is some tens of microseconds).
const MIN_PART_WORK: u64 = 1 << 20;

/// How long the part threads spin after a job before they sleep: longer than the
/// gaps between one step's hand-overs (see `ComputePool::warm`).
const WARM: std::time::Duration = std::time::Duration::from_micros(500);

/// What a batch's loss is made of.
pub struct LossTerms<'a> {
    pub loss: LossKind,
    pub head: Head,
    pub l1: f64,
    pub l2: f64,
    /// The autodiff device the network lives on.
    pub device: &'a Device,
}

/// The training rows a batch is gathered from (standardised, row-major).
pub struct Rows<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub width: usize,
}

impl Rows<'_> {
    /// The rows `batch` as an input tensor and its targets.
    fn gather(&self, batch: &[usize], device: &Device) -> (Tensor<2>, Vec<f32>) {
        let w = self.width;
        let mut xb = Vec::with_capacity(batch.len() * w);
        for &i in batch {
            xb.extend_from_slice(&self.x[i * w..(i + 1) * w]);
        }
        let yb = batch.iter().map(|&i| self.y[i]).collect();
        (
            Tensor::<2>::from_data(TensorData::new(xb, [batch.len(), w]), device),
            yb,
        )
    }
}

/// Computes batches' gradients, whole or in parts.
pub struct BatchGrads {
    /// The part threads, when batches may be cut.
    pool: Option<ComputePool>,
    parameters: u64,
}

impl BatchGrads {
    /// For `net` on `device` and batches of `batch_size` rows, in the rayon pool the
    /// caller runs in (its thread count is the number of parts; outside any pool,
    /// or when a full batch would not be cut, batches stay whole and no part
    /// threads are made).
    pub fn new(net: &NetConfig, device: &Device, batch_size: usize) -> Self {
        let threads = if rayon::current_thread_index().is_some() {
            rayon::current_num_threads()
        } else {
            1
        };
        let parameters = net.parameters();
        let cut = threads > 1
            && crate::device::is_flex(device)
            && !net.batch_statistics()
            && (parts_of(threads, batch_size, parameters) > 1
                || columns::applies(net, threads, batch_size));
        Self {
            pool: cut
                .then(|| ComputePool::named(threads, "kiln-train").ok())
                .flatten()
                .map(|pool| pool.warm(WARM)),
            parameters,
        }
    }

    /// The part threads, when batches are cut.
    pub fn pool(&self) -> Option<&ComputePool> {
        self.pool.as_ref()
    }

    /// Runs `f` on the first part thread when batches are cut (the loop that runs
    /// there computes its own part in place), else on the caller's thread.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// How many parts a batch of `n` rows is cut into.
    fn parts(&self, n: usize) -> usize {
        self.pool
            .as_ref()
            .map_or(1, |pool| parts_of(pool.threads(), n, self.parameters))
    }

    /// The gradients of `net`'s loss on the rows `batch` of `rows`, and the batch's
    /// mean data loss (penalty excluded).
    pub fn grads(
        &self,
        net: &Net,
        rows: &Rows,
        batch: &[usize],
        terms: &LossTerms,
    ) -> (f64, Grads) {
        if let (Some(pool), Net::Mlp(mlp)) = (self.pool.as_ref(), net) {
            let n = batch.len();
            if n <= columns::MAX_ROWS && columns::applies_to(mlp, pool.threads(), n) {
                let (x, y) = rows.gather(batch, terms.device);
                return columns::grads(mlp, x, y, terms, pool);
            }
        }
        let parts = self.parts(batch.len());
        let Some(pool) = self.pool.as_ref().filter(|_| parts > 1) else {
            let (loss, grads) = whole(net, rows, batch, terms);
            return (loss, grads.into());
        };
        let n = batch.len();
        let mut inputs = Vec::with_capacity(parts);
        let mut start = 0;
        for i in 0..parts {
            let size = n / parts + usize::from(i < n % parts);
            inputs.push((
                net.clone().map(&mut FreshLeaves),
                &batch[start..start + size],
            ));
            start += size;
        }
        let results = pool.run_each(inputs, |i, (part, idx)| {
            let (x, y) = rows.gather(idx, terms.device);
            let loss = data_loss(&part, x, y, terms.loss, terms.head, terms.device);
            let share = idx.len() as f64 / n as f64;
            let value = f64::from(loss.clone().into_scalar::<f32>()) * share;
            let mut loss = loss.mul_scalar(share);
            if i == 0 {
                loss = loss + penalty(&part, terms.l1, terms.l2, terms.device);
            }
            (value, GradientsParams::from_grads(loss.backward(), &part))
        });
        let mut total = 0.0;
        let mut grads = Vec::with_capacity(parts);
        for (value, g) in results {
            total += value;
            grads.push(g);
        }
        let mut merged = grads.remove(0);
        net.visit(&mut AddInto {
            into: &mut merged,
            from: &mut grads,
        });
        (total, merged.into())
    }
}

/// How many parts `threads` threads cut a batch of `n` rows of a network of
/// `parameters` into.
fn parts_of(threads: usize, n: usize, parameters: u64) -> usize {
    let by_work = (n as u64).saturating_mul(parameters) / MIN_PART_WORK;
    threads
        .min(n / MIN_PART_ROWS)
        .min(usize::try_from(by_work).unwrap_or(usize::MAX))
        .max(1)
}

/// The batch computed whole on the caller's thread.
pub(super) fn whole(
    net: &Net,
    rows: &Rows,
    batch: &[usize],
    terms: &LossTerms,
) -> (f64, GradientsParams) {
    let (x, y) = rows.gather(batch, terms.device);
    let loss = data_loss(net, x, y, terms.loss, terms.head, terms.device);
    let value = f64::from(loss.clone().into_scalar::<f32>());
    let loss = loss + penalty(net, terms.l1, terms.l2, terms.device);
    (value, GradientsParams::from_grads(loss.backward(), net))
}

/// Gives every parameter a new autodiff leaf over the same buffer, so a part's graph
/// is its own (parameter ids are kept: gradients are matched by them).
struct FreshLeaves;

impl ModuleMapper for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let tracked = tensor.is_require_grad();
        let fresh = Tensor::<D>::from_inner(tensor.inner());
        let fresh = if tracked { fresh.require_grad() } else { fresh };
        Param::from_mapped_value(id, fresh, mapper)
    }
}

/// Adds the gradients of `from` into `into`, parameter by parameter.
struct AddInto<'a> {
    into: &'a mut GradientsParams,
    from: &'a mut [GradientsParams],
}

impl ModuleVisitor for AddInto<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let id = param.id;
        let mut sum = self.into.remove::<D>(id);
        for g in self.from.iter_mut() {
            if let Some(t) = g.remove::<D>(id) {
                sum = Some(match sum {
                    Some(s) => s + t,
                    None => t,
                });
            }
        }
        if let Some(s) = sum {
            self.into.register(id, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::net::{ActivationKind, Architecture, MlpConfig};
    use crate::model::{Net, Task};
    use crate::training::data::SplitMix64;
    use burn::nn::Initializer;

    /// Every gradient, flattened in module order.
    fn flat(net: &Net, grads: &GradientsParams) -> Vec<f32> {
        struct All<'a>(&'a GradientsParams, Vec<f32>);
        impl ModuleVisitor for All<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                let g = self
                    .0
                    .get::<D>(p.id)
                    .expect("every parameter has a gradient");
                self.1.extend(g.into_data().try_into_vec::<f32>().unwrap());
            }
        }
        let mut all = All(grads, Vec::new());
        net.visit(&mut all);
        all.1
    }

    #[test]
    fn a_batch_cut_across_threads_has_the_whole_batchs_gradients_and_loss() {
        let config = NetConfig {
            task: Task::Classification,
            architecture: Architecture::Mlp(MlpConfig {
                input: 256,
                hidden: vec![512],
                output: 3,
                activation: ActivationKind::Relu,
            }),
            preprocess: None,
        };
        let device = Device::flex().autodiff();
        device.seed(3);
        let net = config.init(
            &Initializer::KaimingUniform {
                gain: 1.0,
                fan_out_only: false,
            },
            &device,
        );
        let mut rng = SplitMix64(9);
        let n = 2 * MIN_PART_ROWS + 5;
        let x: Vec<f32> = (0..n * 256)
            .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let y: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
        let rows = Rows {
            x: &x,
            y: &y,
            width: 256,
        };
        let terms = LossTerms {
            loss: LossKind::CrossEntropy,
            head: Head::Logits,
            l1: 1e-4,
            l2: 1e-3,
            device: &device,
        };
        let batch: Vec<usize> = (0..n).rev().collect();
        let (loss_whole, grads_whole) = whole(&net, &rows, &batch, &terms);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (parts, (loss_cut, grads_cut)) = pool.install(|| {
            let cut = BatchGrads::new(&config, &Device::flex(), n);
            let (loss, grads) = cut.grads(&net, &rows, &batch, &terms);
            (cut.parts(n), (loss, grads.joined()))
        });
        assert_eq!(parts, 2, "the batch is cut in two");
        assert!(
            (loss_whole - loss_cut).abs() < 1e-5,
            "{loss_whole} vs {loss_cut}"
        );
        let (a, b) = (flat(&net, &grads_whole), flat(&net, &grads_cut));
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        for (i, (g, h)) in a.iter().zip(&b).enumerate() {
            assert!(
                (g - h).abs() <= 1e-5 * scale.max(1.0),
                "gradient {i}: whole {g}, cut {h}"
            );
        }
        // Outside any pool, and for a tiny network, batches stay whole.
        assert_eq!(BatchGrads::new(&config, &Device::flex(), n).parts(n), 1);
    }
}
