//! `[models.<name>]`: one model's own settings over the process's. A model
//! named here (a named model, or the default one by `model.name`) runs with
//! these keys of `[batching]` and any keys of `[monitoring]` and `[retrain]` in
//! place of the process's; every other model, and every other key, keeps the process's.
//! [`Config::for_model`] makes the settings a model runs with.

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// `section` with the keys of `over` in place (`models.<name>.<what>` names an
/// error).
fn merged<T: Serialize + serde::de::DeserializeOwned + Clone>(
    section: &T,
    over: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    what: &str,
) -> Result<T, ConfigError> {
    if over.is_empty() {
        return Ok(section.clone());
    }
    let mut value = serde_json::to_value(section).expect("settings serialize");
    for (key, v) in over {
        value[key] = v.clone();
    }
    serde_json::from_value(value)
        .map_err(|e| ConfigError::Load(format!("models.{name}.{what}: {e}")))
}

/// One model's section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelOverrides {
    pub batching: BatchingOverrides,
    /// Keys of `[monitoring]` (`sample_rate`, `drift_threshold`, ...), each over
    /// the process's value; an unknown key is an error at start.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub monitoring: serde_json::Map<String, serde_json::Value>,
    /// Keys of `[retrain]` (`enabled`, `min_new_labels`, `gate`, ...), each over
    /// the process's value: a named model's own automatic retraining.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub retrain: serde_json::Map<String, serde_json::Value>,
}

/// The `[batching]` keys that are a model's own: its admission bound, its
/// largest request, its default deadline, and the size and delay of its
/// batches (at most the process's `max_batch_size`: the executor's passes are
/// sized by it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BatchingOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queue_delay_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_queue_capacity: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_timeout_ms: Option<u64>,
}

impl Config {
    /// The settings the model `name` runs with: the process's, with its
    /// `[models.<name>]` keys in place (and no `models` table of its own).
    pub fn for_model(&self, name: &str) -> Result<Config, ConfigError> {
        let mut config = self.clone();
        config.models.clear();
        let Some(own) = self.models.get(name) else {
            return Ok(config);
        };
        let b = &own.batching;
        if let Some(v) = b.max_batch_size {
            config.batching.max_batch_size = v;
        }
        if let Some(v) = b.max_queue_delay_ms {
            config.batching.max_queue_delay_ms = v;
        }
        if let Some(v) = b.model_queue_capacity {
            config.batching.model_queue_capacity = Some(v);
        }
        if let Some(v) = b.max_request_rows {
            config.batching.max_request_rows = v;
        }
        if let Some(v) = b.default_timeout_ms {
            config.batching.default_timeout_ms = v;
        }
        config.monitoring = merged(&config.monitoring, &own.monitoring, name, "monitoring")?;
        config.retrain = merged(&config.retrain, &own.retrain, name, "retrain")?;
        Ok(config)
    }

    /// Each `[models.<name>]`: a model name, and settings that pass the same
    /// checks as the process's, errors naming `models.<name>.<key>`.
    pub(super) fn validate_models(&self) -> Result<(), ConfigError> {
        for name in self.models.keys() {
            if name != &self.model.name {
                crate::registry::ModelName::parse(name).map_err(|e| {
                    ConfigError::Load(format!("invalid config: models.{name}: {e}"))
                })?;
            }
            let own = self.for_model(name)?;
            if own.batching.max_batch_size > self.batching.max_batch_size {
                return Err(ConfigError::Load(format!(
                    "invalid config: models.{name}.batching.max_batch_size: must be at most batching.max_batch_size ({}), got {}",
                    self.batching.max_batch_size, own.batching.max_batch_size
                )));
            }
            own.validate().map_err(|e| match e {
                ConfigError::Invalid { key, reason } => {
                    ConfigError::Load(format!("invalid config: models.{name}.{key}: {reason}"))
                }
                other => other,
            })?;
        }
        Ok(())
    }
}
