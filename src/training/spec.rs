//! The training recipe ([`TrainSpec`]): what `POST /train` and `kiln train --config`
//! accept, with documented defaults, validated before a job is queued.
//!
//! Choices may be written as a name (`"adam"`, `"xavier"`) or as an object with a
//! `kind` and the knobs (`{"kind": "adam", "lr": 0.01}`); a model is a file in the
//! model-config directory (`"seed-mlp"`), an MLP shape (`{"hidden": [64]}`), or a
//! layer stack written as a model config's `[architecture]` is
//! (`{"kind": "sequential", "input_shape": [1, 8, 8], "layers": [...]}`).

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::TrainError;
pub use super::optimizer::OptimizerSpec;
pub use super::schedule::LrSchedule;
pub use super::search::SearchSpec;
use crate::model::Task;
use crate::model::net::{ActivationKind, SequentialConfig};

/// A full training recipe. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSpec {
    /// Name of the target column (CSV) .
    pub target: String,
    /// `regression` or `classification`; inferred from the targets when absent.
    pub task: Option<Task>,
    /// The network: an MLP shape, a layer stack, or the name of a model-config file.
    #[serde(deserialize_with = "model_choice")]
    #[schema(value_type = Object)]
    pub model: ModelChoice,
    #[serde(deserialize_with = "name_or_object")]
    pub init: InitSpec,
    #[serde(deserialize_with = "name_or_object")]
    pub optimizer: OptimizerSpec,
    /// `mse` (regression), `cross_entropy` or `bce` (classification); by task when absent.
    pub loss: Option<LossKind>,
    /// L1 penalty coefficient on every weight and bias.
    pub l1: f64,
    /// L2 penalty coefficient on every weight and bias.
    pub l2: f64,
    /// Passes over the training rows (at most; early stopping may end sooner);
    /// absent: chosen from the row count (see [`super::defaults::sized`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Rows per optimizer step; absent: chosen from the row count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Fraction of the rows held out for validation (stratified for classifiers);
    /// absent: chosen from the row count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_split: Option<f64>,
    /// Validate on the last this many rows (the most recent) instead of a random
    /// split; automatic retraining validates on the newest labelled rows this way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_last: Option<usize>,
    /// Seeds the split, the shuffles and the initial weights.
    pub seed: u64,
    /// Stop after this many epochs without a better validation loss (0 = never).
    pub early_stopping_patience: usize,
    /// How the learning rate moves over the planned epochs (`constant`,
    /// `cosine`, `one_cycle`, `step`, with optional warm-up); absent: constant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub lr_schedule: Option<LrSchedule>,
    /// Scale each batch's gradients down to this global L2 norm when over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_clip_norm: Option<f64>,
    /// `window_mean` or `none`: take each instance (and its target) relative to the
    /// mean of its inputs, for a window of one series; absent: chosen from the
    /// network and the training rows (see [`super::defaults`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelChoice>,
    /// `feature` (each input centred and scaled by its own mean and deviation) or
    /// `channel` (an image's every pixel of a channel scaled by the channel's
    /// deviation, not centred); absent: chosen from the network's input (see
    /// [`super::defaults`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standardize: Option<StandardizeChoice>,
    /// Train this many trials (see [`super::search`]) and keep the best.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSpec>,
    /// Whether the new version replaces the active one.
    pub promote: Promote,
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            target: "target".into(),
            task: None,
            model: ModelChoice::Mlp(MlpShape::default()),
            init: InitSpec::Kaiming,
            optimizer: OptimizerSpec::Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
            loss: None,
            l1: 0.0,
            l2: 0.0,
            epochs: None,
            batch_size: None,
            validation_split: None,
            validation_last: None,
            seed: 42,
            early_stopping_patience: 10,
            lr_schedule: None,
            grad_clip_norm: None,
            level: None,
            standardize: None,
            search: None,
            promote: Promote::IfBetter,
        }
    }
}

/// The recipe's `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LevelChoice {
    /// Never level.
    None,
    /// Level by the window's mean.
    WindowMean,
}

/// The recipe's `standardize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StandardizeChoice {
    /// Each input by its own mean and deviation.
    Feature,
    /// Each channel of an image by its deviation over all its pixels, not centred.
    Channel,
}

/// Where the network comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelChoice {
    /// A model-config file in the config directory (`seed-mlp` or `seed-mlp.toml`).
    File(String),
    /// An MLP whose input and output widths follow the data.
    Mlp(MlpShape),
    /// A layer stack (`kind = "sequential"`): `input_shape` must hold the data's
    /// feature columns, and the output the task's width.
    Sequential(SequentialConfig),
}

impl Serialize for ModelChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ModelChoice::File(name) => name.serialize(s),
            ModelChoice::Mlp(shape) => shape.serialize(s),
            ModelChoice::Sequential(cfg) => {
                let mut v = serde_json::to_value(cfg).map_err(serde::ser::Error::custom)?;
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("kind".into(), "sequential".into());
                }
                v.serialize(s)
            }
        }
    }
}

/// The hidden part of an MLP; input and output widths come from the data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MlpShape {
    /// `mlp` (a layer stack is `{"kind": "sequential", ...}`).
    pub kind: String,
    pub hidden: Vec<usize>,
    pub activation: ActivationKind,
}

impl Default for MlpShape {
    fn default() -> Self {
        Self {
            kind: "mlp".into(),
            hidden: vec![64],
            activation: ActivationKind::Relu,
        }
    }
}

/// Weight initialisation (biases too).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InitSpec {
    /// Normal(mean, std).
    Normal {
        #[serde(default)]
        mean: f64,
        #[serde(default = "default_std")]
        std: f64,
    },
    /// Uniform(-a, a).
    Uniform {
        #[serde(default = "default_a")]
        a: f64,
    },
    /// Xavier/Glorot uniform.
    Xavier,
    /// Kaiming/He uniform (for ReLU networks).
    Kaiming,
}

fn default_std() -> f64 {
    0.1
}
fn default_a() -> f64 {
    0.1
}

/// The training loss.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    Mse,
    CrossEntropy,
    /// Binary cross-entropy: two classes, one sigmoid output.
    Bce,
}

/// What to do with the new version once trained.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Promote {
    /// Always make it active.
    Always,
    /// Make it active if its validation metric beats the active version's on the
    /// same validation rows (or if the active version cannot score them at all).
    #[default]
    IfBetter,
    /// Keep it in the store only.
    Never,
}

/// Most epochs and rows per batch a job may ask for.
pub const MAX_EPOCHS: usize = 100_000;
pub const MAX_BATCH_SIZE: usize = 65_536;
/// What a recipe that leaves them unset gets before the rows are known (and
/// where nothing sizes it: a recipe checked on its own).
pub const DEFAULT_EPOCHS: usize = 100;
pub const DEFAULT_BATCH_SIZE: usize = 32;
pub const DEFAULT_VALIDATION_SPLIT: f64 = 0.2;

impl TrainSpec {
    /// The epochs asked for, or [`DEFAULT_EPOCHS`] while unset.
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(DEFAULT_EPOCHS)
    }

    /// The batch size asked for, or [`DEFAULT_BATCH_SIZE`] while unset.
    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE)
    }

    /// The validation fraction asked for, or [`DEFAULT_VALIDATION_SPLIT`] while
    /// unset.
    pub fn validation_split(&self) -> f64 {
        self.validation_split.unwrap_or(DEFAULT_VALIDATION_SPLIT)
    }
}

impl TrainSpec {
    /// The (train, validation) rows of `data` this recipe asks for.
    pub fn split(
        &self,
        data: &super::data::Dataset,
    ) -> Result<(Vec<usize>, Vec<usize>), TrainError> {
        Ok(match self.validation_last {
            Some(n) => data.split_last(n, self.seed)?,
            None => data.split(self.validation_split(), self.seed)?,
        })
    }
}

/// `Ok` when `lo <= v <= hi` (so never NaN or infinite), else a message naming the
/// field: every number of a recipe is checked, so no value reaches Burn that could
/// make it panic or overflow `f32`.
pub(crate) fn within(name: &str, v: f64, lo: f64, hi: f64) -> Result<(), TrainError> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(TrainError::Recipe(format!(
            "{name} must be between {} and {}, got {}",
            number(lo),
            number(hi),
            number(v)
        )))
    }
}

/// `1e-10` rather than `0.0000000001`.
fn number(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-3..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// `"name"` means `{"kind": "name"}`.
fn name_or_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let value = match value {
        serde_json::Value::String(kind) => serde_json::json!({ "kind": kind }),
        other => other,
    };
    serde_json::from_value(value).map_err(D::Error::custom)
}

/// A string names a model-config file; an object is an MLP shape, or a layer stack
/// when its `kind` is `sequential`.
fn model_choice<'de, D: Deserializer<'de>>(d: D) -> Result<ModelChoice, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(name) => Ok(ModelChoice::File(name)),
        serde_json::Value::Object(mut m)
            if m.get("kind").and_then(|k| k.as_str()) == Some("sequential") =>
        {
            m.remove("kind");
            serde_json::from_value(serde_json::Value::Object(m))
                .map(ModelChoice::Sequential)
                .map_err(D::Error::custom)
        }
        other => serde_json::from_value(other)
            .map(ModelChoice::Mlp)
            .map_err(D::Error::custom),
    }
}

mod validate;

#[cfg(test)]
mod tests;
