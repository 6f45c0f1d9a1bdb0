//! Import of foreign weights for any model config: a PyTorch `state_dict` written by
//! `torch.save` (`.pth` / `.pt`, zip or legacy pickle) or saved as safetensors, in
//! PyTorch's names and layouts (`0.weight` `[out, in]`, `conv1.bias`,
//! `lstm.weight_ih_l0`, `enc.self_attn.in_proj_weight`, ...).
//!
//! The file's format is read from its first bytes, not its name. Every tensor the
//! network needs must be present with PyTorch's shape, and the file must hold
//! nothing else (batch norm's `num_batches_tracked` aside); errors name tensors and
//! shapes as PyTorch does. The model config's `[preprocess]` becomes the version's
//! input statistics and labels.

use std::path::Path;

use burn::prelude::Device;

use super::Manifest;
use super::net::{Net, NetConfig};
use super::sequential::torch;

/// The weights could not be imported into the network.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} does not fit the model config: {reason}")]
    Mismatch { path: String, reason: String },
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
    let path = name.to_string();
    let source = format!("{origin}: {name}");
    let file = torch::read_file(weights).map_err(|reason| ImportError::Read {
        path: path.clone(),
        reason,
    })?;
    let net =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.import(file, device)))
            .unwrap_or_else(|_| Err("building the network failed".into()))
            .map_err(|reason| ImportError::Mismatch {
                path: path.clone(),
                reason,
            })?;
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
