//! What the recipe's choices become in Burn: the initializer, the optimizer, the
//! loss of a batch, and the L1/L2 penalty.

use burn::module::{ModuleVisitor, Param};
use burn::nn::Initializer;
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdaGradConfig, AdamConfig, AdamWConfig, RmsPropConfig, SgdConfig};
use burn::prelude::*;

use super::blocks::Grads;
use super::fused::FusedAdam;
use super::spec::{InitSpec, LossKind, OptimizerSpec};
use crate::compute::ComputePool;
use crate::model::{Head, Net};

pub fn initializer(spec: &InitSpec) -> Initializer {
    match *spec {
        InitSpec::Normal { mean, std } => Initializer::Normal { mean, std },
        InitSpec::Uniform { a } => Initializer::Uniform { min: -a, max: a },
        InitSpec::Xavier => Initializer::XavierUniform { gain: 1.0 },
        InitSpec::Kaiming => Initializer::KaimingUniform {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: false,
        },
    }
}

/// The optimizer that applies a recipe's updates.
pub enum Stepper {
    /// Burn's generic optimizer (every backend, every kind).
    Burn(burn::optim::ModuleOptimizer),
    /// Adam / AdamW in one fused pass per parameter (CPU only).
    Fused(FusedAdam),
}

impl Stepper {
    /// Applies one step; the fused step shares its arithmetic among `pool`'s
    /// threads when there is one.
    pub fn step(&mut self, lr: f64, net: Net, grads: Grads, pool: Option<&ComputePool>) -> Net {
        match self {
            Self::Burn(optim) => optim.step(lr, net, grads.joined()),
            Self::Fused(optim) => optim.step(lr, net, grads, pool),
        }
    }
}

/// The optimizer for `spec` on `device`: Adam and AdamW are fused on the CPU.
pub fn optimizer(spec: &OptimizerSpec, device: &Device) -> Stepper {
    if crate::device::is_flex(device) {
        match *spec {
            OptimizerSpec::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            } => return Stepper::Fused(FusedAdam::new(beta1, beta2, epsilon, 0.0)),
            OptimizerSpec::Adamw {
                beta1,
                beta2,
                epsilon,
                weight_decay,
                ..
            } => return Stepper::Fused(FusedAdam::new(beta1, beta2, epsilon, weight_decay)),
            _ => {}
        }
    }
    Stepper::Burn(generic_optimizer(spec))
}

/// Burn's optimizer for `spec`.
pub fn generic_optimizer(spec: &OptimizerSpec) -> burn::optim::ModuleOptimizer {
    match *spec {
        OptimizerSpec::Sgd { .. } => SgdConfig::new().init(),
        OptimizerSpec::Momentum {
            momentum,
            dampening,
            nesterov,
            ..
        } => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(dampening)
                    .with_nesterov(nesterov),
            ))
            .init(),
        OptimizerSpec::Adagrad {
            lr_decay, epsilon, ..
        } => AdaGradConfig::new()
            .with_lr_decay(lr_decay)
            .with_epsilon(epsilon as f32)
            .init(),
        OptimizerSpec::Rmsprop {
            alpha,
            epsilon,
            momentum,
            centered,
            ..
        } => RmsPropConfig::new()
            .with_alpha(alpha as f32)
            .with_epsilon(epsilon as f32)
            .with_momentum(momentum as f32)
            .with_centered(centered)
            .init(),
        OptimizerSpec::Adam {
            beta1,
            beta2,
            epsilon,
            ..
        } => AdamConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(epsilon as f32)
            .init(),
        OptimizerSpec::Adamw {
            beta1,
            beta2,
            epsilon,
            weight_decay,
            ..
        } => AdamWConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(epsilon as f32)
            .with_weight_decay(weight_decay as f32)
            .init(),
    }
}

/// Smallest probability a log is taken of (a softmax or sigmoid head can give 0).
const MIN_PROBABILITY: f64 = 1e-7;

/// The mean data loss of `net` on one batch. A classifier's head decides the form:
/// logits take the usual cross-entropy; a `log_softmax` head takes the negative
/// log-likelihood of its outputs as they are, a `softmax` or `sigmoid` head that of
/// their logarithm (never a second softmax).
pub fn data_loss(
    net: &Net,
    x: Tensor<2>,
    y: Vec<f32>,
    loss: LossKind,
    head: Head,
    device: &Device,
) -> Tensor<1> {
    let out = net.forward(x);
    loss_of(out, y, loss, head, device)
}

/// The mean loss of outputs `out` against targets `y` (see [`data_loss`]).
pub fn loss_of(
    out: Tensor<2>,
    y: Vec<f32>,
    loss: LossKind,
    head: Head,
    device: &Device,
) -> Tensor<1> {
    let n = y.len();
    match (loss, head) {
        (LossKind::Mse, _) => {
            let target = Tensor::<2>::from_data(TensorData::new(y, [n, 1]), device);
            MseLoss::new().forward(out, target, Reduction::Mean)
        }
        (LossKind::CrossEntropy, Head::LogSoftmax | Head::Softmax) => {
            let log_p = match head {
                Head::Softmax => out.clamp_min(MIN_PROBABILITY).log(),
                _ => out,
            };
            let target = class_tensor(&y, [n], device).reshape([n, 1]);
            log_p.gather(1, target).mean().neg()
        }
        (LossKind::CrossEntropy, _) => {
            let target = class_tensor(&y, [n], device);
            CrossEntropyLossConfig::new()
                .init(device)
                .forward(out, target)
        }
        (LossKind::Bce, Head::Sigmoid) => {
            let p = out.clamp(MIN_PROBABILITY, 1.0 - MIN_PROBABILITY);
            let t = Tensor::<2>::from_data(TensorData::new(y, [n, 1]), device);
            let one_minus = |v: Tensor<2>| v.neg().add_scalar(1.0);
            (t.clone() * p.clone().log() + one_minus(t) * one_minus(p).log())
                .mean()
                .neg()
        }
        (LossKind::Bce, _) => {
            let target = Tensor::<2, Int>::from_data(
                TensorData::new(y.iter().map(|v| *v as i64).collect::<Vec<_>>(), [n, 1]),
                device,
            );
            BinaryCrossEntropyLossConfig::new()
                .with_logits(true)
                .init(device)
                .forward(out, target)
        }
    }
}

fn class_tensor(y: &[f32], shape: [usize; 1], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(
        TensorData::new(y.iter().map(|v| *v as i64).collect::<Vec<_>>(), shape),
        device,
    )
}

/// `l1 * sum|w| + l2 * sum w^2` over every parameter, on the autodiff graph.
pub fn penalty(net: &Net, l1: f64, l2: f64, device: &Device) -> Tensor<1> {
    struct Penalty {
        l1: f64,
        l2: f64,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Penalty {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let w = param.val();
            let mut term = Tensor::<1>::zeros([1], &w.device());
            if self.l1 > 0.0 {
                term = term + w.clone().abs().sum().mul_scalar(self.l1);
            }
            if self.l2 > 0.0 {
                term = term + w.powf_scalar(2.0).sum().mul_scalar(self.l2);
            }
            self.sum = Some(match self.sum.take() {
                Some(s) => s + term,
                None => term,
            });
        }
    }
    if l1 == 0.0 && l2 == 0.0 {
        return Tensor::zeros([1], device);
    }
    let mut v = Penalty { l1, l2, sum: None };
    net.visit(&mut v);
    v.sum.unwrap_or_else(|| Tensor::zeros([1], device))
}
