//! Models: the network definition (`mlp` and the PyTorch-shaped `sequential`
//! stack), a version loaded for serving,
//! import of foreign weights (read header first, within a byte budget, finite
//! values only), and explanations.

pub mod columns;
pub mod explain;
pub mod finite;
pub mod import;
pub mod level;
mod loaded;
mod manifest;
mod mlp;
pub mod net;
pub mod profile;
pub mod sequential;
pub mod weights;

pub use loaded::{DriftBasis, LoadedModel, Prediction, Probabilities};
pub use manifest::{Manifest, Standardize};
pub use net::{Head, Net, NetConfig, Task};
