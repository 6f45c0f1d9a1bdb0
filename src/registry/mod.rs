//! The model store: versions, the record of which one is active, and training job
//! records, behind a [`Backend`]: a directory ([`FsBackend`]) or a bucket
//! ([`ObjectBackend`]: S3, GCS, Azure Blob), chosen by `store.dir`.
//!
//! [`Store`] is what callers use: it speaks manifests, networks and records, and
//! leaves bytes and atomicity to the backend. A version is two files,
//! `weights.safetensors` and `model.json` (network, preprocessing, labels; written
//! last); the active record is `{"version": .., "previous": .., "generation": ..}`,
//! written with compare-and-swap. Version ids are `v1`, `v2`, ...
//!
//! Plain synchronous I/O; async callers use `spawn_blocking`. Several processes may
//! share one store (replicas): writes are atomic and version ids never collide.
//! Every backend call is timed for `kiln_store_request_duration_seconds{op}`.

mod active;
mod backend;
mod error;
mod fs;
mod location;
mod names;
mod object;
mod routes;

pub use crate::clock::unix_now;
pub use active::ActiveRecord;
pub use backend::{Backend, Observer, Tag};
pub use error::StoreError;
pub use fs::FsBackend;
pub use location::{Location, ObjectSettings};
use names::MODELS;
pub use names::{MAX_NAME_LEN, ModelName, NameError};
pub use object::ObjectBackend;
pub use routes::{RouteEntry, RoutesRecord};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::Device;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::model::{LoadedModel, Manifest, Net};

const ACTIVE: &str = "active";
const JOBS: &str = "jobs";
const CANCELS: &str = "cancels";
const MANIFEST: &str = "model.json";
const WEIGHTS: &str = "weights.safetensors";

/// The model store; a cheap `Clone` handle over its backend.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store directory at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Ok(Self::with_backend(Arc::new(FsBackend::open(root)?)))
    }

    /// Opens the store at `location`: a directory, or a bucket reached as
    /// `settings` say.
    pub fn at(location: Location, settings: &ObjectSettings) -> Result<Self, StoreError> {
        let backend: Arc<dyn Backend> = match location {
            Location::Dir(dir) => Arc::new(FsBackend::open(dir)?),
            Location::Url(url) => Arc::new(location::open_object(&url, settings)?),
        };
        Ok(Self::with_backend(backend))
    }

    /// A store over any backend.
    pub fn with_backend(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            observer: None,
        }
    }

    /// The same store, reporting each request's duration to `observer`.
    pub fn observed(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs one backend request, timed as `op`.
    fn timed<T>(
        &self,
        op: &'static str,
        request: impl FnOnce(&dyn Backend) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = request(self.backend.as_ref());
        if let Some(observer) = &self.observer {
            let failed = matches!(
                result,
                Err(StoreError::Io { .. } | StoreError::Remote { .. })
            );
            observer.observe(op, started.elapsed(), failed);
        }
        result
    }

    /// Where the store is, for messages.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Where a version's files are, for messages.
    pub fn version_path(&self, version: &str) -> String {
        format!(
            "{}/versions/{version}",
            self.describe().trim_end_matches('/')
        )
    }

    /// Version ids present, oldest first.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<(u64, String)> = self
            .timed("list", |b| b.versions())?
            .into_iter()
            .filter_map(|v| Some((parse_id(&v)?, v)))
            .collect();
        ids.sort();
        Ok(ids.into_iter().map(|(_, v)| v).collect())
    }

    /// Writes `net` and `manifest` as a new version; returns its id.
    pub fn create_version(&self, manifest: &Manifest, net: &Net) -> Result<String, StoreError> {
        let mut st = SafetensorsStore::from_bytes(None);
        let corrupt = |reason: String| StoreError::Corrupt {
            version: "(new)".into(),
            reason,
        };
        net.save_into(&mut st)
            .map_err(|e| corrupt(format!("saving weights failed: {e}")))?;
        let weights = st
            .get_bytes()
            .map_err(|e| corrupt(format!("saving weights failed: {e}")))?;
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
        self.timed("create_version", |b| {
            b.create_version(&[(WEIGHTS, weights), (MANIFEST, json)])
        })
    }

    /// A version's files as stored (for copying it to another store).
    pub fn version_files(&self, version: &str) -> Result<Vec<(&'static str, Vec<u8>)>, StoreError> {
        let manifest = self.timed("read_version", |b| b.read_version_file(version, MANIFEST))?;
        let weights = self.timed("read_version", |b| b.read_version_file(version, WEIGHTS))?;
        Ok(vec![(WEIGHTS, weights), (MANIFEST, manifest)])
    }

    /// Stores a copied version under its own id; `Ok(false)` if it is there already.
    pub fn put_version(
        &self,
        version: &str,
        files: &[(&'static str, Vec<u8>)],
    ) -> Result<bool, StoreError> {
        let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (*n, b.clone())).collect();
        self.timed("create_version", |b| b.put_version(version, &files))
    }

    /// Reads a version's manifest.
    pub fn manifest(&self, version: &str) -> Result<Manifest, StoreError> {
        let bytes = self.timed("read_version", |b| b.read_version_file(version, MANIFEST))?;
        let corrupt = |reason: String| StoreError::Corrupt {
            version: version.into(),
            reason,
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?;
        manifest.validate().map_err(|e| corrupt(e.to_string()))?;
        Ok(manifest)
    }

    /// Loads a version onto `device`: manifest, network, weights (every tensor must
    /// be present with the right shape, nothing extra, and every value finite).
    pub fn load(&self, version: &str, device: &Device) -> Result<LoadedModel, StoreError> {
        let manifest = self.manifest(version)?;
        let mut net = manifest.net.init_default(device);
        let corrupt = |reason: String| StoreError::Corrupt {
            version: version.into(),
            reason,
        };
        let bytes = match self.timed("read_version", |b| b.read_version_file(version, WEIGHTS)) {
            Ok(b) => b,
            Err(StoreError::Io { source, .. }) => {
                return Err(corrupt(format!("{WEIGHTS}: {source}")));
            }
            Err(e) => return Err(e),
        };
        let report = net
            .load_from(&mut SafetensorsStore::from_bytes(Some(bytes)))
            .map_err(|e| corrupt(format!("{WEIGHTS}: {e}")))?;
        if !report.unused.is_empty() {
            return Err(corrupt(format!(
                "{WEIGHTS} has unexpected tensors {:?}",
                report.unused
            )));
        }
        if !report.missing.is_empty() {
            return Err(corrupt(format!(
                "{WEIGHTS} lacks tensors {:?}",
                report.missing
            )));
        }
        // NaN or infinite weights answer nothing: such a version never serves.
        if let Some(bad) = crate::model::finite::first_in(&net) {
            return Err(corrupt(format!("{WEIGHTS}: {bad}")));
        }
        Ok(LoadedModel::new(version, manifest, net, device.clone()))
    }

    /// Removes a version (the caller makes sure it is not the active one).
    pub fn delete_version(&self, version: &str) -> Result<(), StoreError> {
        self.timed("delete_version", |b| b.delete_version(version))
    }

    /// Runs `f` holding the store-wide lock `name` (waiting up to 10 s for it), so
    /// replicas never interleave, say, a delete with a promotion of that version.
    pub fn locked<T>(
        &self,
        name: &str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        const STALE: Duration = Duration::from_secs(30);
        let until = Instant::now() + Duration::from_secs(10);
        while !self.timed("lock", |b| b.try_lock(name, STALE))? {
            if Instant::now() > until {
                return Err(StoreError::Busy(name.into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let result = f();
        self.backend.unlock(name);
        result
    }

    /// Asks the replica running job `id` to cancel it (it polls for this record).
    pub fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        self.write_record(&format!("{CANCELS}/{id}"), b"{}")
    }

    /// Whether a cancel was asked for job `id`; the record is consumed.
    pub fn take_cancel(&self, id: &str) -> Result<bool, StoreError> {
        let name = format!("{CANCELS}/{id}");
        let asked = self.read_record(&name)?.is_some();
        if asked {
            self.delete_record(&name)?;
        }
        Ok(asked)
    }

    /// Removes what crashed writers left half-written (see [`Backend::clean_tmp`]).
    pub fn clean_tmp(&self, older_than: Duration) -> usize {
        self.backend.clean_tmp(older_than)
    }

    /// Writes a training job record.
    pub fn write_job(&self, id: &str, record: &serde_json::Value) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(record).expect("a JSON value serialises");
        self.write_record(&format!("{JOBS}/{id}"), &json)
    }

    /// One job record, if present and readable.
    pub fn read_job(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .read_record(&format!("{JOBS}/{id}"))
            .unwrap_or(None)
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Every readable job record (unreadable ones are skipped with a warning).
    pub fn read_jobs(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut records = Vec::new();
        for name in self.list_records(JOBS)? {
            match self.read_record(&name) {
                Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                    Ok(v) => records.push(v),
                    Err(_) => tracing::warn!(record = name, "skipping an unreadable job record"),
                },
                Ok(None) => {} // deleted meanwhile
                Err(e) => tracing::warn!(record = name, error = %e, "skipping a job record"),
            }
        }
        Ok(records)
    }

    /// Removes a job record.
    pub fn delete_job(&self, id: &str) -> Result<(), StoreError> {
        self.delete_record(&format!("{JOBS}/{id}"))
    }

    /// A record by name (job records, the prediction log's segments), if present.
    pub fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed("read_record", |b| b.read_record(name))
    }

    /// Writes a record whole (see [`Backend`]).
    pub fn write_record(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.timed("write_record", |b| b.write_record(name, bytes))
    }

    /// The records in a folder; none when the folder does not exist yet.
    pub fn list_records(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        self.timed("list_records", |b| b.list_records(dir))
    }

    pub fn delete_record(&self, name: &str) -> Result<(), StoreError> {
        self.timed("delete_record", |b| b.delete_record(name))
    }
}

/// `v12` -> 12; anything else is not a version id.
fn parse_id(name: &str) -> Option<u64> {
    let n = name.strip_prefix('v')?;
    if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

#[cfg(test)]
mod tests;
