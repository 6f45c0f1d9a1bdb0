//! The model store: versions, the record of which one is active, and training job
//! records, behind a [`Backend`] (a directory today; an object store could be added
//! without touching callers).
//!
//! [`Store`] is what callers use: it speaks manifests, networks and records, and
//! leaves bytes and atomicity to the backend. A version is two files,
//! `model.json` (network, preprocessing, labels) and `weights.safetensors`; the
//! active record is `{"version": .., "previous": ..}`. Version ids are `v1`, `v2`, ...
//!
//! Plain synchronous I/O; async callers use `spawn_blocking`. Several processes may
//! share one store (replicas): writes are atomic and version ids never collide.

mod fs;

pub use crate::clock::unix_now;
pub use fs::FsBackend;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::Device;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::model::{LoadedModel, Manifest, Net};

const ACTIVE: &str = "active";
const JOBS: &str = "jobs";
const CANCELS: &str = "cancels";
const MANIFEST: &str = "model.json";
const WEIGHTS: &str = "weights.safetensors";

/// Something went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("model store I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("version {0} not found in the model store")]
    NotFound(String),
    #[error("version {version} is unusable: {reason}")]
    Corrupt { version: String, reason: String },
    #[error("the model store is busy (lock {0} held by another replica); retry")]
    Busy(String),
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where the store's bytes live. Implementations make every write atomic: a reader
/// sees a version or a record whole, or not at all.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Where it is, for messages.
    fn describe(&self) -> String;
    /// Version ids present (any order).
    fn versions(&self) -> Result<Vec<String>, StoreError>;
    /// Stores a new version's files and claims the next free id for it.
    fn create_version(&self, files: &[(&str, Vec<u8>)]) -> Result<String, StoreError>;
    /// One file of a version ([`StoreError::NotFound`] if the version is absent).
    fn read_version_file(&self, version: &str, name: &str) -> Result<Vec<u8>, StoreError>;
    fn delete_version(&self, version: &str) -> Result<(), StoreError>;
    /// A small record by name (`active`, `jobs/<id>`), if present.
    fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn write_record(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Names of the records in a folder (`jobs`).
    fn list_records(&self, dir: &str) -> Result<Vec<String>, StoreError>;
    fn delete_record(&self, name: &str) -> Result<(), StoreError>;
    /// Takes the store-wide lock `name` if it is free (`false` if held); a lock
    /// older than `stale_after` is broken (its holder died).
    fn try_lock(&self, name: &str, stale_after: std::time::Duration) -> Result<bool, StoreError>;
    fn unlock(&self, name: &str);
    /// Removes leftovers of crashed writers untouched for `older_than`; returns
    /// how many.
    fn clean_tmp(&self, older_than: std::time::Duration) -> usize;
}

/// The record of the active version (and the one before it, for rollback).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ActiveRecord {
    pub version: String,
    #[serde(default)]
    pub previous: Option<String>,
}

/// The model store; a cheap `Clone` handle over its backend.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// Opens (creating if needed) the store directory at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Ok(Self::with_backend(Arc::new(FsBackend::open(root)?)))
    }

    /// A store over any backend.
    pub fn with_backend(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    /// Where the store is, for messages.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Version ids present, oldest first.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<(u64, String)> = self
            .backend
            .versions()?
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
        self.backend
            .create_version(&[(WEIGHTS, weights), (MANIFEST, json)])
    }

    /// Reads a version's manifest.
    pub fn manifest(&self, version: &str) -> Result<Manifest, StoreError> {
        let bytes = self.backend.read_version_file(version, MANIFEST)?;
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
    /// be present with the right shape, and nothing extra).
    pub fn load(&self, version: &str, device: &Device) -> Result<LoadedModel, StoreError> {
        let manifest = self.manifest(version)?;
        let mut net = manifest.net.init_default(device);
        let corrupt = |reason: String| StoreError::Corrupt {
            version: version.into(),
            reason,
        };
        let bytes = match self.backend.read_version_file(version, WEIGHTS) {
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
        Ok(LoadedModel::new(version, manifest, net, device.clone()))
    }

    /// Removes a version (the caller makes sure it is not the active one).
    pub fn delete_version(&self, version: &str) -> Result<(), StoreError> {
        self.backend.delete_version(version)
    }

    /// The active-version record, if one was ever written.
    pub fn active(&self) -> Result<Option<ActiveRecord>, StoreError> {
        match self.backend.read_record(ACTIVE)? {
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        version: ACTIVE.into(),
                        reason: e.to_string(),
                    })
            }
            None => Ok(None),
        }
    }

    /// Makes `version` the active one, remembering the current one as `previous`.
    pub fn set_active(&self, version: &str) -> Result<ActiveRecord, StoreError> {
        self.backend.read_version_file(version, MANIFEST)?; // NotFound if absent
        let previous = self.active()?.map(|r| r.version).filter(|v| v != version);
        let record = ActiveRecord {
            version: version.into(),
            previous,
        };
        let json = serde_json::to_vec_pretty(&record).expect("a record serialises");
        self.backend.write_record(ACTIVE, &json)?;
        Ok(record)
    }

    /// Runs `f` holding the store-wide lock `name` (waiting up to 10 s for it), so
    /// replicas never interleave, say, a delete with a promotion of that version.
    pub fn locked<T>(
        &self,
        name: &str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        const STALE: std::time::Duration = std::time::Duration::from_secs(30);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.backend.try_lock(name, STALE)? {
            if std::time::Instant::now() > until {
                return Err(StoreError::Busy(name.into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let result = f();
        self.backend.unlock(name);
        result
    }

    /// Asks the replica running job `id` to cancel it (it polls for this record).
    pub fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        self.backend.write_record(&format!("{CANCELS}/{id}"), b"{}")
    }

    /// Whether a cancel was asked for job `id`; the record is consumed.
    pub fn take_cancel(&self, id: &str) -> Result<bool, StoreError> {
        let name = format!("{CANCELS}/{id}");
        let asked = self.backend.read_record(&name)?.is_some();
        if asked {
            self.backend.delete_record(&name)?;
        }
        Ok(asked)
    }

    /// Removes what crashed writers left half-written (see [`FsBackend::clean_tmp`]).
    pub fn clean_tmp(&self, older_than: std::time::Duration) -> usize {
        self.backend.clean_tmp(older_than)
    }

    /// Writes a training job record.
    pub fn write_job(&self, id: &str, record: &serde_json::Value) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(record).expect("a JSON value serialises");
        self.backend.write_record(&format!("{JOBS}/{id}"), &json)
    }

    /// One job record, if present and readable.
    pub fn read_job(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .backend
            .read_record(&format!("{JOBS}/{id}"))
            .unwrap_or(None)
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Every readable job record (unreadable ones are skipped with a warning).
    pub fn read_jobs(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut records = Vec::new();
        for name in self.backend.list_records(JOBS)? {
            match self.backend.read_record(&name) {
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
        self.backend.delete_record(&format!("{JOBS}/{id}"))
    }

    /// A record of another module's (the prediction log's segments), if present.
    pub fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.read_record(name)
    }

    /// Writes a record whole (see [`Backend`]).
    pub fn write_record(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.backend.write_record(name, bytes)
    }

    /// The records in a folder; none when the folder does not exist yet.
    pub fn list_records(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        self.backend.list_records(dir)
    }

    pub fn delete_record(&self, name: &str) -> Result<(), StoreError> {
        self.backend.delete_record(name)
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
