//! A small search (`"search": {"trials": N}` in a recipe, `kiln train --search
//! N`): the recipe as given, then trials that draw the learning rate, weight
//! decay and (for an MLP) a width multiplier from the recipe's seed. Each runs
//! in turn in the same worker, within the same budget checks (a trial over them
//! fails alone); each is scored on the same validation rows, and only the best
//! trial's version is written. The job record lists every trial.

use serde::{Deserialize, Serialize};

use super::data::SplitMix64;
use super::error::TrainError;
use super::fit::EpochReport;
use super::spec::{ModelChoice, OptimizerSpec, TrainSpec};

/// Most trials in one search.
pub const MAX_TRIALS: usize = 32;

/// `search` in a recipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// Trials in all, the recipe as given first.
    pub trials: usize,
}

impl SearchSpec {
    pub fn validate(&self, epochs: usize) -> Result<(), TrainError> {
        if self.trials == 0 || self.trials > MAX_TRIALS {
            return Err(TrainError::Recipe(format!(
                "search.trials must be between 1 and {MAX_TRIALS}, got {}",
                self.trials
            )));
        }
        let total = epochs.saturating_mul(self.trials);
        if total > super::spec::MAX_EPOCHS {
            return Err(TrainError::Recipe(format!(
                "search.trials x epochs is {total}; the limit is {} epochs in all",
                super::spec::MAX_EPOCHS
            )));
        }
        Ok(())
    }
}

/// What one trial tried, and how it scored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Trial {
    pub trial: usize,
    pub lr: f64,
    /// AdamW's decoupled weight decay (0: none, or an optimizer without it).
    pub weight_decay: f64,
    /// Multiplier on the MLP's hidden widths (1 for a layer stack or a model file).
    pub width: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_metric: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    pub epochs_run: usize,
    /// The trial whose version the job wrote.
    pub chosen: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Trial {
    /// Fills in a trial's result.
    pub fn scored(mut self, best: &EpochReport, epochs_run: usize) -> Self {
        self.val_metric = Some(best.val_metric);
        self.val_loss = Some(best.val_loss);
        self.epochs_run = epochs_run;
        self
    }
}

/// Trial `i`'s recipe (without `search`) and what it tried. Trial 0 is the
/// recipe as given; the others draw, from the recipe's seed: the learning rate
/// from 0.1x to 3x the recipe's (log-uniform); for Adam and AdamW, a decoupled
/// weight decay of 0 or 1e-5 to 1e-1 (log-uniform; Adam becomes AdamW); for an
/// MLP, hidden widths x0.5, x1 or x2.
pub fn trial(spec: &TrainSpec, i: usize) -> (TrainSpec, Trial) {
    let mut out = spec.clone();
    out.search = None;
    let mut rng = SplitMix64(spec.seed ^ 0x7121_A15E ^ (i as u64).wrapping_mul(0x9E37_79B9));
    let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let (mut lr, mut weight_decay, mut width) = (spec.optimizer.lr(), weight_decay(spec), 1.0);
    if i > 0 {
        lr *= 10f64.powf(-1.0 + 1.5 * uniform());
        let draw = uniform();
        let decay = if draw < 0.25 {
            0.0
        } else {
            10f64.powf(-5.0 + 4.0 * uniform())
        };
        out.optimizer = match out.optimizer {
            OptimizerSpec::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            }
            | OptimizerSpec::Adamw {
                beta1,
                beta2,
                epsilon,
                ..
            } => {
                weight_decay = decay;
                OptimizerSpec::Adamw {
                    lr,
                    beta1,
                    beta2,
                    epsilon,
                    weight_decay,
                }
            }
            other => with_lr(other, lr),
        };
        if let ModelChoice::Mlp(shape) = &mut out.model {
            width = [0.5, 1.0, 2.0][(uniform() * 3.0) as usize % 3];
            for w in &mut shape.hidden {
                *w = ((*w as f64 * width).round() as usize).clamp(1, 65_536);
            }
        }
    }
    let tried = Trial {
        trial: i,
        lr,
        weight_decay,
        width,
        val_metric: None,
        val_loss: None,
        epochs_run: 0,
        chosen: false,
        error: None,
    };
    (out, tried)
}

fn weight_decay(spec: &TrainSpec) -> f64 {
    match spec.optimizer {
        OptimizerSpec::Adamw { weight_decay, .. } => weight_decay,
        _ => 0.0,
    }
}

fn with_lr(optimizer: OptimizerSpec, lr: f64) -> OptimizerSpec {
    let mut o = optimizer;
    match &mut o {
        OptimizerSpec::Sgd { lr: l }
        | OptimizerSpec::Momentum { lr: l, .. }
        | OptimizerSpec::Adagrad { lr: l, .. }
        | OptimizerSpec::Rmsprop { lr: l, .. }
        | OptimizerSpec::Adam { lr: l, .. }
        | OptimizerSpec::Adamw { lr: l, .. } => *l = lr,
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_are_the_recipe_then_seeded_draws_in_range() {
        let spec = TrainSpec {
            search: Some(SearchSpec { trials: 8 }),
            ..TrainSpec::default()
        };
        let (first, t0) = trial(&spec, 0);
        assert_eq!(first.optimizer, spec.optimizer);
        assert_eq!((t0.lr, t0.weight_decay, t0.width), (1e-3, 0.0, 1.0));
        assert!(first.search.is_none());
        let mut seen = std::collections::BTreeSet::new();
        for i in 1..8 {
            let (s, t) = trial(&spec, i);
            assert!(s.validate().is_ok(), "{t:?}");
            assert!((1e-4..=3e-3).contains(&t.lr), "{t:?}");
            assert!(t.weight_decay == 0.0 || (1e-5..=0.1).contains(&t.weight_decay));
            assert!([0.5, 1.0, 2.0].contains(&t.width));
            assert_eq!(s.optimizer.lr(), t.lr);
            // The same seed draws the same trial.
            assert_eq!(trial(&spec, i).1, t);
            seen.insert(format!("{:.6}", t.lr));
        }
        assert!(seen.len() >= 6, "the draws differ: {seen:?}");
        let bad = SearchSpec { trials: 0 };
        assert!(bad.validate(10).is_err());
        assert!(SearchSpec { trials: 32 }.validate(100_000).is_err());
    }
}
