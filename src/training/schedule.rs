//! Learning-rate schedules and gradient-norm clipping, as a recipe names them
//! (`lr_schedule`, `grad_clip_norm`). A schedule multiplies the optimizer's
//! `lr` at every step by a factor of the training progress, in epochs (a
//! fraction within an epoch), over the planned `epochs`.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::TrainError;
use super::spec::within;
use crate::model::Net;

/// How the learning rate moves over training. Warm-up epochs rise linearly
/// from near 0 to the full rate first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// The optimizer's `lr` throughout (after any warm-up).
    Constant {
        #[serde(default)]
        warmup_epochs: f64,
    },
    /// Half a cosine from `lr` down to `lr * min_factor` at the last epoch.
    Cosine {
        #[serde(default)]
        warmup_epochs: f64,
        #[serde(default)]
        min_factor: f64,
    },
    /// PyTorch's one-cycle: up from `lr / div_factor` to `lr` over the first
    /// `pct_start` of training, then a cosine down to
    /// `lr / (div_factor * final_div_factor)`.
    OneCycle {
        #[serde(default = "pct_start")]
        pct_start: f64,
        #[serde(default = "div_factor")]
        div_factor: f64,
        #[serde(default = "final_div_factor")]
        final_div_factor: f64,
    },
    /// Times `gamma` every `step_epochs` epochs.
    Step {
        step_epochs: f64,
        #[serde(default = "gamma")]
        gamma: f64,
        #[serde(default)]
        warmup_epochs: f64,
    },
}

fn pct_start() -> f64 {
    0.3
}
fn div_factor() -> f64 {
    25.0
}
fn final_div_factor() -> f64 {
    1e4
}
fn gamma() -> f64 {
    0.1
}

impl LrSchedule {
    /// Range checks of every knob against the planned `epochs`.
    pub fn validate(&self, epochs: usize) -> Result<(), TrainError> {
        let warmup = |w: f64| within("lr_schedule.warmup_epochs", w, 0.0, epochs as f64);
        match *self {
            Self::Constant { warmup_epochs } => warmup(warmup_epochs),
            Self::Cosine {
                warmup_epochs,
                min_factor,
            } => {
                warmup(warmup_epochs)?;
                within("lr_schedule.min_factor", min_factor, 0.0, 1.0)
            }
            Self::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                within("lr_schedule.pct_start", pct_start, 0.0, 1.0)?;
                within("lr_schedule.div_factor", div_factor, 1.0, 1e6)?;
                within("lr_schedule.final_div_factor", final_div_factor, 1.0, 1e9)
            }
            Self::Step {
                step_epochs,
                gamma,
                warmup_epochs,
            } => {
                warmup(warmup_epochs)?;
                within("lr_schedule.step_epochs", step_epochs, 1e-3, 1e6)?;
                within("lr_schedule.gamma", gamma, 1e-6, 1.0)
            }
        }
    }

    /// The factor on `lr` at `progress` epochs into `epochs` planned (0-based:
    /// 0.5 is halfway through the first epoch).
    pub fn factor(&self, progress: f64, epochs: usize) -> f64 {
        let total = (epochs as f64).max(1e-9);
        let ramp = |warmup: f64| {
            if warmup > 0.0 && progress < warmup {
                Some((progress + 1e-3) / (warmup + 1e-3))
            } else {
                None
            }
        };
        let cosine = |from: f64, to: f64, t: f64| {
            to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * t.clamp(0.0, 1.0)).cos())
        };
        match *self {
            Self::Constant { warmup_epochs } => ramp(warmup_epochs).unwrap_or(1.0),
            Self::Cosine {
                warmup_epochs,
                min_factor,
            } => ramp(warmup_epochs).unwrap_or_else(|| {
                let span = (total - warmup_epochs).max(1e-9);
                cosine(1.0, min_factor, (progress - warmup_epochs) / span)
            }),
            Self::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let peak = pct_start * total;
                let low = 1.0 / div_factor;
                if progress < peak {
                    cosine(low, 1.0, progress / peak.max(1e-9))
                } else {
                    let span = (total - peak).max(1e-9);
                    cosine(1.0, low / final_div_factor, (progress - peak) / span)
                }
            }
            Self::Step {
                step_epochs,
                gamma,
                warmup_epochs,
            } => ramp(warmup_epochs).unwrap_or_else(|| {
                gamma.powf(((progress - warmup_epochs).max(0.0) / step_epochs).floor())
            }),
        }
    }
}

/// Scales `grads` of `net` down so their global L2 norm is at most `max`;
/// returns the norm they had.
pub fn clip_norm(net: &Net, grads: &mut GradientsParams, max: f64) -> f64 {
    struct SumOfSquares<'a>(&'a GradientsParams, f64);
    impl ModuleVisitor for SumOfSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1 += f64::from((g.clone() * g).sum().into_scalar::<f32>());
            }
        }
    }
    struct Scale<'a>(&'a mut GradientsParams, f32);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(param.id) {
                self.0.register(param.id, g.mul_scalar(self.1));
            }
        }
    }
    let mut sum = SumOfSquares(grads, 0.0);
    net.visit(&mut sum);
    let norm = sum.1.sqrt();
    if norm.is_finite() && norm > max {
        net.visit(&mut Scale(grads, (max / norm) as f32));
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn schedules_follow_their_shapes() {
        let constant = LrSchedule::Constant { warmup_epochs: 0.0 };
        assert!(close(constant.factor(0.0, 10), 1.0) && close(constant.factor(9.9, 10), 1.0));
        let cosine = LrSchedule::Cosine {
            warmup_epochs: 2.0,
            min_factor: 0.0,
        };
        // Warm-up rises to the full rate, then half a cosine to 0.
        assert!(cosine.factor(0.0, 10) < 0.01);
        assert!(cosine.factor(1.0, 10) > 0.45 && cosine.factor(1.0, 10) < 0.55);
        assert!(close(cosine.factor(2.0, 10), 1.0));
        assert!(close(cosine.factor(6.0, 10), 0.5));
        assert!(close(cosine.factor(10.0, 10), 0.0));
        let one_cycle = LrSchedule::OneCycle {
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        };
        assert!(close(one_cycle.factor(0.0, 10), 1.0 / 25.0));
        assert!(close(one_cycle.factor(3.0, 10), 1.0));
        assert!(close(one_cycle.factor(10.0, 10), 1.0 / 25.0 / 1e4));
        let step = LrSchedule::Step {
            step_epochs: 3.0,
            gamma: 0.5,
            warmup_epochs: 0.0,
        };
        assert!(close(step.factor(2.9, 10), 1.0));
        assert!(close(step.factor(3.0, 10), 0.5));
        assert!(close(step.factor(6.5, 10), 0.25));
    }

    #[test]
    fn knobs_are_checked() {
        let bad = LrSchedule::Cosine {
            warmup_epochs: 20.0,
            min_factor: 0.0,
        };
        assert!(
            bad.validate(10)
                .unwrap_err()
                .to_string()
                .contains("warmup_epochs")
        );
        let bad = LrSchedule::Step {
            step_epochs: 0.0,
            gamma: 0.1,
            warmup_epochs: 0.0,
        };
        assert!(
            bad.validate(10)
                .unwrap_err()
                .to_string()
                .contains("step_epochs")
        );
        let parsed: LrSchedule =
            serde_json::from_value(serde_json::json!({"kind": "one_cycle"})).unwrap();
        assert!(parsed.validate(10).is_ok());
        // As a TOML recipe writes them.
        let spec: crate::training::spec::TrainSpec = toml::from_str(
            "lr_schedule = { kind = \"cosine\", warmup_epochs = 2 }\ngrad_clip_norm = 1.0\n",
        )
        .unwrap();
        spec.validate().unwrap();
        assert_eq!(
            spec.lr_schedule,
            Some(LrSchedule::Cosine {
                warmup_epochs: 2.0,
                min_factor: 0.0
            })
        );
        assert_eq!(spec.grad_clip_norm, Some(1.0));
    }
}
