//! Getting a version from the store onto the serving seam: load and warm up off the
//! serving path (blocking; call from `spawn_blocking` or a plain thread), then publish.

use std::sync::Arc;

use burn::prelude::Device;

use super::{Store, StoreError};
use crate::model::{ActiveModel, LoadedModel};
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

/// Loads the active version and publishes it on `active`.
pub fn load_and_publish(
    store: &Store,
    device: &Device,
    active: &ActiveModel,
) -> Result<(), StoreError> {
    let model = load_active(store, device)?;
    active.publish(Arc::new(model));
    Ok(())
}
