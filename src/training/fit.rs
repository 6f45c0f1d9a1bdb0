//! The training loop: a hand-written minibatch loop with validation every epoch,
//! early stopping, cancellation checked every batch, and progress reported every
//! epoch. Runs on the caller's thread (the trainer's own thread); never async. A
//! batch's gradients come from [`BatchGrads`] (cut across the caller's rayon pool's
//! threads on the CPU).

use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::{DataError, Dataset, SplitMix64};
use super::defaults::{self, Chosen};
use super::error::TrainError;
use super::evaluate::{Judge, evaluate};
use super::parts::{initializer, optimizer};
use super::schedule;
use super::spec::{LossKind, ModelChoice, TrainSpec};
use super::step::{BatchGrads, LossTerms, Rows};
use crate::model::net::{Architecture, MlpConfig};
use crate::model::profile::Profile;
use crate::model::{Head, Manifest, Net, NetConfig, Task};

/// One epoch's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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
    /// Training rows per second of the epoch's training steps (validation excluded).
    pub samples_per_second: f64,
    /// The whole epoch, validation included.
    pub seconds: f64,
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
    /// What kiln chose where the recipe left a field unset.
    pub defaults: Vec<Chosen>,
}

/// The loss actually used: the spec's, else the task's usual one.
pub fn loss_for(spec: &TrainSpec, task: Task) -> LossKind {
    spec.loss.unwrap_or(match task {
        Task::Regression => LossKind::Mse,
        Task::Classification => LossKind::CrossEntropy,
    })
}

/// The network for `data`: the spec's MLP shape sized to the data, a layer stack, or
/// a model-config file; a stack or a file must agree with the data's width, task and
/// classes. A file's `[preprocess]` is dropped: trained versions fit their own.
pub fn resolve_net(
    spec: &TrainSpec,
    data: &Dataset,
    file: Option<NetConfig>,
) -> Result<NetConfig, TrainError> {
    let loss = loss_for(spec, data.task);
    let output = match (data.task, loss) {
        (Task::Regression, LossKind::Mse) => 1,
        (Task::Classification, LossKind::Bce) if data.labels.len() == 2 => 1,
        (Task::Classification, LossKind::Bce) => {
            return Err(TrainError::Recipe(format!(
                "loss bce needs exactly 2 classes, the data has {}",
                data.labels.len()
            )));
        }
        (Task::Classification, LossKind::CrossEntropy) => data.labels.len(),
        (task, loss) => {
            return Err(TrainError::Recipe(
                format!("loss {loss:?} does not fit task {task:?}").to_lowercase(),
            ));
        }
    };
    let given = match (file, &spec.model) {
        (Some(cfg), _) => Some(cfg),
        (None, ModelChoice::Sequential(seq)) => Some(NetConfig {
            task: data.task,
            architecture: Architecture::Sequential(seq.clone()),
            preprocess: None,
        }),
        (None, ModelChoice::Mlp(_)) => None,
        (None, ModelChoice::File(_)) => {
            return Err(TrainError::recipe("a model file was named but not loaded"));
        }
    };
    let net = match given {
        Some(mut cfg) => {
            cfg.preprocess = None;
            if cfg.task != data.task {
                return Err(TrainError::Recipe(
                    format!(
                        "the model config is for {:?}, the data is {:?}",
                        cfg.task, data.task
                    )
                    .to_lowercase(),
                ));
            }
            cfg.validate()
                .map_err(|e| TrainError::Recipe(e.to_string()))?;
            if cfg.input_width() != data.width() || cfg.output_width() != output {
                return Err(TrainError::Recipe(format!(
                    "the model takes {} inputs (input shape {:?}) and gives {} outputs; the data has {} feature columns and needs {output} outputs",
                    cfg.input_width(),
                    cfg.input_shape(),
                    cfg.output_width(),
                    data.width()
                )));
            }
            cfg
        }
        None => {
            let ModelChoice::Mlp(shape) = &spec.model else {
                unreachable!("handled above");
            };
            NetConfig {
                task: data.task,
                architecture: Architecture::Mlp(MlpConfig {
                    input: data.width(),
                    hidden: shape.hidden.clone(),
                    output,
                    activation: shape.activation,
                }),
                preprocess: None,
            }
        }
    };
    net.validate()
        .map_err(|e| TrainError::Recipe(e.to_string()))?;
    match (loss, net.head()) {
        (LossKind::Bce, Head::Softmax | Head::LogSoftmax) => {
            return Err(TrainError::recipe(
                "loss bce needs one logit or a sigmoid head, not a softmax",
            ));
        }
        (LossKind::CrossEntropy, Head::Sigmoid) => {
            return Err(TrainError::recipe(
                "loss cross_entropy needs logits or a softmax head, not a sigmoid",
            ));
        }
        _ => {}
    }
    if let Err(bad) = net.check_values(&data.x) {
        let (k, w) = (bad.index, data.width());
        return Err(TrainError::Data(DataError::Value(format!(
            "row {}, column {:?}: {} {}",
            k / w,
            data.features[k % w],
            data.x[k],
            bad.fault
        ))));
    }
    Ok(net)
}

/// What the caller hears from the loop, and how it steers it.
pub trait Observer: Send {
    /// Called before every batch (it may pause there); `true` stops the run
    /// ([`TrainError::Cancelled`]).
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
) -> Result<FitOutcome, TrainError> {
    let (spec, mut defaults) = defaults::recipe(spec, &net_config);
    let spec = &spec;
    let Scaled {
        train,
        validation,
        train_x,
        train_y,
        val_x,
        val_y,
        standardize,
        target_scale,
        level,
        val_levels,
    } = scaled::scale(data, spec, &net_config, &mut defaults)?;

    let eval_device = device.clone();
    let device = device.clone().autodiff();
    device.seed(spec.seed);
    let mut net = net_config.init(&initializer(&spec.init), &device);
    let mut optim = optimizer(&spec.optimizer, &eval_device);
    let loss_kind = loss_for(spec, data.task);
    let head = net_config.head();
    let pass_rows = net_config.max_pass_rows();
    let lr = spec.optimizer.lr();
    let width = data.width();
    let mut rng = SplitMix64(spec.seed ^ 0x5EED);
    let batch_grads = BatchGrads::new(&net_config, &eval_device, spec.batch_size());
    let rows = Rows {
        x: &train_x,
        y: &train_y,
        width,
    };
    let terms = LossTerms {
        loss: loss_kind,
        head,
        l1: spec.l1,
        l2: spec.l2,
        device: &device,
    };

    let mut history = Vec::with_capacity(spec.epochs());
    let mut best: Option<(EpochReport, Net)> = None;
    let mut since_best = 0;
    let mut stopped_early = false;
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 1..=spec.epochs() {
        let started = Instant::now();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        let batches = train.len().div_ceil(spec.batch_size()).max(1);
        // The epoch's batches run on the first part thread, when batches are cut:
        // its part and its share of the optimizer step then need no hand-over.
        let pool = batch_grads.pool();
        net = batch_grads.install(|| {
            let mut net = net;
            for (b, batch) in order.chunks(spec.batch_size()).enumerate() {
                if observer.before_batch() {
                    return Err(TrainError::Cancelled);
                }
                let (batch_loss, mut grads) = batch_grads.grads(&net, &rows, batch, &terms);
                loss_sum += batch_loss * batch.len() as f64;
                if let Some(max) = spec.grad_clip_norm {
                    let mut whole = grads.joined();
                    schedule::clip_norm(&net, &mut whole, max);
                    grads = whole.into();
                }
                let progress = (epoch - 1) as f64 + b as f64 / batches as f64;
                let step_lr = spec
                    .lr_schedule
                    .as_ref()
                    .map_or(lr, |s| lr * s.factor(progress, spec.epochs()));
                net = optim.step(step_lr, net, grads, pool);
            }
            Ok(net)
        })?;
        let train_seconds = started.elapsed().as_secs_f64();
        let train_loss = loss_sum / train.len() as f64;
        if !train_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                what: "training loss",
            });
        }
        let valid = net.valid();
        let judge = Judge {
            task: data.task,
            loss: loss_kind,
            head,
            target_scale: target_scale.as_ref(),
            levels: val_levels.as_deref(),
            pass_rows,
        };
        let (val_loss, val_metric, val_rmse) =
            evaluate(&valid, &eval_device, &val_x, &val_y, &judge);
        // A non-finite figure would be no version's score (and JSON has no NaN).
        if !val_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                what: "validation loss",
            });
        }
        if !val_metric.is_finite() || val_rmse.is_some_and(|r| !r.is_finite()) {
            return Err(TrainError::Diverged {
                epoch,
                what: "validation metric",
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let report = EpochReport {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            val_rmse,
            samples_per_second: train.len() as f64 / train_seconds.max(1e-9),
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
    manifest.standardize = standardize;
    manifest.target_standardize = target_scale;
    manifest.level = level;
    manifest.feature_names = Some(data.features.clone());
    manifest.profile = Some(Profile::fit(
        &train.x,
        width,
        &train.y,
        (data.task == Task::Classification).then_some(data.labels.len()),
    ));
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
        defaults,
    })
}

#[cfg(test)]
mod tests;

mod scaled;
use scaled::Scaled;
