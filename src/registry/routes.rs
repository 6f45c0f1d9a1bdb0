//! The routes record: the canary and shadow routes every replica follows, like
//! the active version. The replica that changes a route writes it whole (under
//! the models lock); the others poll its tag and apply it.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, Tag};

const ROUTES: &str = "routes";

/// One route: the version and the share of unpinned requests it takes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RouteEntry {
    pub version: String,
    pub percent: f64,
}

/// Both routes as the store holds them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RoutesRecord {
    #[serde(default)]
    pub canary: Option<RouteEntry>,
    #[serde(default)]
    pub shadow: Option<RouteEntry>,
}

impl Store {
    /// The routes record, if one was ever written, with its tag.
    pub fn routes(&self) -> Result<Option<(RoutesRecord, Tag)>, StoreError> {
        let Some((bytes, tag)) = self.timed("read_record", |b| b.read_record_tagged(ROUTES))?
        else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            version: ROUTES.into(),
            reason: e.to_string(),
        })?;
        Ok(Some((record, tag)))
    }

    /// The routes record's tag alone (what replicas poll).
    pub fn routes_tag(&self) -> Result<Option<Tag>, StoreError> {
        self.timed("head_record", |b| b.record_tag(ROUTES))
    }

    /// Writes the routes record whole.
    pub fn set_routes(&self, record: &RoutesRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(record).expect("a record serialises");
        self.write_record(ROUTES, &json)
    }
}
