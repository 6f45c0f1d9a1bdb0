//! kiln: an inference server with an embedded trainer.
//!
//! # Layout
//! A request flows `api` (parse, shape the answer) -> `serving::infer` (route
//! choice, checks against the version that computes, ids, log sampling, shadow
//! mirroring) -> `batching` -> `executor` -> back; the `registry` holds
//! versions on disk; `serving` loads them and publishes one on the hot-swap seam
//! ([`serving::ActiveModel`]);
//! `training` jobs write new versions there and ask `serving` to promote them.
//!
//! - [`cli`]: the command line (`serve`, `import`, `train`, `predict`); `main.rs` only
//!   calls it.
//! - [`config`]: one [`config::Config`] from file, environment and flags, validated.
//! - [`app`]: starts the subsystems into one value that owns every thread and task,
//!   serves HTTP, and shuts down in the order [`app::lifecycle`] writes down, joining
//!   each.
//! - [`server`]: the accept loop (header timeouts, bounded graceful shutdown).
//! - [`api`]: the axum router, handlers (`/predict`, `/train`, `/models`, health, the
//!   Open Inference Protocol v2), the OpenAPI document, and the one error-to-status
//!   table.
//! - [`batching`]: admission (row permits), the batcher task, pure batch assembly.
//! - [`executor`]: the thread that runs forward passes, one version per batch.
//! - [`explainer`]: the thread that computes `/explain` attributions (autodiff),
//!   yielding to serving between passes.
//! - [`model`]: the networks (`mlp`, and the PyTorch-shaped `sequential` stack of
//!   CNN, recurrent and Transformer layers), a loaded version,
//!   PyTorch import (`.pth` and safetensors), attributions.
//! - [`registry`]: the model store on disk (atomic writes, never-reused ids, the
//!   active record, job records, store-wide locks): storage only.
//! - [`serving`]: which version serves: the hot-swap seam, the model manager that
//!   owns promotion, rollback and deletion, loading and warm-up, replica sync, and
//!   canary and shadow routes.
//! - [`monitoring`]: prediction ids, the sampled prediction log, feedback labels,
//!   live quality, drift against the training profile, and automatic retraining.
//! - [`training`]: data preparation, the recipe and its budget, the training loop,
//!   background jobs in supervised worker processes, promotion decisions, and the
//!   default model.
//! - [`metrics`], [`telemetry`]: Prometheus collectors and the log subscriber.
//! - [`quote`]: client text quoted back in error messages, bounded (a leaf).

pub mod api;
pub mod app;
pub mod batching;
pub mod cli;
pub mod clock;
pub mod compute;
pub mod config;
pub mod executor;
pub mod explainer;
pub mod metrics;
pub mod model;
pub mod monitoring;
pub mod quote;
pub mod registry;
pub mod server;
pub mod serving;
pub mod telemetry;
pub mod training;
