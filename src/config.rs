//! One [`Config`] for the whole process, loaded once at startup.
//!
//! Layers, later ones winning: built-in defaults, a TOML file (`--config`, else
//! `config/default.toml` when it exists), environment variables
//! `KILN_<SECTION>__<KEY>`, then command-line flags. [`Config::validate`] runs before
//! anything starts, and every error names the key at fault, so a typo fails the start
//! instead of being silently ignored (unknown keys are errors too).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "config/default.toml";

/// Everything kiln can be told, one section per subsystem.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub batching: BatchingConfig,
    pub model: ModelConfig,
    pub serving: ServingConfig,
    pub store: StoreConfig,
    pub training: TrainingConfig,
    pub explain: ExplainConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
    pub monitoring: MonitoringConfig,
    pub retrain: RetrainConfig,
    /// `[models.<name>]`: one model's own batching and monitoring keys.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub models: std::collections::BTreeMap<String, ModelOverrides>,
}

/// The dynamic batching queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BatchingConfig {
    /// Most rows in one forward pass; 1 turns batching off.
    pub max_batch_size: usize,
    /// Longest time the oldest waiting row waits for more rows, in milliseconds.
    pub max_queue_delay_ms: f64,
    /// Rows admitted but not yet answered (queued or computing); beyond it, 429.
    pub queue_capacity: usize,
    /// The same bound for each model alone: a flood of requests to one model gets
    /// 429 past it, and leaves the rest of `queue_capacity` to the others. Unset:
    /// half of `queue_capacity`, and at least `max_request_rows`
    /// ([`Self::model_queue_rows`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_queue_capacity: Option<usize>,
    /// Most rows (instances) one request may carry; beyond it, 413.
    pub max_request_rows: usize,
    /// A prediction request's deadline when it names none (`x-kiln-timeout-ms`, OIP
    /// v2 `parameters.timeout`); past it the answer is 504 and its rows are not
    /// computed.
    pub default_timeout_ms: u64,
    /// GPU backends: pad each forward pass to a power-of-two row count and tune
    /// every such shape before a version serves, so no request pays for kernel
    /// autotuning. Off: passes run at their exact size (tuned on first use).
    pub shape_buckets: bool,
    /// CPU threads one forward pass may use (the executor's own pool). 1 keeps the
    /// other cores for HTTP and JSON, which is what batching wants on small
    /// machines; more helps large passes on many cores.
    pub compute_threads: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 64,
            max_queue_delay_ms: 0.0,
            queue_capacity: 2048,
            model_queue_capacity: None,
            max_request_rows: 1024,
            default_timeout_ms: 30_000,
            shape_buckets: true,
            compute_threads: 1,
        }
    }
}

impl BatchingConfig {
    /// Each model's own row bound: `model_queue_capacity`, or unset half of
    /// `queue_capacity` and at least `max_request_rows`.
    pub fn model_queue_rows(&self) -> usize {
        self.model_queue_capacity.unwrap_or_else(|| {
            (self.queue_capacity / 2)
                .max(self.max_request_rows)
                .min(self.queue_capacity)
        })
    }

    /// `default_timeout_ms` as a [`Duration`].
    pub fn default_timeout(&self) -> Duration {
        Duration::from_millis(self.default_timeout_ms)
    }

    /// `max_queue_delay_ms` as a [`Duration`].
    pub fn max_queue_delay(&self) -> Duration {
        Duration::from_secs_f64(self.max_queue_delay_ms / 1000.0)
    }
}

/// Which device runs the model, and how the model is named in responses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Name reported by the server (and by protocol endpoints that need one).
    pub name: String,
    /// Compute backend: `cpu`, `wgpu` or `cuda`.
    pub backend: BackendKind,
    /// Which device of the backend: `default`, an index `N` (CUDA ordinal, wgpu's
    /// N-th discrete GPU), or for wgpu `discrete:N`, `integrated:N`, `virtual:N`,
    /// `cpu` (a CPU adapter such as Mesa's lavapipe).
    pub device: String,
    /// GPU backends: where tuned kernel choices are kept across restarts (a local
    /// directory; not the shared store, replicas may run on different GPUs). Unset:
    /// the runtime's default (`target/environment` in a Cargo checkout, else the
    /// user's cache directory).
    pub autotune_cache_dir: Option<PathBuf>,
    /// Most named models one process serves beside the default one; a first
    /// import under a new name past it is refused.
    pub max_models: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            name: "kiln".into(),
            backend: BackendKind::Cpu,
            device: "default".into(),
            autotune_cache_dir: None,
            max_models: 100,
        }
    }
}

/// Where model versions live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The model store: a directory (replicas may share it on NFS or a
    /// ReadWriteMany volume), or an object-store URL: `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix`.
    pub dir: PathBuf,
    /// How often the active-version record is checked, so a promotion made by any
    /// replica reaches this one; 0 turns it off.
    pub poll_interval_ms: u64,
    /// An S3-compatible service's URL (MinIO, Ceph RGW, R2), or Azure's blob
    /// endpoint; unset: the cloud's own (or `AWS_ENDPOINT_URL`). `http://` is
    /// allowed only when named here.
    pub endpoint: Option<String>,
    /// Object stores: each request (with its retries) gives up after this long.
    pub timeout_ms: u64,
    /// Object stores: loaded versions' weights are cached here, so a restart or an
    /// on-demand load does not download them again.
    pub cache_dir: PathBuf,
    /// The cache's bound in MiB (least recently used files go first); 0: no cache.
    pub cache_max_mb: u64,
    /// Object stores: more `object_store` settings by name (`aws_region`,
    /// `aws_virtual_hosted_style_request`, `google_service_account`, ...).
    /// Credentials belong in the environment or an instance role, not here.
    pub options: std::collections::BTreeMap<String, String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models"),
            poll_interval_ms: 2000,
            endpoint: None,
            timeout_ms: 10_000,
            cache_dir: PathBuf::from("cache/store"),
            cache_max_mb: 2048,
            options: Default::default(),
        }
    }
}

impl StoreConfig {
    /// Opens the store `dir` names: a directory or a bucket URL.
    pub fn open(&self) -> Result<crate::registry::Store, crate::registry::StoreError> {
        let settings = crate::registry::ObjectSettings {
            endpoint: self.endpoint.clone(),
            timeout_ms: self.timeout_ms,
            cache_dir: self.cache_dir.clone(),
            cache_max_mb: self.cache_max_mb,
            options: self.options.clone(),
        };
        crate::registry::Store::at(crate::registry::Location::parse(&self.dir)?, &settings)
    }
}

/// The embedded trainer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Datasets named by `{"path": ...}` are read from this directory (and only here).
    pub data_dir: PathBuf,
    /// Model-config files named by `"model": "<name>"` are read from here.
    pub config_dir: PathBuf,
    /// The backend training runs on; unset, the serving backend (`model.backend`).
    /// A GPU can serve while the CPU trains, or the other way round.
    pub backend: Option<BackendKind>,
    /// The device training runs on (as `model.device`); unset, the serving device
    /// when the backend is the same, else the backend's default.
    pub device: Option<String>,
    /// CPU threads training may use; serving keeps the rest.
    pub threads: usize,
    /// Run training threads at idle scheduling priority (Linux `SCHED_IDLE`): they
    /// use only the CPU time serving leaves, so training cannot slow `/predict`.
    pub low_priority: bool,
    /// Jobs waiting to run; beyond it `POST /train` answers 429.
    pub max_queued_jobs: usize,
    /// Finished job records kept (older ones are forgotten).
    pub max_jobs_kept: usize,
    /// How often a replica refreshes the heartbeat of its queued and running jobs.
    pub heartbeat_interval_ms: u64,
    /// A queued or running job whose heartbeat is older than this reads
    /// `interrupted` (its replica is gone).
    pub heartbeat_timeout_ms: u64,
    /// Each job runs in its own worker process; on the CPU backend the OS caps its
    /// address space at this many MiB (`RLIMIT_AS`), and a job past it fails with
    /// "out of memory" while serving goes on.
    pub max_memory_mb: u64,
    /// After a cancel's SIGTERM, the worker gets this long before SIGKILL.
    pub cancel_grace_ms: u64,
    /// Budget checked at submission (422 over it): parameters, gradients and
    /// optimizer state, in MiB of `f32`.
    pub max_model_mb: u64,
    /// Budget: the largest activation of one training batch, in MiB of `f32`.
    pub max_activation_mb: u64,
    /// Budget: classes a classifier may have.
    pub max_classes: usize,
    /// Budget: rows x features of a dataset.
    pub max_dataset_values: u64,
    /// The kiln executable that runs jobs (`kiln worker`); default: this one.
    pub worker_exe: Option<PathBuf>,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("examples/data"),
            config_dir: PathBuf::from("config/models"),
            backend: None,
            device: None,
            threads: 1,
            low_priority: true,
            max_queued_jobs: 4,
            max_jobs_kept: 100,
            heartbeat_interval_ms: 1000,
            heartbeat_timeout_ms: 10_000,
            max_memory_mb: 4096,
            cancel_grace_ms: 5000,
            max_model_mb: 1024,
            max_activation_mb: 256,
            max_classes: 1000,
            max_dataset_values: 50_000_000,
            worker_exe: None,
        }
    }
}

/// `POST /explain`: attributions, computed on their own thread.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExplainConfig {
    /// Most instances one request may explain; beyond it, 413.
    pub max_rows: usize,
    /// Most integration steps (`integrated_gradients`) one request may ask for.
    pub max_steps: usize,
    /// Requests waiting for the explainer thread; beyond it, 429.
    pub queue_capacity: usize,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        Self {
            max_rows: 64,
            max_steps: 256,
            queue_capacity: 4,
        }
    }
}

/// A configuration that could not be loaded or is invalid; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value of the file or the environment, named as the user wrote it.
    #[error("{0}")]
    Load(String),
    #[error("invalid config: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Flag values that override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub store: Option<PathBuf>,
}

impl Config {
    /// Loads defaults, then `file` (or [`DEFAULT_CONFIG_FILE`] if present), then
    /// `KILN_*` variables, then `overrides`; validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        // Only `KILN_SECTION__KEY` names are config keys: `KILN_CONFIG` and friends
        // belong to the command line.
        errors::warn_unknown_variables(std::env::vars().map(|(k, _)| k));
        figment = figment.merge(
            Env::prefixed("KILN_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(errors::describe(e)))?;
        if let Some(listen) = overrides.listen {
            config.server.listen = listen;
        }
        if let Some(store) = &overrides.store {
            config.store.dir = store.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// The backend training runs on.
    pub fn training_backend(&self) -> BackendKind {
        self.training.backend.unwrap_or(self.model.backend)
    }

    /// The serving device, created now.
    pub fn serving_device(&self) -> Result<burn::prelude::Device, crate::device::BackendError> {
        crate::device::device(
            self.model.backend,
            &self.model.device,
            self.model.autotune_cache_dir.as_deref(),
        )
    }

    /// The training device, created now (the serving one when they agree).
    pub fn training_device(&self) -> Result<burn::prelude::Device, crate::device::BackendError> {
        let backend = self.training_backend();
        let selector = match &self.training.device {
            Some(s) => s.as_str(),
            None if backend == self.model.backend => &self.model.device,
            None => "default",
        };
        crate::device::device(backend, selector, self.model.autotune_cache_dir.as_deref())
    }
}

mod errors;
mod models;
mod monitoring;
mod server;
mod telemetry;
mod validate;

pub use telemetry::{LogFormat, MetricsConfig, TelemetryConfig};

pub use crate::device::BackendKind;
pub use models::{BatchingOverrides, ModelOverrides};
pub use monitoring::{Gate, MonitoringConfig, RetrainConfig};
pub use server::{AuthConfig, ServerConfig, ServingConfig};

#[cfg(test)]
mod tests;
