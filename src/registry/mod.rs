//! The model store: versions on disk and the record of which one is active.
//!
//! Layout of a store directory:
//! ```text
//! versions/<id>/model.json           manifest (network, preprocessing, labels)
//! versions/<id>/weights.safetensors  weights
//! active.json                        {"version": .., "previous": ..}
//! jobs/<id>.json                     training job records
//! tmp/                               half-written versions (never loaded)
//! ```
//! Every write goes to a temporary name, is fsynced, then renamed into place (and the
//! parent directory fsynced), so a crash never leaves a half-written version or
//! active record where a reader could load it. Version ids are `v1`, `v2`, ...:
//! a writer claims an id by renaming its finished directory onto it, which fails if
//! another writer got there first, so concurrent writers never collide.
//!
//! The store is plain synchronous file I/O; async callers use `spawn_blocking`.

mod fsutil;
mod manager;
pub mod swap;

pub use manager::{ManageError, Models};

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::model::{LoadedModel, Manifest, Net};

const VERSIONS: &str = "versions";
const TMP: &str = "tmp";
const ACTIVE: &str = "active.json";
const MANIFEST: &str = "model.json";
const WEIGHTS: &str = "weights.safetensors";
const JOBS: &str = "jobs";

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
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The record of the active version (and the one before it, for rollback).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ActiveRecord {
    pub version: String,
    #[serde(default)]
    pub previous: Option<String>,
}

/// A model store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [root.join(VERSIONS), root.join(TMP), root.join(JOBS)] {
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn version_dir(&self, version: &str) -> PathBuf {
        self.root.join(VERSIONS).join(version)
    }

    /// Version ids present, oldest first.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join(VERSIONS);
        let mut ids: Vec<(u64, String)> = std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io(&dir, e))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                Some((parse_id(&name)?, name))
            })
            .collect();
        ids.sort();
        Ok(ids.into_iter().map(|(_, name)| name).collect())
    }

    /// Writes `net` and `manifest` as a new version; returns its id.
    pub fn create_version(&self, manifest: &Manifest, net: &Net) -> Result<String, StoreError> {
        let staging = self
            .root
            .join(TMP)
            .join(format!("new-{}", uuid::Uuid::new_v4()));
        let result = self.write_and_claim(&staging, manifest, net);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }

    fn write_and_claim(
        &self,
        staging: &Path,
        manifest: &Manifest,
        net: &Net,
    ) -> Result<String, StoreError> {
        std::fs::create_dir_all(staging).map_err(|e| StoreError::io(staging, e))?;
        let weights = staging.join(WEIGHTS);
        let mut st = SafetensorsStore::from_file(&weights);
        net.save_into(&mut st).map_err(|e| StoreError::Corrupt {
            version: "(new)".into(),
            reason: format!("saving weights failed: {e}"),
        })?;
        fsutil::sync(&weights)?;
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
        fsutil::write_synced(&staging.join(MANIFEST), &json)?;
        fsutil::sync(staging)?;

        // Claim the next free id by renaming onto it; a lost race just tries the next.
        let mut next = self
            .list()?
            .iter()
            .filter_map(|v| parse_id(v))
            .max()
            .unwrap_or(0)
            + 1;
        loop {
            let id = format!("v{next}");
            let target = self.version_dir(&id);
            match std::fs::rename(staging, &target) {
                Ok(()) => {
                    fsutil::sync(&self.root.join(VERSIONS))?;
                    return Ok(id);
                }
                Err(_) if target.exists() => next += 1,
                Err(e) => return Err(StoreError::io(&target, e)),
            }
        }
    }

    /// Reads a version's manifest.
    pub fn manifest(&self, version: &str) -> Result<Manifest, StoreError> {
        if parse_id(version).is_none() {
            return Err(StoreError::NotFound(version.into()));
        }
        let path = self.version_dir(version).join(MANIFEST);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(version.into()));
            }
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                version: version.into(),
                reason: format!("model.json: {e}"),
            })?;
        manifest.validate().map_err(|e| StoreError::Corrupt {
            version: version.into(),
            reason: e.to_string(),
        })?;
        Ok(manifest)
    }

    /// Loads a version onto `device`: manifest, network, weights (every tensor must
    /// be present with the right shape, and nothing extra).
    pub fn load(&self, version: &str, device: &Device) -> Result<LoadedModel, StoreError> {
        let manifest = self.manifest(version)?;
        let mut net = manifest.net.init_default(device);
        let weights = self.version_dir(version).join(WEIGHTS);
        let corrupt = |reason: String| StoreError::Corrupt {
            version: version.into(),
            reason,
        };
        // Read the bytes ourselves so a missing or unreadable file is an I/O error
        // with a path, not a panic inside the safetensors reader.
        let bytes = std::fs::read(&weights).map_err(|e| corrupt(format!("{}: {e}", WEIGHTS)))?;
        let report = net
            .load_from(&mut SafetensorsStore::from_bytes(Some(bytes)))
            .map_err(|e| corrupt(format!("{WEIGHTS}: {e}")))?;
        if !report.unused.is_empty() {
            return Err(corrupt(format!(
                "{WEIGHTS} has unexpected tensors {:?}",
                report.unused
            )));
        }
        Ok(LoadedModel::new(version, manifest, net, device.clone()))
    }

    /// The active-version record, if one was ever written.
    pub fn active(&self) -> Result<Option<ActiveRecord>, StoreError> {
        let path = self.root.join(ACTIVE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        version: ACTIVE.into(),
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Makes `version` the active one, remembering the current one as `previous`.
    pub fn set_active(&self, version: &str) -> Result<ActiveRecord, StoreError> {
        if !self.version_dir(version).join(MANIFEST).exists() {
            return Err(StoreError::NotFound(version.into()));
        }
        let previous = self.active()?.map(|r| r.version).filter(|v| v != version);
        let record = ActiveRecord {
            version: version.into(),
            previous,
        };
        let json = serde_json::to_vec_pretty(&record).expect("a record serialises");
        let tmp = self
            .root
            .join(TMP)
            .join(format!("active-{}.json", uuid::Uuid::new_v4()));
        fsutil::write_synced(&tmp, &json)?;
        let path = self.root.join(ACTIVE);
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        fsutil::sync(&self.root)?;
        Ok(record)
    }
}

impl Store {
    /// Removes a version: renamed out of `versions/` first (atomic for readers), then
    /// deleted. The caller makes sure it is not the active one.
    pub fn delete_version(&self, version: &str) -> Result<(), StoreError> {
        let dir = self.version_dir(version);
        if parse_id(version).is_none() || !dir.exists() {
            return Err(StoreError::NotFound(version.into()));
        }
        let grave = self
            .root
            .join(TMP)
            .join(format!("deleted-{version}-{}", uuid::Uuid::new_v4()));
        std::fs::rename(&dir, &grave).map_err(|e| StoreError::io(&dir, e))?;
        fsutil::sync(&self.root.join(VERSIONS))?;
        std::fs::remove_dir_all(&grave).map_err(|e| StoreError::io(&grave, e))
    }

    /// Writes a training job record (atomically, like everything else).
    pub fn write_job(&self, id: &str, record: &serde_json::Value) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(record).expect("a JSON value serialises");
        let tmp = self
            .root
            .join(TMP)
            .join(format!("job-{id}-{}.json", uuid::Uuid::new_v4()));
        fsutil::write_synced(&tmp, &json)?;
        let path = self.root.join(JOBS).join(format!("{id}.json"));
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))
    }

    /// Every readable job record (unreadable ones are skipped with a warning).
    pub fn read_jobs(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let dir = self.root.join(JOBS);
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let path = entry.map_err(|e| StoreError::io(&dir, e))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(v)) => records.push(v),
                _ => tracing::warn!(path = %path.display(), "skipping an unreadable job record"),
            }
        }
        Ok(records)
    }

    /// Removes a job record.
    pub fn delete_job(&self, id: &str) -> Result<(), StoreError> {
        let path = self.root.join(JOBS).join(format!("{id}.json"));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(&path, e)),
            _ => Ok(()),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `v12` -> 12; anything else is not a version directory.
fn parse_id(name: &str) -> Option<u64> {
    let n = name.strip_prefix('v')?;
    if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

#[cfg(test)]
mod tests;
