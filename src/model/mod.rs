//! Models: the network definition, a version loaded for serving, the hot-swap
//! seam, device selection and import of foreign weights.

mod backend;
mod handle;
pub mod import;
mod loaded;
mod manifest;
pub mod net;

pub use backend::BackendUnavailable;
pub use handle::ActiveModel;
pub use loaded::{LoadedModel, Prediction, Probabilities};
pub use manifest::{Manifest, Standardize};
pub use net::{Net, NetConfig, Task};
