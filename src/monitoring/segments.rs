//! Segments: the store records the prediction log and the feedback are kept in.
//!
//! A segment is one record, written whole (the store writes a temp, fsyncs and
//! renames) and never appended to, named
//! `<folder>/<first ms>_<last ms>_<replica>_<sequence>_<bytes>`, so that a listing
//! alone tells which segments may hold an instance answered at a given
//! millisecond, on any replica, and how much the folder holds. After each write
//! the folder's oldest segments go until it fits its byte bound.

use crate::registry::{Store, StoreError};

/// A parsed segment name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    pub name: String,
    pub first_ms: u64,
    pub last_ms: u64,
    pub replica: String,
    pub bytes: u64,
}

impl SegmentName {
    fn parse(name: String) -> Option<Self> {
        let file = name.rsplit('/').next()?;
        let mut parts = file.split('_');
        let first_ms = parts.next()?.parse().ok()?;
        let last_ms = parts.next()?.parse().ok()?;
        let replica = parts.next()?.to_string();
        let _seq = parts.next()?;
        let bytes = parts.next()?.parse().ok()?;
        Some(Self {
            name,
            first_ms,
            last_ms,
            replica,
            bytes,
        })
    }

    /// Whether an instance answered at `t_ms` may be in it.
    pub fn covers(&self, t_ms: u64) -> bool {
        self.first_ms <= t_ms && t_ms <= self.last_ms
    }
}

/// One replica's writer of segments in one folder.
#[derive(Debug)]
pub struct Segments {
    store: Store,
    folder: &'static str,
    replica: String,
    max_bytes: u64,
    seq: u64,
}

impl Segments {
    pub fn open(store: Store, folder: &'static str, replica: &str, max_bytes: u64) -> Self {
        let replica = replica
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        Self {
            store,
            folder,
            replica,
            max_bytes,
            seq: 0,
        }
    }

    /// Writes one segment holding instances answered from `first_ms` to `last_ms`,
    /// then removes the folder's oldest segments (any replica's: a restarted
    /// replica's old ones too) past the bound, never the one just written (its
    /// bytes may hold instances older than the rest). Returns the bytes the folder
    /// now takes.
    pub fn write(&mut self, first_ms: u64, last_ms: u64, bytes: &[u8]) -> Result<u64, StoreError> {
        self.seq += 1;
        let name = format!(
            "{}/{first_ms:015}_{last_ms:015}_{}_{:09}_{}",
            self.folder,
            self.replica,
            self.seq,
            bytes.len()
        );
        self.store.write_record(&name, bytes)?;
        let mut all = list(&self.store, self.folder);
        all.sort_by_key(|s| (s.last_ms, s.first_ms));
        let mut total: u64 = all.iter().map(|s| s.bytes).sum();
        for old in all.iter().filter(|s| s.name != name) {
            if total <= self.max_bytes {
                break;
            }
            if let Err(e) = self.store.delete_record(&old.name) {
                tracing::warn!(error = %e, segment = old.name, "could not remove an old segment");
            }
            total -= old.bytes;
        }
        Ok(total)
    }
}

/// Every replica's segments in `folder` (any order; unreadable names skipped);
/// none when the store cannot list them.
pub fn list(store: &Store, folder: &str) -> Vec<SegmentName> {
    try_list(store, folder).unwrap_or_default()
}

/// [`list`], with the store's error when it cannot list them.
pub fn try_list(store: &Store, folder: &str) -> Result<Vec<SegmentName>, StoreError> {
    Ok(store
        .list_records(folder)?
        .into_iter()
        .filter_map(SegmentName::parse)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_rotate_within_their_bound_and_say_what_they_cover() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut a = Segments::open(store.clone(), "predictions", "pod:1", 350);
        let mut b = Segments::open(store.clone(), "predictions", "b", 350);
        for i in 0..5u64 {
            let total = a.write(i * 10, i * 10 + 9, &[b'x'; 100]).unwrap();
            assert!(total <= 350, "{total}");
        }
        b.write(35, 52, &[b'y'; 100]).unwrap();
        let all = list(&store, "predictions");
        let bytes: u64 = all.iter().map(|s| s.bytes).sum();
        assert!(bytes <= 350, "{all:?}");
        assert_eq!(all.iter().filter(|s| s.replica == "pod-1").count(), 2);
        let covering: Vec<_> = all.iter().filter(|s| s.covers(45)).collect();
        assert_eq!(covering.len(), 2, "{all:?}");
        assert!(all.iter().any(|s| s.covers(51) && s.replica == "b"));
        assert!(!all.iter().any(|s| s.covers(5)), "the oldest went first");
        // The folder's bytes on disk match the names.
        let on_disk: u64 = std::fs::read_dir(dir.path().join("predictions"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, bytes);
    }

    #[test]
    fn the_segment_just_written_is_never_the_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = Segments::open(store.clone(), "feedback", "a", 250);
        // Two segments from far ahead fill the bound...
        w.write(9_000_000, 9_000_001, &[b'f'; 100]).unwrap();
        w.write(9_000_002, 9_000_003, &[b'f'; 100]).unwrap();
        // ... and a real, older one is written: an older one goes, not it.
        let total = w.write(1_000, 2_000, &[b'r'; 100]).unwrap();
        assert!(total <= 250, "{total}");
        let all = list(&store, "feedback");
        assert!(all.iter().any(|s| s.covers(1_500)), "{all:?}");
    }
}
