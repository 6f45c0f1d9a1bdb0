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

pub use super::optimizer::OptimizerSpec;
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
    pub epochs: usize,
    pub batch_size: usize,
    /// Fraction of the rows held out for validation (stratified for classifiers).
    pub validation_split: f64,
    /// Seeds the split, the shuffles and the initial weights.
    pub seed: u64,
    /// Stop after this many epochs without a better validation loss (0 = never).
    pub early_stopping_patience: usize,
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
            epochs: 100,
            batch_size: 32,
            validation_split: 0.2,
            seed: 42,
            early_stopping_patience: 10,
            promote: Promote::IfBetter,
        }
    }
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

impl TrainSpec {
    /// Range checks and combinations serde cannot express; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 || self.epochs > MAX_EPOCHS {
            return Err(format!(
                "epochs must be between 1 and {MAX_EPOCHS}, got {}",
                self.epochs
            ));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(format!(
                "batch_size must be between 1 and {MAX_BATCH_SIZE}, got {}",
                self.batch_size
            ));
        }
        if !(self.validation_split > 0.0 && self.validation_split < 1.0) {
            return Err(format!(
                "validation_split must be between 0 and 1 (exclusive), got {}",
                self.validation_split
            ));
        }
        within("l1", self.l1, 0.0, 100.0)?;
        within("l2", self.l2, 0.0, 100.0)?;
        self.optimizer.validate()?;
        match &self.init {
            InitSpec::Normal { std, mean } => {
                within("init.std", *std, 1e-6, 100.0)?;
                within("init.mean", *mean, -100.0, 100.0)?;
            }
            InitSpec::Uniform { a } => within("init.a", *a, 1e-6, 100.0)?,
            InitSpec::Xavier | InitSpec::Kaiming => {}
        }
        if let ModelChoice::Mlp(m) = &self.model {
            if m.kind != "mlp" {
                return Err(format!(
                    "model.kind {:?} is not supported (\"mlp\" or \"sequential\")",
                    m.kind
                ));
            }
            if m.hidden.contains(&0) || m.hidden.len() > 64 || m.hidden.iter().any(|w| *w > 65_536)
            {
                return Err("model.hidden: between 0 and 64 layers of 1 to 65536 units".into());
            }
        }
        if let ModelChoice::Sequential(cfg) = &self.model {
            cfg.plan().map_err(|e| format!("model: {e}"))?;
        }
        if let ModelChoice::File(name) = &self.model
            && (name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.'))
        {
            return Err(format!(
                "model {name:?} must be a file name in the config directory"
            ));
        }
        match (self.task, self.loss) {
            (Some(Task::Regression), Some(LossKind::CrossEntropy | LossKind::Bce)) => {
                Err("loss cross_entropy/bce needs task classification".into())
            }
            (Some(Task::Classification), Some(LossKind::Mse)) => {
                Err("loss mse needs task regression".into())
            }
            _ => Ok(()),
        }
    }
}

/// `Ok` when `lo <= v <= hi` (so never NaN or infinite), else a message naming the
/// field: every number of a recipe is checked, so no value reaches Burn that could
/// make it panic or overflow `f32`.
pub(super) fn within(name: &str, v: f64, lo: f64, hi: f64) -> Result<(), String> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(format!(
            "{name} must be between {} and {}, got {}",
            number(lo),
            number(hi),
            number(v)
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_objects_both_parse() {
        let s: TrainSpec = serde_json::from_str(
            r#"{"optimizer": "sgd", "init": {"kind": "normal", "std": 0.5}, "model": {"hidden": [8, 4]}}"#,
        )
        .unwrap();
        assert_eq!(s.optimizer, OptimizerSpec::Sgd { lr: 0.01 });
        assert_eq!(
            s.init,
            InitSpec::Normal {
                mean: 0.0,
                std: 0.5
            }
        );
        assert_eq!(
            s.model,
            ModelChoice::Mlp(MlpShape {
                hidden: vec![8, 4],
                ..Default::default()
            })
        );
        let s: TrainSpec = serde_json::from_str(
            r#"{"model": "seed-mlp", "optimizer": {"kind": "adamw", "lr": 0.1}}"#,
        )
        .unwrap();
        assert_eq!(s.model, ModelChoice::File("seed-mlp".into()));
        assert_eq!(s.optimizer.lr(), 0.1);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_errors() {
        assert!(serde_json::from_str::<TrainSpec>(r#"{"epoch": 3}"#).is_err());
        assert!(serde_json::from_str::<TrainSpec>(r#"{"optimizer": "lbfgs"}"#).is_err());
        assert!(
            serde_json::from_str::<TrainSpec>(r#"{"optimizer": {"kind": "adam", "lrr": 1}}"#)
                .is_err()
        );
        let bad = |json: &str| {
            serde_json::from_str::<TrainSpec>(json)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        assert!(bad(r#"{"epochs": 0}"#).contains("epochs"));
        assert!(bad(r#"{"batch_size": 100000000}"#).contains("batch_size"));
        assert!(bad(r#"{"validation_split": 1.0}"#).contains("validation_split"));
        assert!(bad(r#"{"model": "../../etc/passwd"}"#).contains("model"));
        assert!(bad(r#"{"task": "regression", "loss": "bce"}"#).contains("loss"));
    }

    #[test]
    fn the_seed_recipe_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/seed-train.toml");
        let s: TrainSpec = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        s.validate().unwrap();
        assert_eq!(s.model, ModelChoice::File("seed-mlp".into()));
        assert_eq!(
            s.init,
            InitSpec::Normal {
                mean: 0.0,
                std: 0.1
            }
        );
        assert_eq!(s.epochs, 100);
        assert_eq!(s.loss, Some(LossKind::Mse));
    }

    #[test]
    fn an_inline_layer_stack_parses_and_round_trips() {
        let s: TrainSpec = serde_json::from_str(
            r#"{"model": {"kind": "sequential", "input_shape": [4], "layers": [
                {"type": "linear", "in_features": 4, "out_features": 3}]}}"#,
        )
        .unwrap();
        s.validate().unwrap();
        let ModelChoice::Sequential(cfg) = &s.model else {
            panic!("{:?}", s.model)
        };
        assert_eq!(cfg.input_shape, [4]);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["model"]["kind"], "sequential");
        let back: TrainSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        let bad: TrainSpec = serde_json::from_str(
            r#"{"model": {"kind": "sequential", "input_shape": [4], "layers": [
                {"type": "linear", "in_features": 5, "out_features": 3}]}}"#,
        )
        .unwrap();
        assert!(bad.validate().unwrap_err().contains("in_features = 5"));
    }
}
