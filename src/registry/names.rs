//! Named models: what a model's name may be, and where a named model lives in the
//! store.
//!
//! The store's root holds its default model (`model.name`), laid out as a
//! single-model store always was, so a store made before named models serves
//! unchanged. Every other model is a store of its own under `models/<name>/`, and
//! `models/<name>.json` records that it exists (what [`Store::model_names`]
//! lists).

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// The directory of the named models.
pub(super) const MODELS: &str = "models";

/// Longest model name.
pub const MAX_NAME_LEN: usize = 64;

/// A checked model name: 1 to 64 of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter, and never a version id (`v` and digits), so `/models/{version}` and
/// `/models/{name}` cannot be confused. A name is also a path segment and a
/// metric label, so nothing else is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ModelName(String);

/// Why a text is not a model name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a model name: {reason}")]
pub struct NameError {
    shown: String,
    reason: &'static str,
}

/// Words a path segment after `/models/` already means.
const RESERVED: [&str; 2] = ["rollback", "versions"];

impl ModelName {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let bad = |reason| NameError {
            shown: text.chars().take(MAX_NAME_LEN).collect(),
            reason,
        };
        if text.is_empty() || text.len() > MAX_NAME_LEN {
            return Err(bad("a name has 1 to 64 characters"));
        }
        if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(bad("a name starts with a lowercase letter"));
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if !text.chars().all(allowed) {
            return Err(bad("a name has only a-z, 0-9, '-' and '_'"));
        }
        if super::parse_id(text).is_some() {
            return Err(bad("`v` and digits is a version id"));
        }
        if RESERVED.contains(&text) {
            return Err(bad("the word is a route of its own"));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ModelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ModelName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A named model's entry in `models/`.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    name: ModelName,
    created_at: u64,
}

impl Store {
    /// The store of the named model `name` (its versions, active record, jobs,
    /// prediction log and feedback), under `models/<name>/`. Nothing is written
    /// until [`add_model`](Self::add_model).
    pub fn model(&self, name: &ModelName) -> Result<Store, StoreError> {
        Ok(Store {
            backend: self.backend.child(name.as_str())?,
            observer: self.observer.clone(),
        })
    }

    /// Records that the named model `name` exists (idempotent).
    pub fn add_model(&self, name: &ModelName) -> Result<(), StoreError> {
        let record = format!("{MODELS}/{name}");
        if self.backend.read_record(&record)?.is_some() {
            return Ok(());
        }
        let entry = Entry {
            name: name.clone(),
            created_at: super::unix_now(),
        };
        let bytes = serde_json::to_vec(&entry).expect("an entry serializes");
        self.backend.write_record(&record, &bytes)
    }

    /// Deletes the named model `name`: its record first (no replica or restart
    /// opens it from then on), then every file of its store.
    pub fn remove_model(&self, name: &ModelName) -> Result<(), StoreError> {
        self.backend.delete_record(&format!("{MODELS}/{name}"))?;
        self.model(name)?.backend.destroy()
    }

    /// The named models recorded in this store, in name order (entries that are
    /// not names are skipped).
    pub fn model_names(&self) -> Result<Vec<ModelName>, StoreError> {
        let mut names: Vec<ModelName> = self
            .backend
            .list_records(MODELS)?
            .iter()
            .filter_map(|r| r.strip_prefix(MODELS)?.strip_prefix('/'))
            .filter_map(|n| ModelName::parse(n).ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["fraud", "churn-eu", "customer_42", "a", "v1x", "versioned"] {
            assert_eq!(ModelName::parse(good).unwrap().as_str(), good);
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "v1",
            "v42",
            "rollback",
            "versions",
            "Fraud",
            "1model",
            "-x",
            "_other",
            "a/b",
            "..",
            "a.b",
            "a b",
            "é",
            long.as_str(),
        ] {
            assert!(ModelName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            ModelName::parse(&"a".repeat(MAX_NAME_LEN))
                .unwrap()
                .as_str()
                .len(),
            64
        );
        let e = ModelName::parse("v7").unwrap_err().to_string();
        assert!(e.contains("version id"), "{e}");
    }

    #[test]
    fn a_named_model_has_a_store_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let root = Store::open(dir.path()).unwrap();
        named_stores_are_apart(&root);
        assert!(dir.path().join("models/fraud/jobs/j1.json").is_file());
    }

    #[test]
    fn a_named_model_in_a_bucket_lives_under_its_prefix() {
        use object_store::ObjectStoreExt;
        let bucket = std::sync::Arc::new(object_store::memory::InMemory::new());
        let backend =
            super::super::ObjectBackend::new("s3://bucket/kiln".into(), bucket.clone(), None)
                .unwrap();
        let root = Store::with_backend(std::sync::Arc::new(backend));
        named_stores_are_apart(&root);
        let key = object_store::path::Path::from("models/fraud/jobs/j1.json");
        let got = futures::executor::block_on(bucket.get(&key)).map(|_| ());
        assert!(got.is_ok(), "{got:?}");
    }

    fn named_stores_are_apart(root: &Store) {
        let fraud = ModelName::parse("fraud").unwrap();
        let churn = ModelName::parse("churn").unwrap();
        assert!(root.model_names().unwrap().is_empty());
        let f = root.model(&fraud).unwrap();
        root.add_model(&fraud).unwrap();
        root.add_model(&fraud).unwrap();
        root.add_model(&churn).unwrap();
        assert_eq!(root.model_names().unwrap(), [churn.clone(), fraud.clone()]);
        f.backend.write_record("jobs/j1", b"{}").unwrap();
        assert_eq!(f.backend.list_records("jobs").unwrap(), ["jobs/j1"]);
        assert!(root.backend.list_records("jobs").unwrap().is_empty());
        assert!(
            root.model(&churn)
                .unwrap()
                .backend
                .list_records("jobs")
                .unwrap()
                .is_empty()
        );
    }
}
