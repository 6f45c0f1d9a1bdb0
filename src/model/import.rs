//! Import of PyTorch-style weights: an `nn.Sequential` state_dict saved as
//! safetensors (`0.weight`, `0.bias`, `2.weight`, ...; Linear weights `[out, in]`).
//!
//! The Sequential indices count activations too (0, 2, 4 are the Linear layers), so
//! they are renumbered contiguously onto `layers.0`, `layers.1`, ...; Burn's PyTorch
//! adapter transposes Linear weights to Burn's `[in, out]`. Every tensor of the
//! network must be present with its shape, and the file must hold nothing else.

use std::path::Path;

use burn::prelude::Device;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use super::net::{Net, NetConfig};

/// The weights could not be imported into the network.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not fit the model config: {reason}")]
    Mismatch { path: String, reason: String },
}

/// Builds `config`'s network on `device` with the weights from `weights`.
pub fn pytorch_sequential(
    weights: &Path,
    config: &NetConfig,
    device: &Device,
) -> Result<Net, ImportError> {
    let path = weights.display().to_string();
    let bytes = std::fs::read(weights).map_err(|source| ImportError::Read {
        path: path.clone(),
        source,
    })?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .map_indices_contiguous(true)
        .with_key_remapping(r"^(\d+)\.", "layers.$1.")
        .skip_enum_variants(true);
    let mut net = config.init_default(device);
    let mismatch = |reason: String| ImportError::Mismatch {
        path: path.clone(),
        reason,
    };
    let report = net
        .load_from(&mut store)
        .map_err(|e| mismatch(e.to_string()))?;
    if !report.errors.is_empty() || !report.missing.is_empty() {
        return Err(mismatch(format!("{report}")));
    }
    if !report.unused.is_empty() {
        return Err(mismatch(format!(
            "tensors not in the network: {:?}",
            report.unused
        )));
    }
    Ok(net)
}
