//! [`TrainError`]: every way a training job can fail, from the recipe's range
//! checks to writing its version. Submission turns the input errors into 4xx
//! answers (through the API's status table); a worker reports the rest in the job
//! record.

use super::data::DataError;
use crate::device::BackendError;
use crate::registry::StoreError;

/// Why a job cannot run, or ended without a version; the text is what the client
/// (or the job record) reads.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A recipe field out of its range, or fields that do not fit together.
    #[error("{0}")]
    Recipe(String),
    /// Data that cannot be trained on (a parse error, no usable rows, ...).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The network, the dataset or a batch is over a `training.*` limit.
    #[error("{0}")]
    OverBudget(String),
    /// A dataset file over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Stopped by a cancel.
    #[error("cancelled")]
    Cancelled,
    /// A loss or metric of an epoch is not finite (NaN or infinite): the job
    /// fails and writes no version.
    #[error(
        "training diverged: the {what} is not finite at epoch {epoch} (try a smaller learning rate, or rescale the data)"
    )]
    Diverged { epoch: usize, what: &'static str },
    /// The store cannot be opened or read (a server fault, not the recipe's).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The trained version could not be written to the store.
    #[error("writing the version failed: {0}")]
    WriteVersion(#[source] StoreError),
    /// The training device cannot be used.
    #[error(transparent)]
    Device(#[from] BackendError),
    /// The training thread pool cannot be started.
    #[error(transparent)]
    Threads(#[from] rayon::ThreadPoolBuildError),
}

impl TrainError {
    /// For `map_err` on the recipe checks that build their text.
    pub fn recipe(text: impl Into<String>) -> Self {
        Self::Recipe(text.into())
    }
}
