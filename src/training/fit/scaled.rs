//! The rows a fit trains and validates on: split, levelled (when chosen),
//! standardised, and checked to stay finite.

use super::super::data::{DataError, Dataset};
use super::super::defaults::{self, Chosen};
use super::super::error::TrainError;
use super::super::spec::{StandardizeChoice, TrainSpec};
use crate::model::level::Level;
use crate::model::{NetConfig, Standardize, Task};

/// The split and its network-ready values.
pub struct Scaled {
    /// The training rows as given (the profile is fitted on them).
    pub train: Dataset,
    /// The validation rows as given (versions are compared on them).
    pub validation: Dataset,
    pub train_x: Vec<f32>,
    pub train_y: Vec<f32>,
    pub val_x: Vec<f32>,
    pub val_y: Vec<f32>,
    pub standardize: Option<Standardize>,
    pub target_scale: Option<Standardize>,
    pub level: Option<Level>,
    /// Each validation row's level, added back before it is scored.
    pub val_levels: Option<Vec<f32>>,
}

/// Splits `data` by `spec`, picks the level (recording a choice in `defaults`),
/// and standardises inputs and (regression) targets on the training rows.
pub fn scale(
    data: &Dataset,
    spec: &TrainSpec,
    net: &NetConfig,
    defaults: &mut Vec<Chosen>,
) -> Result<Scaled, TrainError> {
    let (train_idx, val_idx) = spec.split(data)?;
    let train = data.select(&train_idx);
    let validation = data.select(&val_idx);
    let width = data.width();
    let (level, chosen) = defaults::level(spec.level, net, data.task, &train.x, width, &train.y)?;
    defaults.extend(chosen);
    let levelled = |d: &Dataset| {
        let (mut x, mut y) = (d.x.clone(), d.y.clone());
        let offsets = level.map(|l| l.offsets(&x, width));
        if let Some(o) = &offsets {
            Level::remove(&mut x, width, o);
            Level::remove(&mut y, 1, o);
        }
        (x, y, offsets)
    };
    let (mut train_x, train_y, _) = levelled(&train);
    let (mut val_x, val_y, val_levels) = levelled(&validation);
    // Embedding ids are never standardised.
    let (by, chosen) = defaults::standardize(spec.standardize, net)?;
    defaults.extend(chosen);
    let standardize = net.ids().is_none().then(|| match by {
        StandardizeChoice::Feature => Standardize::fit(&train_x, width),
        StandardizeChoice::Channel => {
            Standardize::fit_channels(&train_x, net.input_shape()[0], width)
        }
    });
    let target_scale = match data.task {
        Task::Regression => Some(Standardize::fit(&train_y, 1)),
        Task::Classification => None,
    };
    if let Some(s) = &standardize {
        s.apply(&mut train_x);
        s.apply(&mut val_x);
    }
    let scale_y = |y: Vec<f32>| match &target_scale {
        Some(s) => y.iter().map(|v| (v - s.mean[0]) / s.std[0]).collect(),
        None => y,
    };
    let (train_y, val_y) = (scale_y(train_y), scale_y(val_y));
    check_scaled(&train, &train_x, &train_y)?;
    check_scaled(&validation, &val_x, &val_y)?;
    Ok(Scaled {
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
    })
}

/// Refuses rows whose standardised values overflow `f32` (values near its limit
/// in a column whose spread is as large): they could only train to a non-finite
/// loss. `raw` is the data before standardising, `x` and `y` after.
fn check_scaled(raw: &Dataset, x: &[f32], y: &[f32]) -> Result<(), TrainError> {
    let too_large = |what: String| {
        TrainError::Data(DataError::Value(format!(
            "{what} is too large to standardise (it overflows 32-bit floats); rescale the column"
        )))
    };
    if let Some(k) = x.iter().position(|v| !v.is_finite()) {
        let column = &raw.features[k % raw.width().max(1)];
        return Err(too_large(format!(
            "column {column:?}: the value {}",
            raw.x[k]
        )));
    }
    if let Some(k) = y.iter().position(|v| !v.is_finite()) {
        return Err(too_large(format!("the target value {}", raw.y[k])));
    }
    Ok(())
}
