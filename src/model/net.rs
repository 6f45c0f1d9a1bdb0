//! The network: its configuration (what a model-config file holds) and the Burn
//! module built from it.
//!
//! A [`NetConfig`] is plain data, saved next to every version's weights, so a saved
//! model rebuilds itself with [`NetConfig::init`]. [`Net`] is an enum of
//! architectures; the MLP is the first, and later ones slot in as new variants.

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

/// What the network's outputs mean.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One real value per output.
    Regression,
    /// One logit per class (softmax), or one logit for two classes (sigmoid);
    /// answered as label + probabilities.
    Classification,
}

/// A network description: the contents of a model-config file such as
/// `config/seed-mlp.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub task: Task,
    pub architecture: Architecture,
}

/// The supported architectures, tagged by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Architecture {
    /// Fully connected layers with one activation between them.
    Mlp(MlpConfig),
}

/// A multi-layer perceptron: `input -> hidden[0] -> ... -> output`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Number of input features.
    pub input: usize,
    /// Widths of the hidden layers, in order (may be empty).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Number of outputs (classes, for classification).
    pub output: usize,
    /// Activation after every hidden layer.
    #[serde(default)]
    pub activation: ActivationKind,
}

/// Activation applied after each hidden layer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    #[default]
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    LeakyRelu,
}

impl ActivationKind {
    fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Relu => activation::relu(x),
            Self::Gelu => activation::gelu(x),
            Self::Tanh => activation::tanh(x),
            Self::Sigmoid => activation::sigmoid(x),
            Self::LeakyRelu => activation::leaky_relu(x, 0.01),
        }
    }
}

/// A network description that cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid model config: {0}")]
pub struct NetConfigError(pub String);

impl NetConfig {
    /// Parses a model-config file (TOML, or JSON when the name ends in `.json`).
    pub fn from_file(path: &std::path::Path) -> Result<Self, NetConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NetConfigError(format!("cannot read {}: {e}", path.display())))?;
        let config: Self = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .map_err(|e| NetConfigError(format!("{}: {e}", path.display())))?
        } else {
            toml::from_str(&text).map_err(|e| NetConfigError(format!("{}: {e}", path.display())))?
        };
        config.validate()?;
        Ok(config)
    }

    /// A model-config file by name (`seed-mlp` or `seed-mlp.toml`) in `config_dir`.
    pub fn named(config_dir: &std::path::Path, name: &str) -> Result<Self, NetConfigError> {
        let file = if std::path::Path::new(name).extension().is_some() {
            config_dir.join(name)
        } else {
            config_dir.join(format!("{name}.toml"))
        };
        Self::from_file(&file).map_err(|e| NetConfigError(format!("model {name:?}: {e}")))
    }

    /// Checks the shape of the description.
    pub fn validate(&self) -> Result<(), NetConfigError> {
        let Architecture::Mlp(mlp) = &self.architecture;
        if mlp.input == 0 || mlp.output == 0 || mlp.hidden.contains(&0) {
            return Err(NetConfigError("layer widths must be at least 1".into()));
        }

        Ok(())
    }

    /// Number of input features the network expects.
    pub fn input_width(&self) -> usize {
        match &self.architecture {
            Architecture::Mlp(m) => m.input,
        }
    }

    /// Number of values the network produces per row.
    pub fn output_width(&self) -> usize {
        match &self.architecture {
            Architecture::Mlp(m) => m.output,
        }
    }

    /// Builds the network with fresh weights from `init` on `device`.
    pub fn init(&self, init: &Initializer, device: &Device) -> Net {
        match &self.architecture {
            Architecture::Mlp(cfg) => Net::Mlp(Mlp::new(cfg, init, device)),
        }
    }

    /// Builds the network with Burn's default initialisation (weights to be loaded).
    pub fn init_default(&self, device: &Device) -> Net {
        let init = LinearConfig::new(1, 1).initializer;
        self.init(&init, device)
    }
}

/// The network: one variant per architecture.
#[derive(Module, Debug)]
pub enum Net {
    Mlp(Mlp),
}

impl Net {
    /// Raw outputs: `[batch, input] -> [batch, output]` (logits for classifiers).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Net::Mlp(m) => m.forward(x),
        }
    }
}

/// A multi-layer perceptron.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    #[module(skip)]
    activation: ActivationKind,
}

impl Mlp {
    fn new(cfg: &MlpConfig, init: &Initializer, device: &Device) -> Self {
        let widths: Vec<usize> = std::iter::once(cfg.input)
            .chain(cfg.hidden.iter().copied())
            .chain(std::iter::once(cfg.output))
            .collect();
        let layers = widths
            .windows(2)
            .map(|w| {
                LinearConfig::new(w[0], w[1])
                    .with_initializer(init.clone())
                    .init(device)
            })
            .collect();
        Self {
            layers,
            activation: cfg.activation,
        }
    }

    /// `[batch, input] -> [batch, output]`; the activation follows every layer but
    /// the last.
    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.activation.apply(x);
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_config_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/seed-mlp.toml");
        let cfg = NetConfig::from_file(&path).unwrap();
        assert_eq!(cfg.task, Task::Regression);
        assert_eq!(
            cfg.architecture,
            Architecture::Mlp(MlpConfig {
                input: 1000,
                hidden: vec![500, 100],
                output: 1,
                activation: ActivationKind::Relu
            })
        );
    }

    #[test]
    fn forward_shapes() {
        let cfg = NetConfig {
            task: Task::Classification,
            architecture: Architecture::Mlp(MlpConfig {
                input: 4,
                hidden: vec![8],
                output: 3,
                activation: ActivationKind::Tanh,
            }),
        };
        let device = Device::flex();
        let net = cfg.init_default(&device);
        let out = net.forward(Tensor::zeros([5, 4], &device));
        assert_eq!(out.dims(), [5, 3]);
    }

    #[test]
    fn rejects_degenerate_configs() {
        let cfg = NetConfig {
            task: Task::Classification,
            architecture: Architecture::Mlp(MlpConfig {
                input: 4,
                hidden: vec![0],
                output: 3,
                activation: ActivationKind::Relu,
            }),
        };
        assert!(cfg.validate().is_err());
    }
}
