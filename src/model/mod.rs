//! Models: the network definition (`mlp` and the PyTorch-shaped `sequential`
//! stack), a version loaded for serving, device selection,
//! import of foreign weights, and explanations.

pub mod backend;
pub mod explain;
pub mod import;
mod loaded;
mod manifest;
mod mlp;
pub mod net;
pub mod profile;
pub mod sequential;

pub use backend::{BackendError, BackendUnavailable};
pub use loaded::{DriftBasis, LoadedModel, Prediction, Probabilities};
pub use manifest::{Manifest, Standardize};
pub use net::{Head, Net, NetConfig, Task};
