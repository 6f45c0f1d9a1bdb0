//! [`ObjectBackend`]'s [`Backend`] operations, on the request helpers of
//! `mod.rs`: the layout and the conditional writes its module doc describes.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as Key;
use object_store::{Error as OsError, ObjectStoreExt, PutMode, UpdateVersion};

use super::{IDS, LOCKS, ObjectBackend, VERSIONS, lost, now_ms, tag_of, unix_ms};
use crate::registry::{Backend, MANIFEST, StoreError, Tag, parse_id};

impl Backend for ObjectBackend {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn versions(&self) -> Result<Vec<String>, StoreError> {
        let listed = self
            .list(VERSIONS)
            .map_err(|e| self.remote("list versions", e))?;
        Ok(listed
            .iter()
            .filter_map(Self::version_of)
            .filter(|(id, file)| file == MANIFEST && parse_id(id).is_some())
            .map(|(id, _)| id)
            .collect())
    }

    fn create_version(&self, files: &[(&str, Vec<u8>)]) -> Result<String, StoreError> {
        let claimed = self
            .list(IDS)
            .map_err(|e| self.remote("list ids", e))?
            .iter()
            .filter_map(|m| parse_id(m.location.filename()?))
            .max()
            .unwrap_or(0);
        let present = self
            .versions()?
            .iter()
            .filter_map(|v| parse_id(v))
            .max()
            .unwrap_or(0);
        let mut next = claimed.max(present) + 1;
        let id = loop {
            let id = format!("v{next}");
            match self.put(
                Key::from(format!("{IDS}/{id}")),
                Vec::new(),
                PutMode::Create,
            ) {
                Ok(()) => break id,
                Err(e) if lost(&e) => next += 1,
                Err(e) => return Err(self.remote("claim a version id", e)),
            }
        };
        self.upload(&id, files)?;
        Ok(id)
    }

    fn put_version(&self, id: &str, files: &[(&str, Vec<u8>)]) -> Result<bool, StoreError> {
        if parse_id(id).is_none() {
            return Err(StoreError::NotFound(id.into()));
        }
        let whole = self
            .exists(Self::version_key(id, MANIFEST))
            .map_err(|e| self.remote("head", e))?;
        if whole {
            return Ok(false);
        }
        match self.put(
            Key::from(format!("{IDS}/{id}")),
            Vec::new(),
            PutMode::Create,
        ) {
            Err(e) if !lost(&e) => return Err(self.remote("claim a version id", e)),
            _ => {}
        }
        self.upload(id, files)?;
        Ok(true)
    }

    fn read_version_file(&self, version: &str, name: &str) -> Result<Vec<u8>, StoreError> {
        if parse_id(version).is_none() {
            return Err(StoreError::NotFound(version.into()));
        }
        let cacheable = name != MANIFEST;
        if cacheable && let Some(bytes) = self.cache.as_ref().and_then(|c| c.get(version, name)) {
            return Ok(bytes);
        }
        match self.get(Self::version_key(version, name)) {
            Ok(Some((bytes, _))) => {
                if cacheable && let Some(cache) = &self.cache {
                    cache.put(version, name, &bytes);
                }
                Ok(bytes.to_vec())
            }
            Ok(None) => {
                let whole = self
                    .exists(Self::version_key(version, MANIFEST))
                    .map_err(|e| self.remote("head", e))?;
                if whole {
                    Err(StoreError::Corrupt {
                        version: version.into(),
                        reason: format!("{name} is missing"),
                    })
                } else {
                    Err(StoreError::NotFound(version.into()))
                }
            }
            Err(e) => Err(self.remote("read a version", e)),
        }
    }

    fn delete_version(&self, version: &str) -> Result<(), StoreError> {
        let manifest = Self::version_key(version, MANIFEST);
        let present = parse_id(version).is_some()
            && self
                .exists(manifest.clone())
                .map_err(|e| self.remote("head", e))?;
        if !present {
            return Err(StoreError::NotFound(version.into()));
        }
        // The manifest first: from then on the version is gone for every reader.
        self.delete(manifest)
            .map_err(|e| self.remote("delete a version", e))?;
        if let Some(cache) = &self.cache {
            cache.forget(version);
        }
        for meta in self
            .list(&format!("{VERSIONS}/{version}"))
            .map_err(|e| self.remote("list a version", e))?
        {
            self.delete(meta.location)
                .map_err(|e| self.remote("delete a version", e))?;
        }
        Ok(())
    }

    fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_record_tagged(name)?.map(|(bytes, _)| bytes))
    }

    fn read_record_tagged(&self, name: &str) -> Result<Option<(Vec<u8>, Tag)>, StoreError> {
        let key = Self::record_key(name)?;
        Ok(self
            .get(key)
            .map_err(|e| self.remote("read a record", e))?
            .map(|(bytes, meta)| (bytes.to_vec(), tag_of(&meta))))
    }

    fn record_tag(&self, name: &str) -> Result<Option<Tag>, StoreError> {
        let key = Self::record_key(name)?;
        match self.call(move |s| async move { s.head(&key).await }) {
            Ok(meta) => Ok(Some(tag_of(&meta))),
            Err(OsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.remote("head a record", e)),
        }
    }

    fn write_record(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = Self::record_key(name)?;
        self.put(key, bytes.to_vec(), PutMode::Overwrite)
            .map_err(|e| self.remote("write a record", e))
    }

    fn write_record_if(
        &self,
        name: &str,
        bytes: &[u8],
        expected: Option<&Tag>,
    ) -> Result<bool, StoreError> {
        let key = Self::record_key(name)?;
        let mode = match expected {
            None => PutMode::Create,
            Some(tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(tag.clone()),
                version: None,
            }),
        };
        match self.put(key, bytes.to_vec(), mode) {
            Ok(()) => Ok(true),
            Err(e) if lost(&e) => Ok(false),
            Err(e) => Err(self.remote("write a record", e)),
        }
    }

    fn list_records(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let listed = self.list(dir).map_err(|e| self.remote("list records", e))?;
        Ok(listed
            .iter()
            .filter_map(|meta| {
                let rest = meta
                    .location
                    .as_ref()
                    .strip_prefix(dir)?
                    .strip_prefix('/')?;
                let name = rest.strip_suffix(".json")?;
                (!name.contains('/')).then(|| format!("{dir}/{name}"))
            })
            .collect())
    }

    fn destroy(&self) -> Result<(), StoreError> {
        // Cached files go first: a model made again under the same name must
        // never be served another's bytes.
        if let Some(cache) = &self.cache {
            for version in self.versions()? {
                cache.forget(&version);
            }
        }
        let listed = self
            .list("")
            .map_err(|e| self.remote("list a model's files", e))?;
        for meta in listed {
            self.delete(meta.location)
                .map_err(|e| self.remote("delete a model's files", e))?;
        }
        Ok(())
    }

    fn delete_record(&self, name: &str) -> Result<(), StoreError> {
        let key = Self::record_key(name)?;
        self.delete(key)
            .map_err(|e| self.remote("delete a record", e))
    }

    fn try_lock(&self, name: &str, stale_after: Duration) -> Result<bool, StoreError> {
        let key = Key::from(format!("{LOCKS}/{name}"));
        let holder = format!("{} {}\n", std::process::id(), now_ms()).into_bytes();
        match self.put(key.clone(), holder.clone(), PutMode::Create) {
            Ok(()) => return Ok(true),
            Err(e) if !lost(&e) => return Err(self.remote("take a lock", e)),
            Err(_) => {}
        }
        // Held: by a live replica, or by one that died holding it.
        let meta = match self.call({
            let key = key.clone();
            move |s| async move { s.head(&key).await }
        }) {
            Ok(meta) => meta,
            Err(OsError::NotFound { .. }) => return Ok(false), // released meanwhile
            Err(e) => return Err(self.remote("take a lock", e)),
        };
        let age = now_ms().saturating_sub(unix_ms(&meta));
        if age < i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX) {
            return Ok(false);
        }
        let take_over = PutMode::Update(UpdateVersion {
            e_tag: meta.e_tag,
            version: meta.version,
        });
        match self.put(key, holder, take_over) {
            Ok(()) => Ok(true),
            Err(e) if lost(&e) || matches!(e, OsError::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.remote("take a lock", e)),
        }
    }

    fn unlock(&self, name: &str) {
        if let Err(e) = self.delete(Key::from(format!("{LOCKS}/{name}"))) {
            tracing::warn!(lock = name, error = %e, "cannot release a store lock; it expires when stale");
        }
    }

    fn child(&self, name: &str) -> Result<Arc<dyn Backend>, StoreError> {
        Ok(Arc::new(ObjectBackend::child(
            self,
            super::super::MODELS,
            name,
        )))
    }

    fn clean_tmp(&self, older_than: Duration) -> usize {
        let Ok(listed) = self.list(VERSIONS) else {
            return 0;
        };
        // Versions without a manifest: uploads that died (or are under way).
        let mut partial: std::collections::BTreeMap<String, (bool, i64, Vec<Key>)> =
            Default::default();
        for meta in &listed {
            if let Some((id, file)) = Self::version_of(meta) {
                let entry = partial.entry(id).or_insert((false, i64::MIN, Vec::new()));
                entry.0 |= file == MANIFEST;
                entry.1 = entry.1.max(unix_ms(meta));
                entry.2.push(meta.location.clone());
            }
        }
        let cutoff = now_ms().saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(0));
        let mut removed = 0;
        for (id, (whole, newest, keys)) in partial {
            if whole || newest > cutoff {
                continue;
            }
            tracing::info!(
                version = id,
                "removing a version upload that never finished"
            );
            removed += keys
                .into_iter()
                .filter(|k| self.delete(k.clone()).is_ok())
                .count();
        }
        removed
    }
}
