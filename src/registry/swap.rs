//! Loading versions for serving: load and warm up, off the serving path (blocking;
//! the model manager thread calls these before publishing).

use burn::prelude::Device;

use super::{Store, StoreError};
use crate::model::LoadedModel;
use crate::training;

/// Loads the store's active version; an empty store first gets the default model,
/// and a store with versions but no active record activates its newest.
pub fn load_active(store: &Store, device: &Device) -> Result<LoadedModel, StoreError> {
    let version = match store.active()? {
        Some(record) => record.version,
        None => {
            let version = match store.list()?.pop() {
                Some(newest) => {
                    tracing::warn!(
                        version = newest,
                        "no active version recorded; activating the newest"
                    );
                    newest
                }
                None => {
                    tracing::info!(
                        "empty model store: training the default model (iris classifier)"
                    );
                    let (manifest, net) = training::default_model();
                    store.create_version(&manifest, &net)?
                }
            };
            store.set_active(&version)?;
            version
        }
    };
    load_warm(store, &version, device)
}

/// Loads `version` and runs a warm-up batch through it.
pub fn load_warm(store: &Store, version: &str, device: &Device) -> Result<LoadedModel, StoreError> {
    let model = store.load(version, device)?;
    model.warm_up();
    Ok(model)
}
