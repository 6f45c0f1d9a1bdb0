//! A local disk cache of version files (weights), so a restart or an on-demand
//! load does not download them again.
//!
//! A version's files never change once it exists (ids are never reused), so an
//! entry needs no invalidation; a deleted version is never served from here
//! because loads read the manifest from the bucket first. Entries are written to
//! a temporary name and renamed; a read touches its entry, and a write evicts the
//! least recently used entries until the cache holds at most `max_bytes`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// One store's cache directory.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    /// Serialises eviction within this process (another process sharing the
    /// directory only ever removes whole entries; a reader that loses one misses).
    evicting: std::sync::Arc<Mutex<()>>,
    /// Starts every entry's file name: empty for the store's default model,
    /// `<name>@` for a named one (named models share the directory and its bound).
    prefix: String,
}

impl Cache {
    /// A cache for the store at `url`, under `root`, of at most `max_bytes`.
    pub fn new(root: &Path, url: &str, max_bytes: u64) -> Self {
        let name: String = url
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Self {
            dir: root.join(name),
            max_bytes,
            evicting: Default::default(),
            prefix: String::new(),
        }
    }

    /// The cache of the named model `name`: the same directory and bound, its
    /// own entries.
    pub fn child(&self, name: &str) -> Self {
        Self {
            dir: self.dir.clone(),
            max_bytes: self.max_bytes,
            evicting: self.evicting.clone(),
            prefix: format!("{}{name}@", self.prefix),
        }
    }

    fn entry(&self, version: &str, name: &str) -> PathBuf {
        self.dir.join(format!("{}{version}-{name}", self.prefix))
    }

    /// The cached bytes of `version`'s file `name`, if present.
    pub fn get(&self, version: &str, name: &str) -> Option<Vec<u8>> {
        let path = self.entry(version, name);
        let bytes = std::fs::read(&path).ok()?;
        if let Ok(file) = std::fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(bytes)
    }

    /// Keeps `bytes` as `version`'s file `name`, then evicts down to the bound.
    /// Failures only cost a later download, so they are logged, not returned.
    pub fn put(&self, version: &str, name: &str, bytes: &[u8]) {
        if bytes.len() as u64 > self.max_bytes {
            return;
        }
        if let Err(e) = self.write(version, name, bytes) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot cache a version file");
            return;
        }
        self.evict(&self.entry(version, name));
    }

    /// Drops `version`'s entries (it was deleted).
    pub fn forget(&self, version: &str) {
        let prefix = format!("{}{version}-", self.prefix);
        for (path, _, _) in self.entries() {
            let ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix));
            if ours {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Bytes held now.
    pub fn size(&self) -> u64 {
        self.entries().iter().map(|(_, len, _)| len).sum()
    }

    fn write(&self, version: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, self.entry(version, name))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((e.path(), meta.len(), meta.modified().ok()?))
            })
            .collect()
    }

    fn evict(&self, keep: &Path) {
        let _guard = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort_by_key(|(_, _, modified)| *modified);
        for (path, len, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_bound_and_keeps_the_newest() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path(), "s3://bucket/models", 2500);
        for v in 1..=5 {
            cache.put(&format!("v{v}"), "weights", &[v as u8; 1000]);
            assert!(cache.size() <= 2500, "{} bytes after v{v}", cache.size());
        }
        assert_eq!(cache.get("v5", "weights"), Some(vec![5; 1000]));
        assert_eq!(cache.get("v1", "weights"), None);
        // Too large for the cache at all: not kept, nothing evicted for it.
        cache.put("v6", "weights", &[6; 3000]);
        assert_eq!(cache.get("v6", "weights"), None);
        assert!(cache.get("v5", "weights").is_some());
        cache.forget("v5");
        assert_eq!(cache.get("v5", "weights"), None);
    }

    #[test]
    fn named_models_keep_their_own_entries_within_one_bound() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path(), "s3://bucket/models", 2500);
        let fraud = cache.child("fraud");
        cache.put("v1", "weights", &[1; 1000]);
        fraud.put("v1", "weights", &[2; 1000]);
        assert_eq!(cache.get("v1", "weights"), Some(vec![1; 1000]));
        assert_eq!(fraud.get("v1", "weights"), Some(vec![2; 1000]));
        fraud.forget("v1");
        assert_eq!(fraud.get("v1", "weights"), None);
        assert!(
            cache.get("v1", "weights").is_some(),
            "the default model's v1 stays"
        );
        fraud.put("v2", "weights", &[2; 1000]);
        cache.child("churn").put("v1", "weights", &[3; 1000]);
        assert!(cache.size() <= 2500, "one bound for every model");
    }

    #[test]
    fn a_read_makes_an_entry_recent() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path(), "gs://b", 2000);
        cache.put("v1", "w", &[1; 1000]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("v2", "w", &[2; 1000]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.get("v1", "w").is_some());
        cache.put("v3", "w", &[3; 1000]);
        assert!(cache.get("v1", "w").is_some(), "read recently: kept");
        assert_eq!(cache.get("v2", "w"), None, "least recently used: evicted");
    }
}
