//! The training loop: a hand-written minibatch loop with validation every epoch,
//! early stopping, cancellation checked every batch, and progress reported every
//! epoch. Runs on the caller's thread (the trainer's own thread); never async.

use std::time::Instant;

use burn::module::{ModuleVisitor, Param};
use burn::nn::Initializer;
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdaGradConfig, AdamConfig, AdamWConfig, GradientsParams, RmsPropConfig, SgdConfig,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::{Dataset, SplitMix64};
use super::spec::{InitSpec, LossKind, OptimizerSpec, TrainSpec};
use crate::model::net::{Architecture, MlpConfig};
use crate::model::{LoadedModel, Manifest, Net, NetConfig, Standardize, Task};

/// One epoch's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochReport {
    pub epoch: usize,
    /// Mean data loss over the epoch's batches (penalties excluded).
    pub train_loss: f64,
    pub val_loss: f64,
    /// Accuracy (classification) or R^2 (regression) on the validation rows.
    pub val_metric: f64,
    /// Root mean squared error in target units (regression only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_rmse: Option<f64>,
    pub samples_per_second: f64,
    pub seconds: f64,
}

/// Why fitting stopped without a model.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FitError {
    #[error("cancelled")]
    Cancelled,
    #[error("training diverged at epoch {0}: the loss is not finite (try a smaller learning rate)")]
    Diverged(usize),
    #[error("{0}")]
    Invalid(String),
}

/// A trained network, its manifest and the validation rows it was judged on.
pub struct FitOutcome {
    pub net: Net,
    pub manifest: Manifest,
    pub history: Vec<EpochReport>,
    pub best: EpochReport,
    pub stopped_early: bool,
    /// The validation rows, unstandardised, for comparing with other versions.
    pub validation: Dataset,
}

/// The metric's name for a task.
pub fn metric_name(task: Task) -> &'static str {
    match task {
        Task::Classification => "accuracy",
        Task::Regression => "r2",
    }
}

/// The loss actually used: the spec's, else the task's usual one.
pub fn loss_for(spec: &TrainSpec, task: Task) -> LossKind {
    spec.loss.unwrap_or(match task {
        Task::Regression => LossKind::Mse,
        Task::Classification => LossKind::CrossEntropy,
    })
}

/// The network for `data`: the spec's MLP shape sized to the data, or a model-config
/// file, which must agree with the data's width, task and classes.
pub fn resolve_net(
    spec: &TrainSpec,
    data: &Dataset,
    file: Option<NetConfig>,
) -> Result<NetConfig, String> {
    let loss = loss_for(spec, data.task);
    let output = match (data.task, loss) {
        (Task::Regression, LossKind::Mse) => 1,
        (Task::Classification, LossKind::Bce) if data.labels.len() == 2 => 1,
        (Task::Classification, LossKind::Bce) => {
            return Err(format!(
                "loss bce needs exactly 2 classes, the data has {}",
                data.labels.len()
            ));
        }
        (Task::Classification, LossKind::CrossEntropy) => data.labels.len(),
        (task, loss) => {
            return Err(format!("loss {loss:?} does not fit task {task:?}").to_lowercase());
        }
    };
    let net = match file {
        Some(cfg) => {
            if cfg.task != data.task {
                return Err(format!(
                    "the model config is for {:?}, the data is {:?}",
                    cfg.task, data.task
                )
                .to_lowercase());
            }
            if cfg.input_width() != data.width() || cfg.output_width() != output {
                return Err(format!(
                    "the model config takes {} inputs and gives {} outputs; the data needs {} and {output}",
                    cfg.input_width(),
                    cfg.output_width(),
                    data.width()
                ));
            }
            cfg
        }
        None => {
            let super::spec::ModelChoice::Mlp(shape) = &spec.model else {
                return Err("a model file was named but not loaded".into());
            };
            NetConfig {
                task: data.task,
                architecture: Architecture::Mlp(MlpConfig {
                    input: data.width(),
                    hidden: shape.hidden.clone(),
                    output,
                    activation: shape.activation,
                }),
            }
        }
    };
    net.validate().map_err(|e| e.to_string())?;
    Ok(net)
}

/// What the caller hears from the loop, and how it steers it.
pub trait Observer {
    /// Called before every batch (it may pause there); `true` stops the run
    /// ([`FitError::Cancelled`]).
    fn before_batch(&mut self) -> bool {
        false
    }
    /// Called after every epoch.
    fn epoch(&mut self, _report: &EpochReport) {}
}

/// An observer that hears nothing and never stops.
pub struct Quiet;

impl Observer for Quiet {}

/// Trains `net_config` on `data` following `spec`, on `device` (an autodiff device
/// is made from it), telling `observer` about every batch and epoch.
pub fn fit(
    data: &Dataset,
    spec: &TrainSpec,
    net_config: NetConfig,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<FitOutcome, FitError> {
    let (train_idx, val_idx) = data
        .split(spec.validation_split, spec.seed)
        .map_err(|e| FitError::Invalid(e.to_string()))?;
    let train = data.select(&train_idx);
    let validation = data.select(&val_idx);
    let standardize = train.fit_standardize();
    let target_scale = match data.task {
        Task::Regression => Some(fit_target(&train.y)),
        Task::Classification => None,
    };
    let prepare = |d: &Dataset| {
        let mut x = d.x.clone();
        standardize.apply(&mut x);
        let y: Vec<f32> = match &target_scale {
            Some(s) => d.y.iter().map(|v| (v - s.mean[0]) / s.std[0]).collect(),
            None => d.y.clone(),
        };
        (x, y)
    };
    let (train_x, train_y) = prepare(&train);
    let (val_x, val_y) = prepare(&validation);

    let eval_device = device.clone();
    let device = device.clone().autodiff();
    device.seed(spec.seed);
    let mut net = net_config.init(&initializer(&spec.init), &device);
    let mut optim = optimizer(&spec.optimizer);
    let loss_kind = loss_for(spec, data.task);
    let lr = spec.optimizer.lr();
    let width = data.width();
    let mut rng = SplitMix64(spec.seed ^ 0x5EED);

    let mut history = Vec::with_capacity(spec.epochs);
    let mut best: Option<(EpochReport, Net)> = None;
    let mut since_best = 0;
    let mut stopped_early = false;
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 1..=spec.epochs {
        let started = Instant::now();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for batch in order.chunks(spec.batch_size) {
            if observer.before_batch() {
                return Err(FitError::Cancelled);
            }
            let mut xb = Vec::with_capacity(batch.len() * width);
            for &i in batch {
                xb.extend_from_slice(&train_x[i * width..(i + 1) * width]);
            }
            let yb: Vec<f32> = batch.iter().map(|&i| train_y[i]).collect();
            let x = Tensor::<2>::from_data(TensorData::new(xb, [batch.len(), width]), &device);
            let loss = data_loss(&net, x, yb, loss_kind, &device);
            loss_sum += f64::from(loss.clone().into_scalar::<f32>()) * batch.len() as f64;
            let loss = loss + penalty(&net, spec.l1, spec.l2, &device);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
        }
        let train_loss = loss_sum / train.len() as f64;
        if !train_loss.is_finite() {
            return Err(FitError::Diverged(epoch));
        }
        let valid = net.valid();
        let (val_loss, val_metric, val_rmse) = evaluate(
            &valid,
            &eval_device,
            &val_x,
            &val_y,
            data.task,
            loss_kind,
            target_scale.as_ref(),
        );
        let seconds = started.elapsed().as_secs_f64();
        let report = EpochReport {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            val_rmse,
            samples_per_second: train.len() as f64 / seconds.max(1e-9),
            seconds,
        };
        observer.epoch(&report);
        history.push(report.clone());
        let improved = best.as_ref().is_none_or(|(b, _)| val_loss < b.val_loss);
        if improved {
            best = Some((report, valid));
            since_best = 0;
        } else {
            since_best += 1;
            if spec.early_stopping_patience > 0 && since_best >= spec.early_stopping_patience {
                stopped_early = true;
                break;
            }
        }
    }
    let (best, net) = best.expect("at least one epoch ran");

    let mut manifest = Manifest::new(net_config, "train");
    manifest.standardize = Some(standardize);
    manifest.target_standardize = target_scale;
    manifest.feature_names = Some(data.features.clone());
    if data.task == Task::Classification {
        manifest.labels = Some(data.labels.clone());
    }
    Ok(FitOutcome {
        net,
        manifest,
        history,
        best,
        stopped_early,
        validation,
    })
}

fn fit_target(y: &[f32]) -> Standardize {
    let n = y.len() as f64;
    let mean = y.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    let var = y
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>()
        / n;
    Standardize {
        mean: vec![mean as f32],
        std: vec![if var > 1e-12 { var.sqrt() as f32 } else { 1.0 }],
    }
}

fn initializer(spec: &InitSpec) -> Initializer {
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

fn optimizer(spec: &OptimizerSpec) -> burn::optim::ModuleOptimizer {
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

/// The mean data loss of `net` on one batch.
fn data_loss(net: &Net, x: Tensor<2>, y: Vec<f32>, loss: LossKind, device: &Device) -> Tensor<1> {
    let n = y.len();
    let out = net.forward(x);
    match loss {
        LossKind::Mse => {
            let target = Tensor::<2>::from_data(TensorData::new(y, [n, 1]), device);
            MseLoss::new().forward(out, target, Reduction::Mean)
        }
        LossKind::CrossEntropy => {
            let target = class_tensor(&y, [n], device);
            CrossEntropyLossConfig::new()
                .init(device)
                .forward(out, target)
        }
        LossKind::Bce => {
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
fn penalty(net: &Net, l1: f64, l2: f64, device: &Device) -> Tensor<1> {
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

/// Validation loss, metric and (regression) RMSE in target units.
fn evaluate(
    net: &Net,
    device: &Device,
    x: &[f32],
    y: &[f32],
    task: Task,
    loss: LossKind,
    target_scale: Option<&Standardize>,
) -> (f64, f64, Option<f64>) {
    let n = y.len();
    let width = x.len() / n;
    let xt = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [n, width]), device);
    let val_loss =
        f64::from(data_loss(net, xt.clone(), y.to_vec(), loss, device).into_scalar::<f32>());
    let out: Vec<f32> = net
        .forward(xt)
        .into_data()
        .try_into_vec()
        .expect("f32 outputs");
    match task {
        Task::Classification => {
            let k = out.len() / n;
            let correct = out
                .chunks_exact(k)
                .zip(y)
                .filter(|(row, y)| predicted_class(row) == **y as usize)
                .count();
            (val_loss, correct as f64 / n as f64, None)
        }
        Task::Regression => {
            let s = target_scale.expect("regression has a target scale");
            let unscale = |v: f32| f64::from(v * s.std[0] + s.mean[0]);
            let truth: Vec<f64> = y.iter().map(|v| unscale(*v)).collect();
            let pred: Vec<f64> = out.iter().map(|v| unscale(*v)).collect();
            let (r2, rmse) = r2_rmse(&pred, &truth);
            (val_loss, r2, Some(rmse))
        }
    }
}

/// The class a row of outputs picks: argmax of logits, or `p > 0.5` for one sigmoid
/// output.
pub fn predicted_class(row: &[f32]) -> usize {
    if row.len() == 1 {
        return usize::from(row[0] > 0.0);
    }
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |acc, (i, v)| {
            if *v > acc.1 { (i, *v) } else { acc }
        })
        .0
}

/// Coefficient of determination and root mean squared error.
pub fn r2_rmse(pred: &[f64], truth: &[f64]) -> (f64, f64) {
    let n = truth.len() as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let ss_res: f64 = pred.iter().zip(truth).map(|(p, t)| (t - p).powi(2)).sum();
    let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        0.0
    };
    (r2, (ss_res / n).sqrt())
}

/// How well `model` does on `data` (unstandardised rows, as a client would send
/// them): accuracy by label name, or R^2. `None` when it cannot score them at all
/// (other width, other task, labels it does not know, several outputs).
pub fn score(model: &LoadedModel, data: &Dataset) -> Option<f64> {
    if model.input_width() != data.width() || model.manifest().net.task != data.task {
        return None;
    }
    let n = data.len();
    let out = model.forward(data.x.clone(), n);
    match data.task {
        Task::Classification => {
            let names = model.manifest().label_names();
            if !data.labels.iter().all(|l| names.contains(l)) {
                return None;
            }
            let k = model.output_width();
            let correct = out
                .chunks_exact(k)
                .zip(&data.y)
                .filter(|(row, y)| names[predicted_class(row)] == data.labels[**y as usize])
                .count();
            Some(correct as f64 / n as f64)
        }
        Task::Regression => {
            if model.output_width() != 1 {
                return None;
            }
            let pred: Vec<f64> = out.iter().map(|v| f64::from(*v)).collect();
            let truth: Vec<f64> = data.y.iter().map(|v| f64::from(*v)).collect();
            Some(r2_rmse(&pred, &truth).0)
        }
    }
}
