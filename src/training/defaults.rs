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
//! - `standardize = "channel"` for an image (`input_shape` `[channels, height,
//!   width]`): per pixel, a pixel that is almost always blank has a deviation near
//!   0, and the rare row that inks it gets a value in the hundreds; per channel,
//!   and not centred, a blank pixel stays 0, the value a convolution pads with.
//!   On the bundled digits, 80/20 splits by seeds 1-10, rows never seen: a 1-conv
//!   CNN 0.979 -> 0.985 with defaults (the hand recipe 0.977 -> 0.984), a 2-conv
//!   CNN 0.979 -> 0.984 (0.981 -> 0.986); centred per channel, 0.984 / 0.983.
//!
//! Everything else keeps the documented defaults (Adam 1e-3, batch 32, 100 epochs,
//! patience 10, the best epoch's weights restored): on the bundled CNN and
//! Transformer recipes, AdamW, cosine and one-cycle schedules measured equal
//! within the seeds' spread, so nothing is changed without evidence.

use serde::{Deserialize, Serialize};

use super::error::TrainError;
use super::spec::{LevelChoice, StandardizeChoice, TrainSpec};
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

/// How inputs are standardised: the recipe's choice, or chosen from the network's
/// input shape when it is unset.
pub fn standardize(
    choice: Option<StandardizeChoice>,
    net: &NetConfig,
) -> Result<(StandardizeChoice, Option<Chosen>), TrainError> {
    let shape = net.input_shape();
    match choice {
        Some(StandardizeChoice::Channel) if shape.len() < 2 || net.ids().is_some() => {
            Err(TrainError::recipe(
                "standardize = \"channel\" applies to a numeric input of shape [channels, ...]",
            ))
        }
        Some(c) => Ok((c, None)),
        None if shape.len() == 3 && net.ids().is_none() => Ok((
            StandardizeChoice::Channel,
            Some(Chosen {
                field: "standardize".into(),
                value: "channel".into(),
                reason: format!(
                    "an image input {shape:?}: each channel scaled by its deviation over all its pixels, not centred, so blank pixels stay 0 like a convolution's padding"
                ),
            }),
        )),
        None => Ok((StandardizeChoice::Feature, None)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Standardize;

    fn net(toml: &str) -> NetConfig {
        NetConfig::parse(toml, false).unwrap()
    }

    const CNN: &str = r#"task = "classification"
[architecture]
kind = "sequential"
input_shape = [2, 4, 4]
layers = [
  { type = "conv2d", in_channels = 2, out_channels = 4, kernel_size = 3, padding = 1 },
  { type = "flatten" },
  { type = "linear", in_features = 64, out_features = 3 },
]"#;

    const MLP: &str = r#"task = "regression"
[architecture]
kind = "mlp"
input = 5
hidden = [8]
output = 1"#;

    /// An image is scaled per channel unless the recipe says otherwise; anything
    /// else per feature; `channel` on a flat input is the recipe's error.
    #[test]
    fn images_are_scaled_per_channel_and_the_rest_per_feature() {
        let (by, chosen) = standardize(None, &net(CNN)).unwrap();
        assert_eq!(by, StandardizeChoice::Channel);
        let chosen = chosen.unwrap();
        assert_eq!(chosen.field, "standardize");
        assert_eq!(chosen.value, "channel");
        let (by, chosen) = standardize(Some(StandardizeChoice::Feature), &net(CNN)).unwrap();
        assert_eq!((by, chosen), (StandardizeChoice::Feature, None));
        assert_eq!(
            standardize(None, &net(MLP)).unwrap(),
            (StandardizeChoice::Feature, None)
        );
        let err = standardize(Some(StandardizeChoice::Channel), &net(MLP)).unwrap_err();
        assert!(err.to_string().contains("[channels, ...]"), "{err}");
    }

    /// Per channel: one deviation over every pixel of the channel and row, no
    /// centring, a blank channel left at deviation 1; blank pixels stay 0.
    #[test]
    fn channel_scaling_keeps_blank_pixels_at_zero() {
        // Two rows of two channels of 3 pixels: channel 0 varies, channel 1 blank.
        let rows = [0.0, 2.0, 4.0, 0.0, 0.0, 0.0, 0.0, 8.0, 10.0, 0.0, 0.0, 0.0];
        let s = Standardize::fit_channels(&rows, 2, 6);
        assert_eq!(s.mean, vec![0.0; 6]);
        let pixels = [0.0f64, 2.0, 4.0, 0.0, 8.0, 10.0];
        let mean = pixels.iter().sum::<f64>() / 6.0;
        let sd = (pixels.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / 6.0).sqrt() as f32;
        assert!(s.std[..3].iter().all(|d| (d - sd).abs() < 1e-5), "{s:?}");
        assert_eq!(&s.std[3..], &[1.0; 3]);
        let mut x = rows;
        s.apply(&mut x);
        assert_eq!(x[0], 0.0);
        assert!((x[2] - 4.0 / sd).abs() < 1e-5);
        assert_eq!(&x[3..6], &[0.0; 3]);
    }
}
