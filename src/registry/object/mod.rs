//! The object-store [`Backend`](crate::registry::Backend): S3 and S3-compatible services (MinIO, Ceph RGW,
//! R2), Google Cloud Storage and Azure Blob, through the `object_store` crate.
//!
//! ```text
//! ids/<id>                 every id ever claimed, by a create-if-absent put
//! versions/<id>/<file>     a version's files: weights first, model.json last
//! <record>.json            small records: active.json, jobs/<id>.json, ...
//! locks/<name>             store-wide locks (promote vs delete across replicas)
//! ```
//! There is no rename, so atomicity comes from order and conditional writes:
//! - A version id is claimed with a create-if-absent marker (two writers never
//!   get the same id, and a deleted version's id stays claimed). Its files are
//!   uploaded next and its manifest last; a version without a manifest is never
//!   listed or loaded, and [`Backend::clean_tmp`](crate::registry::Backend::clean_tmp) removes it once stale.
//! - Record writes are single PUTs, which the service makes atomic. The active
//!   record is written with compare-and-swap on its ETag
//!   ([`Backend::write_record_if`](crate::registry::Backend::write_record_if)), so a lost race is seen, never overwritten.
//! - A lock is a create-if-absent object; a stale one (its holder died) is taken
//!   over by an overwrite conditional on the ETag seen, so only one replica wins.
//!
//! The service must honour `If-None-Match: *` and `If-Match` on PutObject (S3
//! since 2024, MinIO, R2, GCS and Azure do).

mod backend_impl;
mod bridge;
mod cache;

pub use cache::Cache;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{
    Error as OsError, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};

use super::{StoreError, Tag};
use bridge::Bridge;

const VERSIONS: &str = "versions";
const IDS: &str = "ids";
const LOCKS: &str = "locks";

/// A store in a bucket (under a prefix).
#[derive(Debug)]
pub struct ObjectBackend {
    url: String,
    store: Arc<dyn ObjectStore>,
    io: Arc<Bridge>,
    cache: Option<Cache>,
}

impl ObjectBackend {
    /// A backend over `store` (already scoped to the store's prefix), named `url`
    /// in messages, caching version files in `cache`.
    pub fn new(
        url: String,
        store: Arc<dyn ObjectStore>,
        cache: Option<Cache>,
    ) -> Result<Self, StoreError> {
        let io = Bridge::new().map_err(|e| StoreError::Location {
            store: url.clone(),
            reason: format!("cannot start its I/O threads: {e}"),
        })?;
        Ok(Self {
            url,
            store,
            io: Arc::new(io),
            cache,
        })
    }

    /// The store of the named model under `dir/<name>`: the same bucket, I/O
    /// threads and cache.
    pub fn child(&self, dir: &str, name: &str) -> Self {
        Self {
            url: format!("{}/{dir}/{name}", self.url.trim_end_matches('/')),
            store: Arc::new(object_store::prefix::PrefixStore::new(
                self.store.clone(),
                format!("{dir}/{name}"),
            )),
            io: self.io.clone(),
            cache: self.cache.as_ref().map(|c| c.child(name)),
        }
    }

    /// Runs one request on the store's runtime.
    fn call<T, F>(&self, request: impl FnOnce(Arc<dyn ObjectStore>) -> F) -> Result<T, OsError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, OsError>> + Send + 'static,
    {
        self.io.run(request(self.store.clone())).unwrap_or_else(|| {
            Err(OsError::Generic {
                store: "kiln",
                source: "the store's I/O threads are shutting down".into(),
            })
        })
    }

    fn remote(&self, op: &'static str, e: OsError) -> StoreError {
        StoreError::Remote {
            store: self.url.clone(),
            op,
            reason: e.to_string(),
        }
    }

    fn get(&self, key: Key) -> Result<Option<(Bytes, ObjectMeta)>, OsError> {
        match self.call(move |s| async move {
            let got = s.get(&key).await?;
            let meta = got.meta.clone();
            Ok((got.bytes().await?, meta))
        }) {
            Ok(found) => Ok(Some(found)),
            Err(OsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, key: Key, bytes: Vec<u8>, mode: PutMode) -> Result<(), OsError> {
        let options = PutOptions::from(mode);
        self.call(move |s| async move {
            s.put_opts(&key, PutPayload::from(bytes), options).await?;
            Ok(())
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, OsError> {
        let prefix = Key::from(prefix);
        self.call(move |s| async move { s.list(Some(&prefix)).try_collect().await })
    }

    fn delete(&self, key: Key) -> Result<(), OsError> {
        match self.call(move |s| async move { s.delete(&key).await }) {
            Err(OsError::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn exists(&self, key: Key) -> Result<bool, OsError> {
        match self.call(move |s| async move { s.head(&key).await }) {
            Ok(_) => Ok(true),
            Err(OsError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn version_key(version: &str, name: &str) -> Key {
        Key::from(format!("{VERSIONS}/{version}/{name}"))
    }

    fn record_key(name: &str) -> Result<Key, StoreError> {
        super::backend::check_record_name(name)?;
        Ok(Key::from(format!("{name}.json")))
    }

    /// Uploads a claimed version's files in order (the manifest comes last).
    fn upload(&self, id: &str, files: &[(&str, Vec<u8>)]) -> Result<(), StoreError> {
        for (name, bytes) in files {
            self.put(
                Self::version_key(id, name),
                bytes.clone(),
                PutMode::Overwrite,
            )
            .map_err(|e| self.remote("upload", e))?;
        }
        Ok(())
    }

    /// The id part of `versions/<id>/<file>` keys.
    fn version_of(meta: &ObjectMeta) -> Option<(String, String)> {
        let mut parts = meta.location.parts();
        parts.next().filter(|p| p.as_ref() == VERSIONS)?;
        let id = parts.next()?.as_ref().to_owned();
        let file = parts.next()?.as_ref().to_owned();
        Some((id, file))
    }
}

/// A lost conditional write.
fn lost(e: &OsError) -> bool {
    matches!(
        e,
        OsError::AlreadyExists { .. } | OsError::Precondition { .. }
    )
}

/// An object's ETag (or, from a service without ETags, its time and size).
fn tag_of(meta: &ObjectMeta) -> Tag {
    meta.e_tag
        .clone()
        .unwrap_or_else(|| format!("{}-{}", unix_ms(meta), meta.size))
}

fn unix_ms(meta: &ObjectMeta) -> i64 {
    meta.last_modified.timestamp_millis()
}

fn now_ms() -> i64 {
    i64::try_from(crate::clock::unix_now_ms()).unwrap_or(i64::MAX)
}
