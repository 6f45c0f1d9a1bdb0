//! Where a job's version goes when the job names a model (`POST
//! /models/{name}/train`): that model's store, where its worker writes the
//! version, and what makes the version active there. The serving layer supplies
//! the [`Activate`]; the trainer knows no served models. A job without a target
//! trains the default model.

use std::sync::Arc;

use crate::registry::Store;
use crate::serving::Models;

/// Makes a finished job's version serve in its named model, creating the model
/// first when the job is its first version.
pub trait Activate: Send + Sync {
    /// Called on the trainer thread once the version is written. `promote` is the
    /// recipe's verdict; a model created now serves its first version whatever
    /// it is. Answers whether the version is now active, or why it cannot be.
    fn activate(&self, version: &str, promote: bool) -> Result<bool, String>;
}

/// A named model a job trains.
#[derive(Clone)]
pub struct Target {
    /// The model's name (checked by the caller).
    pub model: String,
    /// The model's store: the version is written and, if it cannot be made
    /// active, deleted here.
    pub store: Store,
    pub activate: Arc<dyn Activate>,
}

/// A model that serves already: its version is promoted as the policy says.
pub struct Served(pub Models);

impl Activate for Served {
    fn activate(&self, version: &str, promote: bool) -> Result<bool, String> {
        if !promote {
            return Ok(false);
        }
        self.0
            .promote_blocking(version)
            .map(|_| true)
            .map_err(|e| e.to_string())
    }
}
