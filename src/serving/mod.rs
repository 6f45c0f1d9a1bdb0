//! Which version serves: the model manager that publishes on the executor's
//! hot-swap seam ([`crate::executor::ActiveModel`]) and owns promotion, rollback,
//! deletion and on-demand loads
//! ([`Models`]), loading and warming versions up ([`swap`]), and keeping a replica
//! on the store's active version ([`watch`]); canary and shadow routes
//! ([`routing`], set and dropped by the model manager only); and the inference
//! service every prediction protocol calls ([`infer`]), and how many of a
//! model's bodies are decoded at once ([`decoding`]). The store itself
//! (`registry`) only keeps bytes and records.

pub mod bundle;
pub mod catalog;
pub mod decoding;
mod error;
pub mod infer;
mod input;
mod limits;
mod manager;
pub mod residency;
pub mod routing;
pub mod swap;
pub mod watch;

pub use manager::{ManageError, ManagerThread, Models};

#[cfg(test)]
mod tests;
