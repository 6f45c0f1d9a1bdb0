//! Durable-write helpers: data reaches the disk before a rename publishes it.

use std::io::Write;
use std::path::Path;

use super::StoreError;

/// Creates `path` with `bytes` and fsyncs it (the caller renames it into place).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |e| StoreError::io(path, e);
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Fsyncs a file or directory: a file written by someone else (e.g. Burn's
/// safetensors writer), or a directory whose new or renamed names must be durable.
pub fn sync(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io(path, e))
}
