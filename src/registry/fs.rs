//! The filesystem [`Backend`]: a directory, shared by replicas if it is on shared
//! storage (NFS, a ReadWriteMany volume).
//!
//! ```text
//! versions/<id>/<file>     a version's files (model.json, weights.safetensors)
//! ids/<id>/                every id ever claimed (kept after a delete)
//! <record>.json            small records: active.json, jobs/<id>.json
//! locks/<name>             store-wide locks (promote vs delete across replicas)
//! tmp/                     half-written files and versions (never read)
//! ```
//! Every write goes to a temporary name, is fsynced, then renamed into place (and the
//! parent directory fsynced), so a crash never leaves a half-written file where a
//! reader could load it. A writer claims a version id by creating `ids/v<N>`,
//! which fails if another writer (another replica) got there first, and then
//! renames its finished directory onto `versions/v<N>`. Claims are never removed,
//! so an id is never reused, even after its version is deleted. Readers see a version whole or not
//! at all. The limits are the filesystem's: rename must be atomic and fsync honest,
//! which local disks and NFSv4 give; object stores have their own backend.
//! Conditional record writes take a lock in `locks/` around compare and rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Backend, StoreError, Tag, parse_id};

mod removal;
use removal::{bury, newest_mtime};

const VERSIONS: &str = "versions";
const IDS: &str = "ids";
const LOCKS: &str = "locks";
const TMP: &str = "tmp";

/// A store directory.
#[derive(Debug, Clone)]
pub struct FsBackend {
    root: PathBuf,
}

impl FsBackend {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [
            root.join(VERSIONS),
            root.join(IDS),
            root.join(LOCKS),
            root.join(TMP),
            root.join("jobs"),
            root.join("cancels"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        }
        Ok(Self { root })
    }

    fn record_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        super::backend::check_record_name(name)?;
        Ok(self.root.join(format!("{name}.json")))
    }

    fn temp(&self, what: &str) -> PathBuf {
        self.root
            .join(TMP)
            .join(format!("{what}-{}", uuid::Uuid::new_v4()))
    }

    fn write_and_claim(
        &self,
        staging: &Path,
        files: &[(&str, Vec<u8>)],
    ) -> Result<String, StoreError> {
        std::fs::create_dir_all(staging).map_err(|e| StoreError::io(staging, e))?;
        for (name, bytes) in files {
            write_synced(&staging.join(name), bytes)?;
        }
        sync(staging)?;
        let claimed = std::fs::read_dir(self.root.join(IDS))
            .map_err(|e| StoreError::io(&self.root.join(IDS), e))?
            .filter_map(|entry| parse_id(entry.ok()?.file_name().to_str()?))
            .max()
            .unwrap_or(0);
        let present = self
            .versions()?
            .iter()
            .filter_map(|v| parse_id(v))
            .max()
            .unwrap_or(0);
        let mut next = claimed.max(present) + 1;
        loop {
            let id = format!("v{next}");
            let claim = self.root.join(IDS).join(&id);
            match std::fs::create_dir(&claim) {
                Ok(()) => sync(&self.root.join(IDS))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    next += 1;
                    continue;
                }
                Err(e) => return Err(StoreError::io(&claim, e)),
            }
            let target = self.root.join(VERSIONS).join(&id);
            match std::fs::rename(staging, &target) {
                Ok(()) => {
                    sync(&self.root.join(VERSIONS))?;
                    return Ok(id);
                }
                // A writer of a store made before `ids/` existed took it.
                Err(_) if target.exists() => next += 1,
                Err(e) => return Err(StoreError::io(&target, e)),
            }
        }
    }

    /// Stages `files` and renames them onto `versions/<id>` (claimed first).
    fn put_at(&self, id: &str, files: &[(&str, Vec<u8>)]) -> Result<bool, StoreError> {
        if parse_id(id).is_none() {
            return Err(StoreError::NotFound(id.into()));
        }
        let target = self.root.join(VERSIONS).join(id);
        if target.exists() {
            return Ok(false);
        }
        let claim = self.root.join(IDS).join(id);
        match std::fs::create_dir(&claim) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::io(&claim, e));
            }
            _ => sync(&self.root.join(IDS))?,
        }
        let staging = self.temp("put");
        let staged = (|| {
            std::fs::create_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
            for (name, bytes) in files {
                write_synced(&staging.join(name), bytes)?;
            }
            sync(&staging)?;
            std::fs::rename(&staging, &target).map_err(|e| StoreError::io(&target, e))?;
            sync(&self.root.join(VERSIONS))
        })();
        if staged.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        staged.map(|()| true)
    }

    /// Runs `f` holding the lock that serialises conditional writes of `name`.
    fn with_record_lock<T>(
        &self,
        name: &str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let lock = format!("record-{}", name.replace('/', "-"));
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.try_lock(&lock, std::time::Duration::from_secs(10))? {
            if std::time::Instant::now() > until {
                return Err(StoreError::Busy(lock));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let result = f();
        self.unlock(&lock);
        result
    }
}

impl Backend for FsBackend {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn versions(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join(VERSIONS);
        Ok(std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io(&dir, e))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| parse_id(name).is_some())
            .collect())
    }

    fn create_version(&self, files: &[(&str, Vec<u8>)]) -> Result<String, StoreError> {
        let staging = self.temp("new");
        let result = self.write_and_claim(&staging, files);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }

    fn put_version(&self, id: &str, files: &[(&str, Vec<u8>)]) -> Result<bool, StoreError> {
        self.put_at(id, files)
    }

    fn read_version_file(&self, version: &str, name: &str) -> Result<Vec<u8>, StoreError> {
        if parse_id(version).is_none() {
            return Err(StoreError::NotFound(version.into()));
        }
        let dir = self.root.join(VERSIONS).join(version);
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound if !dir.exists() => StoreError::NotFound(version.into()),
            _ => StoreError::io(&path, e),
        })
    }

    fn delete_version(&self, version: &str) -> Result<(), StoreError> {
        let dir = self.root.join(VERSIONS).join(version);
        if parse_id(version).is_none() || !dir.exists() {
            return Err(StoreError::NotFound(version.into()));
        }
        bury(&dir, &self.temp(&format!("deleted-{version}")))
    }

    fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.record_path(name)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    fn read_record_tagged(&self, name: &str) -> Result<Option<(Vec<u8>, Tag)>, StoreError> {
        Ok(self.read_record(name)?.map(|bytes| {
            let tag = digest(&bytes);
            (bytes, tag)
        }))
    }

    fn record_tag(&self, name: &str) -> Result<Option<Tag>, StoreError> {
        Ok(self.read_record_tagged(name)?.map(|(_, tag)| tag))
    }

    fn write_record_if(
        &self,
        name: &str,
        bytes: &[u8],
        expected: Option<&Tag>,
    ) -> Result<bool, StoreError> {
        self.with_record_lock(name, || {
            let now = self.read_record(name)?.map(|b| digest(&b));
            if now.as_ref() != expected {
                return Ok(false);
            }
            self.write_record(name, bytes).map(|()| true)
        })
    }

    fn write_record(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.record_path(name)?;
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        let tmp = self.temp("record");
        write_synced(&tmp, bytes)?;
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        sync(path.parent().unwrap_or(&self.root))
    }

    fn list_records(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let path = self.root.join(dir);
        let entries = match std::fs::read_dir(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(|e| StoreError::io(&path, e))?,
        };
        Ok(entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                Some(format!("{dir}/{}", name.strip_suffix(".json")?))
            })
            .collect())
    }

    fn try_lock(&self, name: &str, stale_after: std::time::Duration) -> Result<bool, StoreError> {
        let path = self.root.join(LOCKS).join(name);
        let holder = format!("{}\n", std::process::id());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(holder.as_bytes())
                    .map_err(|e| StoreError::io(&path, e))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A holder that died keeps it no longer than `stale_after`.
                let stale = newest_mtime(&path)
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > stale_after);
                if stale {
                    let _ = std::fs::remove_file(&path);
                }
                Ok(false)
            }
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    fn child(&self, name: &str) -> Result<std::sync::Arc<dyn Backend>, StoreError> {
        Ok(std::sync::Arc::new(FsBackend::open(
            self.root.join(super::MODELS).join(name),
        )?))
    }

    fn clean_tmp(&self, older_than: std::time::Duration) -> usize {
        FsBackend::clean_tmp(self, older_than)
    }

    fn unlock(&self, name: &str) {
        let _ = std::fs::remove_file(self.root.join(LOCKS).join(name));
    }

    fn destroy(&self) -> Result<(), StoreError> {
        let name = self
            .root
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("store");
        let grave = self
            .root
            .with_file_name(format!(".deleted-{name}-{}", uuid::Uuid::new_v4()));
        match self.root.exists() {
            true => bury(&self.root, &grave),
            false => Ok(()),
        }
    }

    fn delete_record(&self, name: &str) -> Result<(), StoreError> {
        let path = self.record_path(name)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(&path, e)),
            _ => Ok(()),
        }
    }
}

/// A record's tag on a filesystem: a digest of its bytes (records are small).
fn digest(bytes: &[u8]) -> Tag {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("{:016x}-{}", hasher.finish(), bytes.len())
}

/// Creates `path` with `bytes` and fsyncs it (the caller renames it into place).
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |e| StoreError::io(path, e);
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Fsyncs a directory, making the names created or renamed in it durable.
fn sync(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io(path, e))
}
