//! What a saved version knows about itself besides its weights: the network
//! description, preprocessing statistics, label names and where it came from.
//!
//! Written as `model.json` next to `weights.safetensors` in every version directory,
//! so a version rebuilds itself and applies its own preprocessing at `/predict`.

use serde::{Deserialize, Serialize};

use super::net::{NetConfig, NetConfigError, Task};

/// The format of `model.json` this build writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// The contents of a version's `model.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Layout version of this file.
    pub format: u32,
    /// The network, enough to rebuild it before loading the weights.
    pub net: NetConfig,
    /// Feature standardisation fitted on training data, applied before `forward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardize: Option<Standardize>,
    /// Regression targets were standardised for training: outputs are mapped back
    /// with `y * std + mean`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_standardize: Option<Standardize>,
    /// Instances (and targets, in training) are taken relative to this level, which
    /// is added back to predictions (single-series regression; see [`super::level`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<super::level::Level>,
    /// Names of the input features, in order (when trained from named columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_names: Option<Vec<String>>,
    /// Class names, index-aligned with the network's outputs (classifiers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// How the version was made, for people reading `GET /models` (e.g. `import`).
    pub source: String,
    /// Seconds since the Unix epoch when the version was written.
    pub created_at: u64,
    /// Free-form evaluation figures (validation loss, accuracy, ...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metrics: serde_json::Map<String, serde_json::Value>,
    /// The training recipe and data summary, for versions made by training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
    /// The training data's profile, for drift (versions made by training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<super::profile::Profile>,
    /// The default model an empty store starts with: a stand-in that any first
    /// trained version replaces, whatever its features or labels.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub placeholder: bool,
}

impl Manifest {
    /// A manifest for `net` with no preprocessing, made now.
    pub fn new(net: NetConfig, source: impl Into<String>) -> Self {
        Self {
            format: MANIFEST_FORMAT,
            net,
            standardize: None,
            target_standardize: None,
            level: None,
            feature_names: None,
            labels: None,
            source: source.into(),
            created_at: crate::clock::unix_now(),
            metrics: serde_json::Map::new(),
            training: None,
            profile: None,
            placeholder: false,
        }
    }

    /// Checks that the parts agree with each other (widths, label count).
    pub fn validate(&self) -> Result<(), NetConfigError> {
        self.net.validate()?;
        if self.format != MANIFEST_FORMAT {
            return Err(NetConfigError(format!(
                "model.json format {} is not supported (this build reads {MANIFEST_FORMAT})",
                self.format
            )));
        }
        if self.standardize.is_some() && self.net.ids().is_some() {
            return Err(NetConfigError(
                "the inputs of an embedding are ids and are never standardised".into(),
            ));
        }
        if let Some(s) = &self.standardize {
            let width = self.net.input_width();
            if s.mean.len() != width || s.std.len() != width {
                return Err(NetConfigError(format!(
                    "standardisation has {} means and {} deviations for {width} inputs",
                    s.mean.len(),
                    s.std.len()
                )));
            }
            if s.std.iter().any(|v| !(v.is_finite() && *v > 0.0))
                || s.mean.iter().any(|v| !v.is_finite())
            {
                return Err(NetConfigError(
                    "standardisation statistics must be finite, deviations > 0".into(),
                ));
            }
        }
        if self.level.is_some()
            && (self.net.task != Task::Regression
                || self.net.ids().is_some()
                || self.net.input_width() < 2)
        {
            return Err(NetConfigError(
                "a level applies to regression on a window of at least 2 numeric inputs".into(),
            ));
        }
        if let Some(names) = &self.feature_names
            && names.len() != self.net.input_width()
        {
            return Err(NetConfigError(format!(
                "{} feature names for {} inputs",
                names.len(),
                self.net.input_width()
            )));
        }
        if let Some(t) = &self.target_standardize
            && (t.mean.len() != self.net.output_width() || t.std.len() != self.net.output_width())
        {
            return Err(NetConfigError(
                "target standardisation does not match the outputs".into(),
            ));
        }
        if let Some(label) = self.labels.as_deref().and_then(duplicate_label) {
            return Err(NetConfigError(format!(
                "label {} is given twice; class labels must be distinct",
                crate::quote::quoted(label)
            )));
        }
        match (&self.labels, self.net.task) {
            (Some(labels), Task::Classification) if labels.len() != self.class_count() => {
                Err(NetConfigError(format!(
                    "{} labels for {} classes",
                    labels.len(),
                    self.class_count()
                )))
            }
            (Some(_), Task::Regression) => {
                Err(NetConfigError("a regression model has no labels".into()))
            }
            _ => Ok(()),
        }
    }

    /// Number of classes: one per output, or two for a single sigmoid output.
    pub fn class_count(&self) -> usize {
        self.net.class_count()
    }

    /// Class names: the saved ones, else the class indices as text.
    pub fn label_names(&self) -> Vec<String> {
        self.labels
            .clone()
            .unwrap_or_else(|| (0..self.class_count()).map(|i| i.to_string()).collect())
    }
}

/// The first label that appears twice in `labels`, if any: answers and feedback
/// name classes by label, so two classes must never share one.
pub fn duplicate_label(labels: &[String]) -> Option<&str> {
    let mut seen = std::collections::HashSet::with_capacity(labels.len());
    labels
        .iter()
        .find(|l| !seen.insert(l.as_str()))
        .map(String::as_str)
}

/// Per-feature standardisation `(x - mean) / std`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Standardize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardize {
    /// Per-column mean and standard deviation of row-major `rows` with `width`
    /// columns; a constant column gets deviation 1, so it maps to 0 instead of
    /// dividing by zero.
    pub fn fit(rows: &[f32], width: usize) -> Self {
        let n = (rows.len() / width) as f64;
        let mut mean = vec![0f64; width];
        for row in rows.chunks_exact(width) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += f64::from(*v) / n;
            }
        }
        let mut var = vec![0f64; width];
        for row in rows.chunks_exact(width) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(*v) - m).powi(2) / n;
            }
        }
        Self {
            mean: mean.iter().map(|m| *m as f32).collect(),
            std: var
                .iter()
                .map(|v| if *v > 1e-12 { v.sqrt() as f32 } else { 1.0 })
                .collect(),
        }
    }

    /// For images of `channels` channels (row-major `rows`, `width` values each,
    /// channel-major): each channel's pixels divided by the channel's deviation over
    /// all its pixels and rows, and not centred, so a blank pixel stays 0 (the value
    /// a convolution pads with). Written per input, as [`fit`](Self::fit) is.
    pub fn fit_channels(rows: &[f32], channels: usize, width: usize) -> Self {
        let per = width / channels.max(1);
        let mut std = Vec::with_capacity(width);
        for c in 0..channels {
            let pixels: Vec<f32> = rows
                .chunks_exact(width)
                .flat_map(|row| row[c * per..(c + 1) * per].iter().copied())
                .collect();
            let one = Self::fit(&pixels, 1);
            std.extend(std::iter::repeat_n(one.std[0], per));
        }
        Self {
            mean: vec![0.0; width],
            std,
        }
    }

    /// Undoes [`apply`](Self::apply) in place.
    pub fn invert(&self, rows: &mut [f32]) {
        for row in rows.chunks_exact_mut(self.mean.len()) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = *x * s + m;
            }
        }
    }

    /// Standardises `rows` in place; `rows` is row-major with `mean.len()` columns.
    pub fn apply(&self, rows: &mut [f32]) {
        for row in rows.chunks_exact_mut(self.mean.len()) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }
}
