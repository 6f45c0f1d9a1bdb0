//! Tabular training data: parsing CSV text or JSON instances into a [`RawTable`]
//! (missing cells kept as missing); [`Dataset`] (in `dataset`) cleans and encodes it.
//!
//! Text in a feature column is an error, not a dropped row: it is almost always the
//! wrong column or the wrong file. Missing cells are dropped later, and counted.

mod dataset;
pub mod delimiter;

pub use dataset::{Dataset, RowCounts, SplitMix64};

/// A parsed table before cleaning: missing cells are `None`.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub features: Vec<String>,
    /// Row-major, `rows` x `features.len()`; `NaN` marks a missing cell.
    pub x: Vec<f32>,
    pub targets: Vec<Option<Target>>,
}

/// One target cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Number(f64),
    Text(String),
}

/// A header read as one column holding another delimiter: the file was read with
/// a delimiter it does not use.
pub fn delimiter_hint(header: &[String]) -> &'static str {
    match header {
        [only] if only.contains(';') => {
            ". The header is one column holding semicolons: pass --delimiter ';' (kiln train and kiln predict)"
        }
        [only] if only.contains('\t') => {
            ". The header is one column holding tabs: pass --delimiter tab (kiln train and kiln predict)"
        }
        [only] if only.contains(',') => {
            ". The header is one column holding commas: pass --delimiter ',' (kiln train and kiln predict)"
        }
        _ => "",
    }
}

/// Data that cannot be trained on; the text is what the client reads.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DataError {
    #[error("no column named {0:?} (the target); columns are {1:?}{hint}", hint = delimiter_hint(.1))]
    NoTarget(String, Vec<String>),
    #[error("line {line}: column {column:?}: {value:?} is not a number")]
    NotNumeric {
        line: u64,
        column: String,
        value: String,
    },
    #[error("malformed CSV: {0}")]
    Csv(String),
    #[error("{0}")]
    Shape(String),
    #[error("no usable rows: all {0} rows had a missing or non-finite value")]
    NothingLeft(usize),
    #[error("the data has no rows")]
    Empty,
    #[error("{0}")]
    Task(String),
    /// A value the network cannot take (too large for its layers, an invalid id).
    #[error("{0}")]
    Value(String),
}

/// Cells read as missing.
fn is_missing(cell: &str) -> bool {
    matches!(cell, "" | "NA" | "N/A" | "na" | "null" | "NULL" | "?")
}

impl RawTable {
    /// Parses CSV text with a header row; every column but `target` is a feature.
    /// The delimiter is sniffed from the header ([`delimiter::sniff`]).
    pub fn from_csv(text: &str, target: &str) -> Result<Self, DataError> {
        Self::from_csv_with(text, target, None)
    }

    /// [`from_csv`](Self::from_csv) with the delimiter given (`None`: sniffed).
    pub fn from_csv_with(
        text: &str,
        target: &str,
        delimiter: Option<u8>,
    ) -> Result<Self, DataError> {
        let delimiter = delimiter.unwrap_or_else(|| delimiter::sniff(text));
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .delimiter(delimiter)
            .from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| DataError::Csv(e.to_string()))?
            .iter()
            .map(str::to_owned)
            .collect();
        let target_idx = header
            .iter()
            .position(|h| h == target)
            .ok_or_else(|| DataError::NoTarget(target.into(), header.clone()))?;
        let features: Vec<String> = header
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != target_idx)
            .map(|(_, h)| h.clone())
            .collect();
        let (mut x, mut targets) = (Vec::new(), Vec::new());
        for record in reader.records() {
            let record = record.map_err(|e| DataError::Csv(e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            for (i, cell) in record.iter().enumerate() {
                if i == target_idx {
                    targets.push(if is_missing(cell) {
                        None
                    } else {
                        Some(match delimiter::number::<f64>(cell, delimiter) {
                            Some(v) => Target::Number(v),
                            None => Target::Text(cell.to_owned()),
                        })
                    });
                } else if is_missing(cell) {
                    x.push(f32::NAN);
                } else {
                    x.push(delimiter::number(cell, delimiter).ok_or_else(|| {
                        DataError::NotNumeric {
                            line,
                            column: header[i].clone(),
                            value: cell.into(),
                        }
                    })?);
                }
            }
        }
        if targets.is_empty() {
            return Err(DataError::Empty);
        }
        Ok(Self {
            features,
            x,
            targets,
        })
    }

    /// Builds a table from JSON rows (`null` = missing) and targets.
    pub fn from_instances(
        instances: &[Vec<Option<f32>>],
        targets: &[serde_json::Value],
    ) -> Result<Self, DataError> {
        if instances.is_empty() {
            return Err(DataError::Empty);
        }
        if instances.len() != targets.len() {
            return Err(DataError::Shape(format!(
                "{} instances but {} targets",
                instances.len(),
                targets.len()
            )));
        }
        let width = instances[0].len();
        if width == 0 {
            return Err(DataError::Shape("instances have no features".into()));
        }
        let mut x = Vec::with_capacity(instances.len() * width);
        for (i, row) in instances.iter().enumerate() {
            if row.len() != width {
                return Err(DataError::Shape(format!(
                    "instance {i} has {} features, instance 0 has {width}",
                    row.len()
                )));
            }
            x.extend(row.iter().map(|v| v.unwrap_or(f32::NAN)));
        }
        let targets = targets
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                serde_json::Value::Null => Ok(None),
                serde_json::Value::Number(n) => Ok(n.as_f64().map(Target::Number)),
                serde_json::Value::String(s) => Ok(Some(Target::Text(s.clone()))),
                other => Err(DataError::Shape(format!(
                    "target {i} must be a number or a string, got {other}"
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            features: (0..width).map(|i| format!("x{i}")).collect(),
            x,
            targets,
        })
    }

    pub fn width(&self) -> usize {
        self.features.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parsing_reports_text_and_keeps_missing_cells() {
        let t = RawTable::from_csv("a,target,b\n1,0,2\n3,1,\n", "target").unwrap();
        assert_eq!(t.features, ["a", "b"]);
        assert!(t.x[3].is_nan());
        let err = RawTable::from_csv("a,target\n1,0\nx,1\n", "target").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(matches!(
            RawTable::from_csv("a,b\n1,2\n", "target"),
            Err(DataError::NoTarget(..))
        ));
    }
}
