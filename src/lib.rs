//! kiln: an inference server with an embedded trainer.
//!
//! # A request's path
//! `api` (parse, shape the answer) -> `serving::infer` (route choice, checks
//! against the version that computes, ids, log sampling, shadow mirroring) ->
//! `batching` -> `executor` -> back. The `registry` holds versions in the store;
//! `serving` loads them and publishes one on the executor's hot-swap seam
//! ([`executor::ActiveModel`]); `training` jobs write new versions there and ask
//! `serving` to promote them; `retrain` closes the loop from `monitoring` to
//! `training`.
//!
//! # Layers
//! The modules below are declared bottom up, one group per layer (groups end at
//! a blank line): a module may use the modules of the groups before its own,
//! never its own group's or a later one's (`tests/layers.rs` checks every
//! `crate::` path in `src/` against this order).
//!
//! - Leaves: [`clock`] (wall-clock helpers), [`quote`] (client text quoted back in
//!   error messages, bounded), [`device`] (backend and device selection, GPU
//!   runtime set-up).
//! - [`model`]: the networks (`mlp`, and the PyTorch-shaped `sequential` stack of
//!   CNN, recurrent and Transformer layers), a loaded version, PyTorch import
//!   (`.pth` and safetensors), attributions.
//! - [`registry`]: the model store, a directory or a bucket (atomic writes,
//!   never-reused ids, the active record, job records, store-wide locks): storage
//!   only; it takes a parsed location, never the configuration.
//! - [`config`]: one [`config::Config`] from file, environment and flags,
//!   validated; it knows the parameter types of the parts it configures.
//! - [`metrics`], [`telemetry`]: Prometheus collectors (they take numbers and
//!   names, never other modules' types) and the log subscriber.
//! - [`compute`]: the CPU thread pools forward passes and training steps are cut
//!   over.
//! - [`batching`]: admission (row permits), the batcher task, pure batch assembly.
//! - [`executor`]: the thread that runs forward passes, one version per batch, and
//!   the hot-swap seam it reads.
//! - [`explainer`]: the thread that computes `/explain` attributions (autodiff),
//!   yielding to serving between passes.
//! - [`monitoring`]: prediction ids, the sampled prediction log, feedback labels
//!   and their join, live quality, drift against the training profile.
//! - [`serving`]: which version serves: the model manager that owns promotion,
//!   rollback, deletion, imports and the canary and shadow routes; loading and
//!   warm-up; replica sync; and the inference service every protocol calls.
//! - [`training`]: data preparation, the recipe and its budget, the training loop,
//!   background jobs in supervised worker processes, promotion decisions, and the
//!   default model.
//! - [`retrain`]: automatic retraining, a pure policy and the loop that acts on it.
//! - [`server`]: the accept loop (header timeouts, bounded graceful shutdown);
//!   [`api`]: the axum router, handlers (`/predict`, `/train`, `/models`, health,
//!   the Open Inference Protocol v2), the OpenAPI document, and the one
//!   error-to-status table.
//! - [`app`]: starts the subsystems into one value that owns every thread and
//!   task, serves HTTP, and shuts down in the order [`app::lifecycle`] writes
//!   down, joining each.
//! - [`cli`]: the command line (`serve`, `import`, `train`, `predict`); `main.rs`
//!   only calls it.

// Leaves.
pub mod clock;
pub mod device;
pub mod memory;
pub mod quote;

// The models, then their store.
pub mod model;

pub mod registry;

// Settings, then the reports made with them.
pub mod config;

pub mod metrics;
pub mod telemetry;

// The serving path.
pub mod batching;
pub mod compute;

pub mod executor;
pub mod explainer;

// Watching the answers; which version serves.
pub mod monitoring;

pub mod serving;

// Training, then the closed loop over serving and training.
pub mod training;

pub mod retrain;

// HTTP, the process, the command line.
pub mod api;
pub mod server;

pub mod app;

pub mod cli;
