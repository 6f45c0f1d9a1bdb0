//! Import of foreign weights for any model config: a PyTorch `state_dict` written by
//! `torch.save` (`.pth` / `.pt`, zip or legacy pickle) or saved as safetensors, in
//! PyTorch's names and layouts (`0.weight` `[out, in]`, `conv1.bias`,
//! `lstm.weight_ih_l0`, `enc.self_attn.in_proj_weight`, ...).
//!
//! The file's format is read from its first bytes, not its name. Every tensor the
//! network needs must be present with PyTorch's shape, and the file must hold
//! nothing else (batch norm's `num_batches_tracked` aside); this is checked on the
//! file's headers before any tensor is read, and only the expected tensors are
//! ever read, within a byte budget ([`super::weights`]). Weights must be finite.
//! Errors name tensors and shapes as PyTorch does. The model config's
//! `[preprocess]` becomes the version's input statistics and labels.

use std::path::Path;

use burn::prelude::Device;

use super::Manifest;
use super::net::{Net, NetConfig};
use super::weights::{WeightFile, WeightsError};

/// The weights could not be imported into the network.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not a weight file kiln reads, or reading it failed.
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: WeightsError },
    /// The file's tensors do not fit the network (names, shapes, types, budget).
    #[error("{path} does not fit the model config: {reason}")]
    Mismatch { path: String, reason: WeightsError },
    /// The weights fit but cannot be served (NaN or infinite values).
    #[error("{path} holds weights that cannot be served: {reason}")]
    Unusable { path: String, reason: WeightsError },
}

impl ImportError {
    fn new(path: String, reason: WeightsError) -> Self {
        match reason {
            WeightsError::Unreadable(_) | WeightsError::Read { .. } => Self::Read { path, reason },
            WeightsError::NonFinite { .. } => Self::Unusable { path, reason },
            WeightsError::Mismatch(_)
            | WeightsError::OverBudget { .. }
            | WeightsError::Build(_)
            | WeightsError::BuildPanicked => Self::Mismatch { path, reason },
        }
    }
}

/// Reads `weights` into `config`'s network on `device`; returns the network and
/// the manifest of the new version, whose source reads `<origin>: <file name>`.
pub fn import(
    weights: &Path,
    config: &NetConfig,
    origin: &str,
    device: &Device,
) -> Result<(Manifest, Net), ImportError> {
    let name = weights.file_name().map_or_else(
        || weights.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    import_as(weights, &name, config, origin, device)
}

/// [`import`], naming the file `name` in messages and the source (an upload's
/// temporary file has the client's name).
pub fn import_as(
    weights: &Path,
    name: &str,
    config: &NetConfig,
    origin: &str,
    device: &Device,
) -> Result<(Manifest, Net), ImportError> {
    // The name may be the client's (an upload's file name): quoted in part if long.
    let path = crate::quote::bare(name);
    let source = format!("{origin}: {name}");
    let file = WeightFile::open(weights).map_err(|e| ImportError::new(path.clone(), e))?;
    let net =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.import(file, device)))
            .unwrap_or(Err(WeightsError::BuildPanicked))
            .map_err(|e| ImportError::new(path.clone(), e))?;
    Ok((manifest_for(config, source), net))
}

/// The manifest of an imported version: `[preprocess]` moves into the manifest's
/// statistics and labels (the stored network config keeps no second copy).
pub fn manifest_for(config: &NetConfig, source: String) -> Manifest {
    let mut net = config.clone();
    let preprocess = net.preprocess.take();
    let mut manifest = Manifest::new(net, source);
    if let Some(p) = preprocess {
        manifest.standardize = config.preprocess_stats(&p).ok().flatten();
        manifest.labels = p.labels;
    }
    manifest
}
