//! Picks the Burn device for the configured backend and device, and prepares GPU
//! runtimes before their first use. A leaf: it knows Burn, nothing of kiln.
//!
//! Burn 0.22 chooses devices at run time, so one code path serves every backend;
//! cargo features only decide which backends are compiled in. Asking for one that
//! was not compiled in, or for an adapter that does not exist, is a startup error
//! that says what to do; never a panic on the first tensor. A GPU runtime is
//! initialised once per process and device and reused (serving and training may
//! share it); its autotune cache lives in `model.autotune_cache_dir`, a local
//! directory (replicas may run on different GPUs, so never the shared store).

use std::path::Path;

use burn::prelude::Device;

use serde::{Deserialize, Serialize};

/// A compute backend; each but `cpu` needs the cargo feature of the same name.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex on the CPU (always compiled in).
    #[default]
    Cpu,
    /// wgpu (Vulkan, Metal, DX12, or Mesa's software Vulkan).
    Wgpu,
    /// NVIDIA CUDA.
    Cuda,
}

/// The configured backend or device cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error(
        "backend \"{name}\" is not compiled into this binary; rebuild with `cargo build --release --features {name}`"
    )]
    Unavailable { name: &'static str },
    #[error("device {selector:?} is not valid for backend \"{backend}\": {why}")]
    BadSelector {
        backend: &'static str,
        selector: String,
        why: String,
    },
    #[error("the {backend} device {selector:?} could not be created: {reason}. {hint}")]
    Init {
        backend: &'static str,
        selector: String,
        reason: String,
        hint: &'static str,
    },
}

/// Kept for callers that only name the missing feature.
pub type BackendUnavailable = BackendError;

/// Which adapter or index of a backend (`model.device`, `training.device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selector {
    /// The backend's default (the first, or most powerful, device).
    Default,
    /// The n-th device (CUDA ordinal; for wgpu the n-th discrete GPU).
    Index(usize),
    /// wgpu: the n-th discrete, integrated or virtual GPU, or a CPU adapter
    /// (Mesa's lavapipe).
    Discrete(usize),
    Integrated(usize),
    Virtual(usize),
    CpuAdapter,
}

/// A device selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{0:?} is not a device index")]
    NotIndex(String),
    #[error(
        "unknown device kind {0:?}; use default, N, discrete:N, integrated:N, virtual:N or cpu"
    )]
    UnknownKind(String),
}

impl Selector {
    /// Parses `default`, `N`, `discrete:N`, `integrated:N`, `virtual:N` or `cpu`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let text = text.trim().to_ascii_lowercase();
        let index = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| SelectorError::NotIndex(s.chars().take(40).collect()))
        };
        Ok(match text.split_once(':') {
            None if text.is_empty() || text == "default" => Self::Default,
            None if text == "cpu" => Self::CpuAdapter,
            None => Self::Index(index(&text)?),
            Some(("discrete", n)) => Self::Discrete(index(n)?),
            Some(("integrated", n)) => Self::Integrated(index(n)?),
            Some(("virtual", n)) => Self::Virtual(index(n)?),
            Some((kind, _)) => {
                return Err(SelectorError::UnknownKind(kind.chars().take(40).collect()));
            }
        })
    }

    /// Whether `backend` can take this selector.
    pub fn check(self, backend: BackendKind, text: &str) -> Result<(), BackendError> {
        let why = match (backend, self) {
            (_, Self::Default) | (BackendKind::Wgpu, _) => return Ok(()),
            (BackendKind::Cuda, Self::Index(_)) => return Ok(()),
            (BackendKind::Cpu, _) => "the CPU backend has one device; use \"default\"",
            (BackendKind::Cuda, _) => "CUDA devices are chosen by index (\"0\", \"1\", ...)",
        };
        Err(BackendError::BadSelector {
            backend: backend.name(),
            selector: text.into(),
            why: why.into(),
        })
    }
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

    /// True for backends whose kernels are tuned per shape (GPU backends): they
    /// serve padded batches of a few fixed sizes.
    pub fn tunes_shapes(self) -> bool {
        !matches!(self, BackendKind::Cpu)
    }

    /// The default device of this backend, if compiled in.
    pub fn device(self) -> Result<Device, BackendError> {
        device(self, "default", None)
    }
}

/// True for burn-flex, where tensors are host memory.
pub fn is_flex(device: &Device) -> bool {
    matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_))
}

/// The device `selector` of `backend`, created (and checked) now. GPU runtimes keep
/// their autotune results in `autotune_cache_dir` when given.
pub fn device(
    backend: BackendKind,
    selector: &str,
    autotune_cache_dir: Option<&Path>,
) -> Result<Device, BackendError> {
    let parsed = Selector::parse(selector).map_err(|why| BackendError::BadSelector {
        backend: backend.name(),
        selector: selector.into(),
        why: why.to_string(),
    })?;
    parsed.check(backend, selector)?;
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if backend.tunes_shapes() {
        configure_runtime(autotune_cache_dir);
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    let _ = autotune_cache_dir;
    match backend {
        BackendKind::Cpu => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => gpu::wgpu(parsed, selector),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(Device::cuda(match parsed {
            Selector::Index(i) => i,
            _ => 0,
        })),
        #[allow(unreachable_patterns)] // every backend may be compiled in
        other => Err(BackendError::Unavailable { name: other.name() }),
    }
}

/// Points CubeCL's caches (autotune results, compiled kernels) at `dir`, before any
/// GPU runtime starts; the first call in a process wins.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn configure_runtime(dir: Option<&Path>) {
    use cubecl_runtime::config::cache::CacheConfig;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
    let Some(dir) = dir else { return };
    if let Err(e) = std::fs::create_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), "cannot create the autotune cache directory: {e}");
        return;
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.environment.path = CacheConfig::Directory(dir.to_path_buf());
    if !CubeClRuntimeConfig::try_set(config) {
        tracing::debug!("the GPU runtime was configured already");
    }
}

#[cfg(feature = "wgpu")]
mod gpu {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use burn::prelude::Device;
    use burn::tensor::DeviceKind;

    use super::{BackendError, Selector};

    /// Devices initialised so far: a wgpu runtime is created once per adapter.
    fn created() -> &'static Mutex<HashMap<Selector, Device>> {
        static CREATED: OnceLock<Mutex<HashMap<Selector, Device>>> = OnceLock::new();
        CREATED.get_or_init(Mutex::default)
    }

    pub fn wgpu(selector: Selector, text: &str) -> Result<Device, BackendError> {
        let mut created = created().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(device) = created.get(&selector) {
            return Ok(device.clone());
        }
        let kind = match selector {
            Selector::Default => DeviceKind::DefaultDevice,
            Selector::Index(i) | Selector::Discrete(i) => DeviceKind::DiscreteGpu(i),
            Selector::Integrated(i) => DeviceKind::IntegratedGpu(i),
            Selector::Virtual(i) => DeviceKind::VirtualGpu(i),
            Selector::CpuAdapter => DeviceKind::Cpu,
        };
        // Adapter discovery may panic inside the driver stack on a broken setup:
        // that is a startup error too, never a crash.
        // Vulkan on Linux, not a silent fall back to OpenGL: a missing Vulkan driver
        // is a startup error that says so. Elsewhere the platform's API (Metal, DX12).
        #[cfg(target_os = "linux")]
        let api = burn::tensor::wgpu::WgpuBackend::Vulkan;
        #[cfg(not(target_os = "linux"))]
        let api = burn::tensor::wgpu::WgpuBackend::Auto;
        let init = std::panic::catch_unwind(|| {
            Device::wgpu_options()
                .device_kind(kind)
                .graphics_api(api)
                .init()
        });
        let reason = match init {
            Ok(Ok(device)) => {
                created.insert(selector, device.clone());
                return Ok(device);
            }
            Ok(Err(e)) => e.to_string(),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the wgpu runtime panicked".into()),
        };
        Err(BackendError::Init {
            backend: "wgpu",
            selector: text.into(),
            reason,
            hint: "kiln's wgpu backend needs a Vulkan (or Metal/DX12) driver: on Debian/Ubuntu \
                   install `libvulkan1` plus your GPU's Vulkan driver (`mesa-vulkan-drivers` \
                   for AMD/Intel and the CPU adapter lavapipe; NVIDIA's driver for NVIDIA), \
                   and check `vulkaninfo --summary` lists the adapter; or set \
                   model.backend = \"cpu\"",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_fit_their_backend() {
        assert_eq!(Selector::parse("default"), Ok(Selector::Default));
        assert_eq!(Selector::parse(""), Ok(Selector::Default));
        assert_eq!(Selector::parse("1"), Ok(Selector::Index(1)));
        assert_eq!(Selector::parse("Discrete:2"), Ok(Selector::Discrete(2)));
        assert_eq!(Selector::parse("cpu"), Ok(Selector::CpuAdapter));
        assert!(
            Selector::parse("gpu:1")
                .unwrap_err()
                .to_string()
                .contains("unknown device kind")
        );
        assert!(Selector::parse("discrete:x").is_err());
        assert!(Selector::Index(1).check(BackendKind::Cpu, "1").is_err());
        assert!(
            Selector::CpuAdapter
                .check(BackendKind::Cuda, "cpu")
                .is_err()
        );
        assert!(Selector::CpuAdapter.check(BackendKind::Wgpu, "cpu").is_ok());
        assert!(Selector::Index(3).check(BackendKind::Cuda, "3").is_ok());
    }
}
