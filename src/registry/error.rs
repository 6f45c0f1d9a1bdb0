//! What can go wrong reading or writing the model store, on any backend.

use std::path::{Path, PathBuf};

/// Something went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("model store I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The object store did not answer, or refused (after its retries).
    #[error("the model store {store} is unavailable ({op}): {reason}")]
    Remote {
        store: String,
        op: &'static str,
        reason: String,
    },
    /// `store.dir` names something no backend can open.
    #[error("cannot open the model store {store}: {reason}")]
    Location { store: String, reason: String },
    #[error("version {0} not found in the model store")]
    NotFound(String),
    #[error("version {version} is unusable: {reason}")]
    Corrupt { version: String, reason: String },
    #[error("the model store is busy (lock {0} held by another replica); retry")]
    Busy(String),
    /// A conditional write lost to another writer and was not retried.
    #[error("{0} was changed by another replica meanwhile; nothing was overwritten, retry")]
    Conflict(String),
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
