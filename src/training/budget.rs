//! The resource budget a job must fit before it is queued (422 otherwise): model
//! and optimizer state, the largest activation of a batch, classes and dataset
//! size. Together with the worker's memory cap, it keeps a recipe from exhausting
//! the machine; on GPU backends (no address-space cap) it is the guard.

use super::data::Dataset;
use super::error::TrainError;
use super::spec::{OptimizerSpec, TrainSpec};
use crate::config::TrainingConfig;
use crate::model::NetConfig;

const MIB: u64 = 1 << 20;
/// Bytes per stored value (`f32`).
const VALUE: u64 = 4;

/// The `training.*` limits.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_model_mb: u64,
    pub max_activation_mb: u64,
    pub max_classes: usize,
    pub max_dataset_values: u64,
}

impl From<&TrainingConfig> for Budget {
    fn from(t: &TrainingConfig) -> Self {
        Self {
            max_model_mb: t.max_model_mb,
            max_activation_mb: t.max_activation_mb,
            max_classes: t.max_classes,
            max_dataset_values: t.max_dataset_values,
        }
    }
}

impl Budget {
    /// Checks the data alone (before a network is built for it).
    pub fn check_data(&self, data: &Dataset) -> Result<(), TrainError> {
        let values = (data.len() as u64).saturating_mul(data.width() as u64);
        if values > self.max_dataset_values {
            return Err(TrainError::OverBudget(format!(
                "the dataset has {} rows x {} features = {values} values; the limit is {} (training.max_dataset_values)",
                data.len(),
                data.width(),
                self.max_dataset_values
            )));
        }
        if data.labels.len() > self.max_classes {
            return Err(TrainError::OverBudget(format!(
                "the target has {} classes; the limit is {} (training.max_classes)",
                data.labels.len(),
                self.max_classes
            )));
        }
        Ok(())
    }

    /// Checks the network the recipe builds: parameters with their gradients and
    /// optimizer state, and the widest activation of one batch.
    pub fn check_net(&self, spec: &TrainSpec, net: &NetConfig) -> Result<(), TrainError> {
        let params = net.parameters();
        let copies = 2 + spec.optimizer.state_slots();
        let model_mb = params.saturating_mul(copies * VALUE).div_ceil(MIB);
        if model_mb > self.max_model_mb {
            return Err(TrainError::OverBudget(format!(
                "the model has {params} parameters; with gradients and optimizer state ({copies} copies) that is {model_mb} MiB; the limit is {} MiB (training.max_model_mb)",
                self.max_model_mb
            )));
        }
        let activation = (spec.batch_size() as u64).saturating_mul(net.widest());
        let activation_mb = activation.saturating_mul(VALUE).div_ceil(MIB);
        if activation_mb > self.max_activation_mb {
            return Err(TrainError::OverBudget(format!(
                "batch_size {} x {} values in the widest layer is {activation_mb} MiB in one activation; the limit is {} MiB (training.max_activation_mb): lower batch_size",
                spec.batch_size(),
                net.widest(),
                self.max_activation_mb
            )));
        }
        Ok(())
    }
}

impl OptimizerSpec {
    /// Values the optimizer keeps per parameter.
    pub fn state_slots(&self) -> u64 {
        match self {
            Self::Sgd { .. } => 0,
            Self::Momentum { .. } | Self::Adagrad { .. } => 1,
            Self::Rmsprop {
                momentum, centered, ..
            } => 1 + u64::from(*momentum > 0.0) + u64::from(*centered),
            Self::Adam { .. } | Self::Adamw { .. } => 2,
        }
    }
}
