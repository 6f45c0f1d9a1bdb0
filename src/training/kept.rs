//! A version's kept copy of its prepared training data (`datasets/<version>` in
//! the store, CSV with the version's feature names and target column), so that
//! automatic retraining can train on it again with new labelled rows. Bounded:
//! past [`MAX_KEPT_VALUES`] only the most recent rows are kept.

use super::data::Dataset;
use crate::model::Task;
use crate::registry::{Store, StoreError};

/// Most feature values kept per version.
pub const MAX_KEPT_VALUES: usize = 4_000_000;

/// The store record of `version`'s data.
pub fn record_name(version: &str) -> String {
    format!("datasets/{version}")
}

/// `data` as CSV text: a header of feature names and `target`, then the rows
/// (class names for classifiers); the most recent rows when over the bound.
pub fn to_csv(data: &Dataset, target: &str) -> String {
    let width = data.width().max(1);
    let keep = (MAX_KEPT_VALUES / width).min(data.len());
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = data.features.iter().map(String::as_str).chain([target]);
    out.write_record(header).expect("writing to memory");
    for r in data.len() - keep..data.len() {
        let row = &data.x[r * width..(r + 1) * width];
        let target = match data.task {
            Task::Classification => data.labels[data.y[r] as usize].clone(),
            Task::Regression => data.y[r].to_string(),
        };
        out.write_record(row.iter().map(f32::to_string).chain([target]))
            .expect("writing to memory");
    }
    String::from_utf8(out.into_inner().expect("writing to memory")).expect("CSV of UTF-8 fields")
}

/// Keeps `data` for `version`.
pub fn keep(store: &Store, version: &str, data: &Dataset, target: &str) -> Result<(), StoreError> {
    store.write_record(&record_name(version), to_csv(data, target).as_bytes())
}

/// `version`'s kept data, if it has any.
pub fn read(store: &Store, version: &str) -> Option<String> {
    let bytes = store.read_record(&record_name(version)).ok()??;
    String::from_utf8(bytes).ok()
}
