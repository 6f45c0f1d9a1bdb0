//! Removing from a directory store: a version or a whole model's store put out
//! of sight in one rename, then deleted; and the sweep of what crashed writers
//! left in `tmp/`.

use std::path::Path;

use super::{FsBackend, StoreError, TMP, sync};

/// Moves `path` to `grave` in one rename (readers stop seeing it at once; the
/// rename is made durable), then removes `grave`.
pub(super) fn bury(path: &Path, grave: &Path) -> Result<(), StoreError> {
    std::fs::rename(path, grave).map_err(|e| StoreError::io(path, e))?;
    if let Some(parent) = path.parent() {
        sync(parent)?;
    }
    std::fs::remove_dir_all(grave).map_err(|e| StoreError::io(grave, e))
}

impl FsBackend {
    /// Removes what crashed writers left in `tmp/`: entries untouched for
    /// `older_than` (a live writer keeps touching its files).
    pub fn clean_tmp(&self, older_than: std::time::Duration) -> usize {
        let dir = self.root.join(TMP);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let stale = newest_mtime(&path)
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > older_than);
            if stale {
                let gone = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed += usize::from(gone.is_ok());
            }
        }
        removed
    }
}

/// The newest modification time of `path` and (one level of) what it holds.
pub(super) fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let own = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let inner = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok());
    Some(inner.fold(own, std::cmp::max))
}
