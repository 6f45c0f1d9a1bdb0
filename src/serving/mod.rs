//! Which version serves: the hot-swap seam the executor reads ([`ActiveModel`]),
//! the model manager that owns promotion, rollback, deletion and on-demand loads
//! ([`Models`]), loading and warming versions up ([`swap`]), and keeping a replica
//! on the store's active version ([`watch`]); canary and shadow routes
//! ([`routing`]). The store itself (`registry`) only
//! keeps bytes and records.

mod handle;
mod manager;
pub mod routing;
pub mod swap;
pub mod watch;

pub use handle::ActiveModel;
pub use manager::{ManageError, ManagerThread, Models};
