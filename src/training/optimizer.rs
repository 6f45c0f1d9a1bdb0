//! The optimizer choices a recipe can name, with PyTorch's defaults.

use serde::{Deserialize, Serialize};

/// The optimizer and its knobs; defaults follow PyTorch's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerSpec {
    Sgd {
        #[serde(default = "lr_sgd")]
        lr: f64,
    },
    Momentum {
        #[serde(default = "lr_sgd")]
        lr: f64,
        #[serde(default = "momentum")]
        momentum: f64,
        #[serde(default)]
        dampening: f64,
        #[serde(default)]
        nesterov: bool,
    },
    Adagrad {
        #[serde(default = "lr_sgd")]
        lr: f64,
        #[serde(default)]
        lr_decay: f64,
        #[serde(default = "eps_adagrad")]
        epsilon: f64,
    },
    Rmsprop {
        #[serde(default = "lr_sgd")]
        lr: f64,
        #[serde(default = "alpha")]
        alpha: f64,
        #[serde(default = "eps")]
        epsilon: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        centered: bool,
    },
    Adam {
        #[serde(default = "lr_adam")]
        lr: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "eps")]
        epsilon: f64,
    },
    Adamw {
        #[serde(default = "lr_adam")]
        lr: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "eps")]
        epsilon: f64,
        #[serde(default = "weight_decay")]
        weight_decay: f64,
    },
}

fn lr_sgd() -> f64 {
    0.01
}
fn lr_adam() -> f64 {
    1e-3
}
fn momentum() -> f64 {
    0.9
}
fn eps_adagrad() -> f64 {
    1e-10
}
fn eps() -> f64 {
    1e-8
}
fn alpha() -> f64 {
    0.99
}
fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn weight_decay() -> f64 {
    0.01
}

impl OptimizerSpec {
    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Sgd { lr }
            | Self::Momentum { lr, .. }
            | Self::Adagrad { lr, .. }
            | Self::Rmsprop { lr, .. }
            | Self::Adam { lr, .. }
            | Self::Adamw { lr, .. } => *lr,
        }
    }
}
