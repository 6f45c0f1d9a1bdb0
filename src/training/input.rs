//! A job's input: the recipe, where its rows come from, and the model file it
//! names. `POST /train` builds one from its body, the server hands it to a worker
//! process (inside the worker's first line), and `kiln train` builds one from its
//! flags. [`JobInput::prepare`] turns it into clean data and the network to build,
//! with every check; the server runs it at submission (so a bad job gets a 422
//! before it is queued) and the worker runs it again to train.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::data::{Dataset, RawTable, RowCounts};
use super::fit;
use super::spec::TrainSpec;
use crate::model::NetConfig;

/// Largest dataset file read.
pub const MAX_DATASET_FILE: u64 = 512 * 1024 * 1024;

/// Why a job cannot run; the text is what the client reads.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrainError {
    /// A bad recipe or bad data (422).
    #[error("{0}")]
    Invalid(String),
    /// A dataset file over [`MAX_DATASET_FILE`] (413).
    #[error("{0}")]
    TooLarge(String),
}

/// Where the training rows come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// CSV text with a header row.
    Csv(String),
    /// A CSV file (already resolved inside the data directory by the server).
    File(PathBuf),
    /// Rows of features and their targets.
    Instances {
        instances: Vec<Vec<Option<f32>>>,
        targets: Vec<serde_json::Value>,
    },
}

/// Everything a job needs besides the store and the device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobInput {
    pub spec: TrainSpec,
    pub data: DataSource,
    /// The model-config file the recipe names, read by the server.
    pub model_file: Option<NetConfig>,
}

/// Clean data and the network to train on it.
pub struct Prepared {
    pub data: Dataset,
    pub net: NetConfig,
    pub rows: RowCounts,
}

impl JobInput {
    /// Reads, cleans and checks the data, resolves the network and checks both
    /// against `budget`.
    pub fn prepare(&self, budget: &Budget) -> Result<Prepared, TrainError> {
        let bad = |e: String| TrainError::Invalid(e);
        self.spec.validate().map_err(bad)?;
        let target = &self.spec.target;
        let raw = match &self.data {
            DataSource::Csv(text) => RawTable::from_csv(text, target),
            DataSource::File(path) => RawTable::from_csv(&read_file(path)?, target),
            DataSource::Instances { instances, targets } => {
                RawTable::from_instances(instances, targets)
            }
        }
        .map_err(|e| bad(e.to_string()))?;
        if raw.width() == 0 {
            return Err(bad(format!(
                "the data has no feature columns besides the target {target:?}"
            )));
        }
        let data = Dataset::prepare(raw, self.spec.task).map_err(|e| bad(e.to_string()))?;
        budget.check_data(&data).map_err(bad)?;
        let net = fit::resolve_net(&self.spec, &data, self.model_file.clone()).map_err(bad)?;
        budget.check_net(&self.spec, &net).map_err(bad)?;
        let (train, validation) = data
            .split(self.spec.validation_split, self.spec.seed)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Prepared {
            rows: RowCounts {
                input: data.rows_in,
                dropped: data.rows_dropped,
                train: train.len(),
                validation: validation.len(),
            },
            data,
            net,
        })
    }
}

fn read_file(path: &std::path::Path) -> Result<String, TrainError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_DATASET_FILE {
        return Err(TrainError::TooLarge(format!(
            "the dataset file is {size} bytes; the limit is {MAX_DATASET_FILE}"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        TrainError::Invalid(format!("cannot read dataset {name:?}: {e}"))
    })
}
