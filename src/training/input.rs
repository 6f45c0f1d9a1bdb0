//! A job's input: the recipe, where its rows come from, and the model file it
//! names. `POST /train` builds one from its body, the server hands it to a worker
//! process (inside the worker's first line), and `kiln train` builds one from its
//! flags. [`JobInput::prepare`] turns it into clean data and the network to build,
//! with every check; the server runs it at submission (so a bad job gets a 422
//! before it is queued) and the worker runs it again to train.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::data::{DataError, Dataset, RawTable, RowCounts};
use super::error::TrainError;
use super::fit;
use super::spec::TrainSpec;
use super::windows::{Window, keep_newest};
use crate::model::NetConfig;

/// Largest dataset file read.
pub const MAX_DATASET_FILE: u64 = 512 * 1024 * 1024;

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
    /// Candidates to train, each on a recency window of the rows; the best on
    /// the shared validation rows is kept (automatic retraining). Empty: one fit
    /// on all rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// Only the newest this many rows are read (one window's fit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<usize>,
    /// The CSV delimiter (`kiln train --delimiter`); `None`: sniffed from the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<u8>,
}

/// Clean data and the network to train on it.
pub struct Prepared {
    pub data: Dataset,
    pub net: NetConfig,
    pub rows: RowCounts,
    /// The recipe with its sizes filled from the rows ([`super::defaults::sized`]).
    pub spec: TrainSpec,
    /// What was filled, and why.
    pub chosen: Vec<super::defaults::Chosen>,
}

impl JobInput {
    /// Reads, cleans and checks the data, resolves the network and checks both
    /// against `budget`.
    pub fn prepare(&self, budget: &Budget) -> Result<Prepared, TrainError> {
        self.spec.validate()?;
        let target = &self.spec.target;
        let mut raw = match &self.data {
            DataSource::Csv(text) => RawTable::from_csv_with(text, target, self.delimiter),
            DataSource::File(path) => {
                RawTable::from_csv_with(&read_file(path)?, target, self.delimiter)
            }
            DataSource::Instances { instances, targets } => {
                RawTable::from_instances(instances, targets)
            }
        }?;
        if let Some(rows) = self.newest {
            keep_newest(&mut raw, rows);
        }
        if raw.width() == 0 {
            return Err(DataError::Shape(format!(
                "the data has no feature columns besides the target {target:?}"
            ))
            .into());
        }
        let data = Dataset::prepare(raw, self.spec.task)?;
        budget.check_data(&data)?;
        let net = fit::resolve_net(&self.spec, &data, self.model_file.clone())?;
        let (spec, chosen) =
            super::defaults::sized(&self.spec, &net, data.len(), budget.max_activation_mb);
        // A chosen epoch count shorter than the recipe's warm-up, say, is named.
        spec.validate().map_err(|e| match chosen.is_empty() {
            true => e,
            false => TrainError::Recipe(format!(
                "{e} (with the sizes chosen from the rows; set epochs, batch_size and validation_split)"
            )),
        })?;
        budget.check_net(&spec, &net)?;
        // A recipe's `standardize` that cannot apply is its error before any work.
        super::defaults::standardize(spec.standardize, &net)?;
        let (train, validation) = spec.split(&data)?;
        Ok(Prepared {
            rows: RowCounts {
                input: data.rows_in,
                dropped: data.rows_dropped,
                train: train.len(),
                validation: validation.len(),
            },
            data,
            net,
            spec,
            chosen,
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
        TrainError::Data(DataError::Csv(format!("cannot read dataset {name:?}: {e}")))
    })
}
