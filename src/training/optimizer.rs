//! The optimizer choices a recipe can name, with PyTorch's defaults.

use serde::{Deserialize, Serialize};

use super::error::TrainError;
use super::spec::within;

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

/// Largest value below 1 that `beta`, `alpha` and `momentum` may take.
const BELOW_ONE: f64 = 0.999_999;

impl OptimizerSpec {
    /// Range checks of every knob (see [`within`]).
    pub fn validate(&self) -> Result<(), TrainError> {
        within("optimizer.lr", self.lr(), 1e-10, 10.0)?;
        let eps = |v| within("optimizer.epsilon", v, 1e-12, 1.0);
        let adam = |beta1, beta2, epsilon| {
            within("optimizer.beta1", beta1, 0.0, BELOW_ONE)?;
            within("optimizer.beta2", beta2, 0.0, BELOW_ONE)?;
            eps(epsilon)
        };
        match *self {
            Self::Sgd { .. } => Ok(()),
            Self::Momentum {
                momentum,
                dampening,
                ..
            } => {
                within("optimizer.momentum", momentum, 0.0, BELOW_ONE)?;
                within("optimizer.dampening", dampening, 0.0, 1.0)
            }
            Self::Adagrad {
                lr_decay, epsilon, ..
            } => {
                within("optimizer.lr_decay", lr_decay, 0.0, 1.0)?;
                eps(epsilon)
            }
            Self::Rmsprop {
                alpha,
                epsilon,
                momentum,
                ..
            } => {
                within("optimizer.alpha", alpha, 0.0, BELOW_ONE)?;
                within("optimizer.momentum", momentum, 0.0, BELOW_ONE)?;
                eps(epsilon)
            }
            Self::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            } => adam(beta1, beta2, epsilon),
            Self::Adamw {
                beta1,
                beta2,
                epsilon,
                weight_decay,
                ..
            } => {
                within("optimizer.weight_decay", weight_decay, 0.0, 1.0)?;
                adam(beta1, beta2, epsilon)
            }
        }
    }

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
