//! The [`Backend`] trait: where the store's bytes live, and the atomic and
//! conditional operations [`Store`](super::Store) builds versions and records on.

use std::time::Duration;

use super::StoreError;

/// Checks a record name (`active`, `jobs/<id>`): ids come from URLs, so only
/// `/`-separated parts of letters, digits, `-` and `_` name a record.
pub(super) fn check_record_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::NotFound(name.into()))
    }
}

/// An opaque version of a record: an object's ETag, or a digest of a file's
/// bytes. Equal tags mean the record did not change in between.
pub type Tag = String;

/// Where the store's bytes live. Implementations make every write atomic: a reader
/// sees a version or a record whole, or not at all. The trait is synchronous:
/// async callers use `spawn_blocking`.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Where it is, for messages.
    fn describe(&self) -> String;
    /// Version ids present and complete (any order).
    fn versions(&self) -> Result<Vec<String>, StoreError>;
    /// Stores a new version's files and claims the next free id for it. The last
    /// file is the one whose presence makes the version exist (the manifest).
    fn create_version(&self, files: &[(&str, Vec<u8>)]) -> Result<String, StoreError>;
    /// Stores `files` as version `id`, keeping the id (a migration). `Ok(false)`:
    /// that version already exists whole, and nothing was written.
    fn put_version(&self, id: &str, files: &[(&str, Vec<u8>)]) -> Result<bool, StoreError>;
    /// One file of a version ([`StoreError::NotFound`] if the version is absent).
    fn read_version_file(&self, version: &str, name: &str) -> Result<Vec<u8>, StoreError>;
    fn delete_version(&self, version: &str) -> Result<(), StoreError>;
    /// A small record by name (`active`, `jobs/<id>`), if present.
    fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// A record with its tag, for a later [`Backend::write_record_if`].
    fn read_record_tagged(&self, name: &str) -> Result<Option<(Vec<u8>, Tag)>, StoreError>;
    /// The record's tag only (an object store answers a HEAD): cheap polling.
    fn record_tag(&self, name: &str) -> Result<Option<Tag>, StoreError>;
    fn write_record(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Writes the record only if it is still at `expected` (`None`: only if it is
    /// absent). `Ok(false)`: another writer got there first; nothing was written.
    fn write_record_if(
        &self,
        name: &str,
        bytes: &[u8],
        expected: Option<&Tag>,
    ) -> Result<bool, StoreError>;
    /// Names of the records in a folder (`jobs`).
    fn list_records(&self, dir: &str) -> Result<Vec<String>, StoreError>;
    fn delete_record(&self, name: &str) -> Result<(), StoreError>;
    /// Removes every file of this store (a named model's own, when the model is
    /// deleted).
    fn destroy(&self) -> Result<(), StoreError>;
    /// Takes the store-wide lock `name` if it is free (`false` if held); a lock
    /// older than `stale_after` is broken (its holder died).
    fn try_lock(&self, name: &str, stale_after: Duration) -> Result<bool, StoreError>;
    fn unlock(&self, name: &str);
    /// Removes leftovers of crashed writers untouched for `older_than`; returns
    /// how many.
    fn clean_tmp(&self, older_than: Duration) -> usize;

    /// The backend of the named model `name`, a store of its own under
    /// `models/<name>` (`name` is checked by [`ModelName`](super::ModelName)).
    fn child(&self, name: &str) -> Result<std::sync::Arc<dyn Backend>, StoreError>;
}

/// Told how long each store request took and whether the store failed it (the
/// metrics implement it).
pub trait Observer: Send + Sync {
    fn observe(&self, op: &'static str, took: Duration, failed: bool);
}
