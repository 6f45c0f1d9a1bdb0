//! Why a `sequential` config is refused ([`SpecError`], [`EntryError`]) or its
//! matched tensors do not build it ([`BuildError`]); each names the layer
//! ([`LayerRef`]) as the config and PyTorch do.

use std::fmt;

use super::layer_error::LayerError;
use super::{MAX_ACTIVATION, MAX_LAYERS, MAX_PARAMETERS};

/// One layer of a stack: its position, `type` and `name`, shown as
/// `layer 2 (conv2d "conv1")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub index: usize,
    /// The `type` as the config writes it.
    pub kind: &'static str,
    pub name: Option<String>,
}

impl fmt::Display for LayerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "layer {} ({} {n:?})", self.index, self.kind),
            None => write!(f, "layer {} ({})", self.index, self.kind),
        }
    }
}

/// One entry of `layers` that does not read as a layer.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("layers[{index}] must be a table with a `type`, got {value}")]
    NotATable {
        index: usize,
        value: serde_json::Value,
    },
    #[error("layers[{index}]: name must be a string, got {value}")]
    Name {
        index: usize,
        value: serde_json::Value,
    },
    /// An unknown `type`, a missing or unknown argument, a value of the wrong type.
    #[error("layers[{index}] ({type_name}): {source}")]
    Layer {
        index: usize,
        /// The entry's `type` (`?` when it has none).
        type_name: String,
        source: serde_json::Error,
    },
}

/// A stack that cannot be planned: its input shape, its size, a layer's arguments
/// or input, or its names.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("input_shape must have 1 to 3 dimensions, each at least 1, got {0:?}")]
    InputShape(Vec<usize>),
    #[error("input_shape {0:?} has more than {max} values", max = MAX_ACTIVATION)]
    InputTooLarge(Vec<usize>),
    #[error("layers must hold between 1 and {max} layers, got {0}", max = MAX_LAYERS)]
    LayerCount(usize),
    /// A layer's arguments, or the input it would receive.
    #[error("{layer}: {source}")]
    Layer { layer: LayerRef, source: LayerError },
    #[error("{layer}: its output {output:?} has more than 3 dimensions per instance")]
    OutputRank { layer: LayerRef, output: Vec<usize> },
    #[error(
        "{layer}: its output {output:?} has more than {max} values per instance",
        max = MAX_ACTIVATION
    )]
    OutputTooLarge { layer: LayerRef, output: Vec<usize> },
    /// Values held inside the layer (attention scores, gates) over the limit.
    #[error(
        "{layer}: it holds {values} values per instance (more than {max})",
        max = MAX_ACTIVATION
    )]
    InnerTooLarge { layer: LayerRef, values: u64 },
    /// The stack's parameters pass the limit at this layer.
    #[error("{layer}: the model would store more than {max} values", max = MAX_PARAMETERS)]
    TooManyParameters { layer: LayerRef },
    #[error("{layer}: name must be dot-separated ASCII letters, digits and '_', got {name:?}")]
    BadName { layer: LayerRef, name: String },
    #[error("{layer}: another layer is also named {name:?}")]
    DuplicateName { layer: LayerRef, name: String },
    /// One name is a prefix of another (`fc` and `fc.0`).
    #[error("layer names {0:?} and {1:?} overlap: PyTorch's keys could not tell them apart")]
    OverlappingNames(String, String),
}

/// A tensor an import needs was not among the matched ones (they are matched
/// against the config before any is read, so this is kiln's fault, not the file's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tensor {name} was not matched")]
pub struct Unmatched {
    /// The tensor's full PyTorch name.
    pub name: String,
}

/// Matched tensors that did not build the network.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// The config has no plan.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A layer's tensor is missing.
    #[error("{layer}: {source}")]
    Layer { layer: LayerRef, source: Unmatched },
    /// A tensor of a network without layer names (an `mlp`) is missing.
    #[error(transparent)]
    Unmatched(#[from] Unmatched),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_is_named_by_position_type_and_name() {
        let conv = LayerRef {
            index: 2,
            kind: "conv2d",
            name: Some("conv1".into()),
        };
        assert_eq!(conv.to_string(), "layer 2 (conv2d \"conv1\")");
        let e = SpecError::Layer {
            layer: LayerRef {
                index: 0,
                kind: "linear",
                name: None,
            },
            source: LayerError::Size {
                arg: "in_features",
                got: 0,
            },
        };
        assert_eq!(
            e.to_string(),
            "layer 0 (linear): in_features must be between 1 and 65536, got 0"
        );
        let e = BuildError::Layer {
            layer: conv,
            source: Unmatched {
                name: "conv1.bias".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "layer 2 (conv2d \"conv1\"): tensor conv1.bias was not matched"
        );
    }
}
