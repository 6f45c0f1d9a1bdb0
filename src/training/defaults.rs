//! Choices kiln makes where a recipe leaves a field unset, from the network and
//! the training rows, each written into the version's training summary and the job
//! record as a [`Chosen`] (field, value, reason).
//!
//! What is chosen, and on what evidence (issue 21's measurements, on generated and
//! real series):
//! - `grad_clip_norm = 1` for a recurrent network: a gradient through time can
//!   blow up on one batch; clipping at 1 was neutral to slightly better on every
//!   LSTM/GRU series measured.
//! - `level = "window_mean"` for a regression on one series (a window of lags) when
//!   the window's mean leaves at most half of the target's variance
//!   ([`level::worth_it`]): a trending series then looks, window by window, like
//!   its training rows, where a recurrent network could not extrapolate (R² below
//!   zero without it). A stationary cycle keeps its absolute level.
//!
//! Everything else keeps the documented defaults (Adam 1e-3, batch 32, 100 epochs,
//! patience 10, the best epoch's weights restored): on the bundled CNN and
//! Transformer recipes, AdamW, cosine and one-cycle schedules measured equal
//! within the seeds' spread, so nothing is changed without evidence.

use serde::{Deserialize, Serialize};

use super::error::TrainError;
use super::spec::{LevelChoice, TrainSpec};
use crate::model::level::{self, Level};
use crate::model::{NetConfig, Task};

/// One field kiln chose.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Chosen {
    pub field: String,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    pub reason: String,
}

/// Fills the recipe fields left unset that depend on the network only.
pub fn recipe(spec: &TrainSpec, net: &NetConfig) -> (TrainSpec, Vec<Chosen>) {
    let mut spec = spec.clone();
    let mut chosen = Vec::new();
    if spec.grad_clip_norm.is_none() && net.recurrent() {
        spec.grad_clip_norm = Some(1.0);
        chosen.push(Chosen {
            field: "grad_clip_norm".into(),
            value: 1.0.into(),
            reason: "a recurrent network: gradients through time are clipped to a global norm of 1"
                .into(),
        });
    }
    (spec, chosen)
}

/// The level for these training rows (`x` row-major, `width` per row, `y` one
/// target per row): the recipe's, or chosen when it is unset.
pub fn level(
    choice: Option<LevelChoice>,
    net: &NetConfig,
    task: Task,
    x: &[f32],
    width: usize,
    y: &[f32],
) -> Result<(Option<Level>, Option<Chosen>), TrainError> {
    let fits =
        task == Task::Regression && net.ids().is_none() && width >= 2 && net.output_width() == 1;
    match choice {
        Some(LevelChoice::None) => Ok((None, None)),
        Some(LevelChoice::WindowMean) if fits => Ok((Some(Level::WindowMean), None)),
        Some(LevelChoice::WindowMean) => Err(TrainError::recipe(
            "level = \"window_mean\" applies to a regression with one output on at least 2 numeric inputs",
        )),
        None if fits && net.single_series() => {
            let ratio = level::variance_ratio(x, width, y);
            let on = level::worth_it(ratio);
            let reason = format!(
                "one series in time order: relative to each window's mean the target keeps {:.0}% of its variance ({} {:.0}%)",
                ratio * 100.0,
                if on { "at most" } else { "over" },
                level::WORTH_IT * 100.0
            );
            let value = if on { "window_mean" } else { "none" };
            Ok((
                on.then_some(Level::WindowMean),
                Some(Chosen {
                    field: "level".into(),
                    value: value.into(),
                    reason,
                }),
            ))
        }
        None => Ok((None, None)),
    }
}
