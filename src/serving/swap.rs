//! Loading versions for serving: load and warm up, off the serving path (blocking;
//! the model manager thread calls these before publishing).

use burn::prelude::Device;

use super::manager::MODELS_LOCK;
use crate::model::{LoadedModel, Manifest, Net};
use crate::registry::{ActiveRecord, Store, StoreError};

/// Makes the model an empty store starts with.
pub type Bootstrap = fn() -> (Manifest, Net);

/// Loads the store's active version; an empty store first gets the default model,
/// and a store with versions but no active record activates its newest.
pub fn load_active(
    store: &Store,
    device: &Device,
    warm: WarmUp,
    bootstrap: Bootstrap,
) -> Result<LoadedModel, StoreError> {
    let version = match store.active()? {
        Some(record) => {
            return match load_warm(store, &record.version, device, warm) {
                Err(StoreError::NotFound(_) | StoreError::Corrupt { .. }) => {
                    fall_back(store, &record, device, warm)
                }
                other => other,
            };
        }
        None => first_version(store, bootstrap)?,
    };
    load_warm(store, &version, device, warm)
}

/// The version a store without an active record starts with: its newest, or on
/// an empty store the default model. Replicas starting together on one store all
/// get here: the record is written under the store-wide lock promotions take, and
/// only if no other replica wrote one first, so the store gets one default model
/// (each replica may train one, outside the lock; all but the first discard it).
fn first_version(store: &Store, bootstrap: Bootstrap) -> Result<String, StoreError> {
    let trained = store.list()?.is_empty().then(|| {
        tracing::info!("empty model store: training the default model (iris classifier)");
        bootstrap()
    });
    store.locked(MODELS_LOCK, || {
        if let Some(record) = store.active()? {
            tracing::info!(
                version = record.version,
                "another replica made the store's first version; serving it"
            );
            return Ok(record.version);
        }
        let version = match store.list()?.pop() {
            Some(newest) => {
                tracing::warn!(
                    version = newest,
                    "no active version recorded; activating the newest"
                );
                newest
            }
            None => {
                let (manifest, net) = trained.unwrap_or_else(bootstrap);
                store.create_version(&manifest, &net)?
            }
        };
        store.set_active(&version)?;
        Ok(version)
    })
}

/// The active record names a version that is gone or unusable: serve `previous`,
/// else the newest loadable version, and record it as active, so every replica
/// (and the next start) agrees. An error log says so.
fn fall_back(
    store: &Store,
    record: &ActiveRecord,
    device: &Device,
    warm: WarmUp,
) -> Result<LoadedModel, StoreError> {
    let mut candidates: Vec<String> = record.previous.iter().cloned().collect();
    candidates.extend(store.list()?.into_iter().rev());
    for version in candidates.iter().filter(|v| **v != record.version) {
        if let Ok(model) = load_warm(store, version, device, warm) {
            tracing::error!(
                missing = record.version,
                serving = version,
                "the active version cannot be loaded; serving a fallback and recording it as active"
            );
            store.set_active(version)?;
            return Ok(model);
        }
    }
    Err(StoreError::NotFound(record.version.clone()))
}

/// How versions are warmed up before they serve.
#[derive(Debug, Clone, Copy)]
pub struct WarmUp {
    /// The largest pass the executor runs (`batching.max_batch_size`).
    pub max_rows: usize,
    /// Pad passes to shape buckets on GPU backends (`batching.shape_buckets`).
    pub buckets: bool,
}

/// Loads `version` and warms it up for passes of up to `warm.max_rows` rows (on a
/// GPU, every shape bucket, so no request pays for kernel tuning).
pub fn load_warm(
    store: &Store,
    version: &str,
    device: &Device,
    warm: WarmUp,
) -> Result<LoadedModel, StoreError> {
    let mut model = store.load(version, device)?;
    if !warm.buckets {
        model = model.without_buckets();
    }
    let started = std::time::Instant::now();
    let buckets = model.warm_up(warm.max_rows);
    tracing::info!(
        version,
        buckets = buckets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        took_ms = started.elapsed().as_millis() as u64,
        "warmed up"
    );
    Ok(model)
}
