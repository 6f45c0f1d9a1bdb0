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
//! - the sizes, from the row count ([`sized`]):
//!   - `validation_split`: about [`VALIDATION_ROWS`] rows, within 10% and 20%.
//!     A score on 200 rows is as steady with 1,400 rows as with 100,000, and
//!     every row not held out trains. On the held-out digits (80/20 splits by
//!     seeds 1-20) a 1-conv CNN went 0.9853 -> 0.9861 with 14% instead of 20%.
//!   - `batch_size`: 32 up to 16,384 training rows; above, the training rows /
//!     256 rounded down to a power of two, at most 512 (and within
//!     `training.max_activation_mb`): a large set keeps about 256 steps an
//!     epoch, in batches that use the CPU's matrix units better.
//!   - `epochs`: enough for about [`STEPS`] optimizer steps, within 10 and 300;
//!     early stopping still ends a run that stops improving. A small series gets
//!     more passes than 100 (a GRU on the yearly sunspots: R² 0.840 -> 0.844,
//!     against AR(12)'s 0.861), a large set fewer. 3,000 steps were tried first:
//!     an MLP on 2,000 rows stopped short (integrated gradients then found the
//!     two true features in 93.5% of instances, against at least 98% with
//!     5,000).
//!
//! Everything else keeps the documented defaults (Adam 1e-3, patience 10, the
//! best epoch's weights restored): on the bundled CNN and Transformer recipes,
//! AdamW, cosine and one-cycle schedules measured equal within the seeds'
//! spread, so nothing is changed without evidence.

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

/// Validation rows aimed at when `validation_split` is unset.
pub const VALIDATION_ROWS: f64 = 200.0;
/// Optimizer steps a run is planned for when `epochs` is unset.
pub const STEPS: usize = 5_000;
/// Training rows per step of the batch size chosen for large sets.
const ROWS_PER_STEP_RATIO: usize = 256;

/// Fills `validation_split`, `batch_size` and `epochs` where the recipe left
/// them unset, from the `rows` of usable data, with the network's widest layer
/// kept within `max_activation_mb` by the batch chosen.
pub fn sized(
    spec: &TrainSpec,
    net: &NetConfig,
    rows: usize,
    max_activation_mb: u64,
) -> (TrainSpec, Vec<Chosen>) {
    let mut spec = spec.clone();
    let mut chosen = Vec::new();
    let n = rows.max(1) as f64;
    if spec.validation_split.is_none() && spec.validation_last.is_none() {
        let fraction = ((VALIDATION_ROWS / n).clamp(0.1, 0.2) * 1000.0).round() / 1000.0;
        spec.validation_split = Some(fraction);
        chosen.push(Chosen {
            field: "validation_split".into(),
            value: fraction.into(),
            reason: format!(
                "{rows} rows: about {VALIDATION_ROWS} held out for validation, within 10% and 20%; the rest trains"
            ),
        });
    }
    let train = match spec.validation_last {
        Some(last) => rows.saturating_sub(last),
        None => rows - (rows as f64 * spec.validation_split()).round() as usize,
    }
    .max(1);
    if spec.batch_size.is_none() {
        let by_rows = (train / ROWS_PER_STEP_RATIO).max(1);
        let mut batch = (1usize << by_rows.ilog2()).clamp(32, 512);
        let fits = |b: usize| {
            (b as u64)
                .saturating_mul(net.widest())
                .saturating_mul(4)
                .div_ceil(1 << 20)
                <= max_activation_mb
        };
        while batch > 32 && !fits(batch) {
            batch /= 2;
        }
        spec.batch_size = Some(batch);
        chosen.push(Chosen {
            field: "batch_size".into(),
            value: batch.into(),
            reason: format!(
                "{train} training rows: 32, or the rows / {ROWS_PER_STEP_RATIO} as a power of two up to 512"
            ),
        });
    }
    if spec.epochs.is_none() {
        let steps = train.div_ceil(spec.batch_size());
        let epochs = STEPS.div_ceil(steps).clamp(10, 300);
        spec.epochs = Some(epochs);
        chosen.push(Chosen {
            field: "epochs".into(),
            value: epochs.into(),
            reason: format!(
                "{steps} steps an epoch: about {STEPS} steps in all, within 10 and 300 epochs (early stopping may end sooner)"
            ),
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

    fn sizes(spec: &TrainSpec, toml: &str, rows: usize, mb: u64) -> (f64, usize, usize, usize) {
        let (sized, chosen) = sized(spec, &net(toml), rows, mb);
        (
            sized.validation_split(),
            sized.batch_size(),
            sized.epochs(),
            chosen.len(),
        )
    }

    /// About 200 validation rows within 10-20%, batch 32 until 16,384 training
    /// rows then rows / 256 up to 512 (within the activation budget), epochs for
    /// about 3,000 steps within 10-300; a recipe's own values are kept.
    #[test]
    fn sizes_follow_the_row_count_and_keep_the_recipes_own() {
        let spec = TrainSpec::default();
        assert_eq!(sizes(&spec, MLP, 150, 256), (0.2, 32, 300, 3));
        // The digits: 1,437 rows -> 200 held out, 1,237 train, 39 steps an epoch.
        assert_eq!(sizes(&spec, MLP, 1_437, 256), (0.139, 32, 129, 3));
        assert_eq!(sizes(&spec, MLP, 3_000, 256), (0.1, 32, 59, 3));
        // 100,000 rows: 90,000 train -> 351 -> 256 a batch, 352 steps -> 15 epochs.
        assert_eq!(sizes(&spec, MLP, 100_000, 256), (0.1, 256, 15, 3));
        assert_eq!(sizes(&spec, MLP, 10_000_000, 256), (0.1, 512, 10, 3));
        // A wide layer keeps the batch within the activation budget.
        let wide = MLP.replace("hidden = [8]", "hidden = [65536]");
        assert_eq!(sizes(&spec, &wide, 100_000, 16).1, 64);
        assert_eq!(sizes(&spec, &wide, 100_000, 1).1, 32);
        // validation_last: the newest rows validate, the rest train.
        let last = TrainSpec {
            validation_last: Some(100),
            ..TrainSpec::default()
        };
        let (sized_last, chosen) = sized(&last, &net(MLP), 300, 256);
        assert_eq!(sized_last.validation_split, None);
        assert_eq!((sized_last.epochs(), chosen.len()), (300, 2));
        let own = TrainSpec {
            epochs: Some(5),
            batch_size: Some(7),
            validation_split: Some(0.5),
            ..TrainSpec::default()
        };
        assert_eq!(sizes(&own, MLP, 100_000, 256), (0.5, 7, 5, 0));
        // One row, or none: nothing divides by zero.
        assert_eq!(sizes(&spec, MLP, 1, 256).1, 32);
        assert_eq!(sizes(&spec, MLP, 0, 256).1, 32);
    }
}
