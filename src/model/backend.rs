//! Picks the Burn device for the configured backend.
//!
//! Burn 0.22 chooses devices at run time, so one code path serves every backend;
//! cargo features only decide which backends are compiled in. Asking for one that
//! was not compiled in is a startup error naming the feature to enable.

use burn::prelude::Device;

use crate::config::BackendKind;

/// The configured backend is not in this build.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "model.backend = \"{name}\" is not compiled into this binary; rebuild with `cargo build --release --features {name}`"
)]
pub struct BackendUnavailable {
    pub name: &'static str,
}

impl BackendKind {
    /// The name used in config and as the cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// The inference device for this backend, if compiled in.
    pub fn device(self) -> Result<Device, BackendUnavailable> {
        match self {
            BackendKind::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(Device::cuda(0)),
            #[allow(unreachable_patterns)] // every backend may be compiled in
            other => Err(BackendUnavailable { name: other.name() }),
        }
    }
}
