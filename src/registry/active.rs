//! The active-version record: which version serves, the one before it (for
//! rollback), and a generation that counts its writes. Written only by
//! compare-and-swap on its tag, so concurrent writers never lose an update.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ACTIVE, MANIFEST, Store, StoreError, Tag};

/// The record of the active version (and the one before it, for rollback).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ActiveRecord {
    pub version: String,
    #[serde(default)]
    pub previous: Option<String>,
    /// Counts the writes of this record: each promotion or rollback adds one, so
    /// two writes never share a generation (none was lost).
    #[serde(default)]
    pub generation: u64,
}

impl Store {
    /// The active-version record, if one was ever written.
    pub fn active(&self) -> Result<Option<ActiveRecord>, StoreError> {
        Ok(self.active_tagged()?.map(|(record, _)| record))
    }

    /// The active record with its tag, for [`Store::activate_over`].
    pub fn active_tagged(&self) -> Result<Option<(ActiveRecord, Tag)>, StoreError> {
        let Some((bytes, tag)) = self.timed("read_record", |b| b.read_record_tagged(ACTIVE))?
        else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            version: ACTIVE.into(),
            reason: e.to_string(),
        })?;
        Ok(Some((record, tag)))
    }

    /// The active record's tag alone: what replicas poll (a HEAD on a bucket).
    pub fn active_tag(&self) -> Result<Option<Tag>, StoreError> {
        self.timed("head_record", |b| b.record_tag(ACTIVE))
    }

    /// Makes `version` the active one, remembering the current one as `previous`.
    /// A concurrent writer makes it re-read and retry; it never overwrites one.
    pub fn set_active(&self, version: &str) -> Result<ActiveRecord, StoreError> {
        for _ in 0..20 {
            let seen = self.active_tagged()?;
            match self.activate_over(version, seen.as_ref()) {
                Err(StoreError::Conflict(_)) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict("the active-version record".into()))
    }

    /// Makes `version` active if the record is still `seen` (as read with
    /// [`Store::active_tagged`]; `None`: no record yet), else
    /// [`StoreError::Conflict`] and nothing written.
    pub fn activate_over(
        &self,
        version: &str,
        seen: Option<&(ActiveRecord, Tag)>,
    ) -> Result<ActiveRecord, StoreError> {
        // NotFound if absent.
        self.timed("read_version", |b| b.read_version_file(version, MANIFEST))?;
        let previous = match seen {
            Some((r, _)) if r.version == version => r.previous.clone(),
            Some((r, _)) => Some(r.version.clone()),
            None => None,
        };
        let record = ActiveRecord {
            version: version.into(),
            previous,
            generation: seen.map_or(0, |(r, _)| r.generation) + 1,
        };
        let json = serde_json::to_vec_pretty(&record).expect("a record serialises");
        let tag = seen.map(|(_, tag)| tag);
        if self.timed("write_record", |b| b.write_record_if(ACTIVE, &json, tag))? {
            Ok(record)
        } else {
            Err(StoreError::Conflict("the active-version record".into()))
        }
    }
}
