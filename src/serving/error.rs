//! [`ManageError`]: why a model manager operation (promote, rollback, delete, a
//! route change, an on-demand load, an import) was refused or failed.

use super::routing::RouteKind;
use crate::registry::StoreError;

/// Why a model operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("version {0} not found")]
    NotFound(String),
    #[error("version {version} cannot be loaded, the active version is unchanged: {reason}")]
    Unusable { version: String, reason: String },
    #[error("version {0} is the active version; promote another one first")]
    IsActive(String),
    #[error("there is no previous version to roll back to")]
    NoPrevious,
    #[error("the previous version {0} has been deleted; promote a version instead")]
    PreviousGone(String),
    #[error("{0} is the active version; route another one")]
    RouteToActive(String),
    #[error("{version} cannot be a route beside the active version: {reason}")]
    Incompatible { version: String, reason: String },
    #[error(
        "the {kind} route is to {routed}, not {asked}; remove it by its version (POST /models/{routed}/{kind} with percent 0)"
    )]
    RoutedElsewhere {
        kind: RouteKind,
        routed: String,
        asked: String,
    },
    #[error("a route's percent must be between 0 and 100, got {0}")]
    BadPercent(f64),
    /// The model is in use in a way that forbids the operation.
    #[error("{0}")]
    InUse(String),
    #[error("the model manager has stopped")]
    Stopped,
    /// Imported weights that cannot become a version.
    #[error(transparent)]
    Import(#[from] crate::model::import::ImportError),
    /// An operation's worker ended without an answer (a panic).
    #[error("{0}")]
    Crashed(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(v) => Self::NotFound(v),
            StoreError::Corrupt { version, reason } => Self::Unusable { version, reason },
            other => Self::Store(other),
        }
    }
}
