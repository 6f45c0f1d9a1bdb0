//! Tabular data for training: CSV parsing into a numeric matrix plus targets, and
//! standardisation statistics fitted on it.

use crate::model::Standardize;

/// Rows of numeric features with one target each.
#[derive(Debug, Clone)]
pub struct Table {
    /// Feature column names, in order.
    pub features: Vec<String>,
    /// Row-major features, `len()` x `features.len()`.
    pub x: Vec<f32>,
    /// One target per row.
    pub y: Vec<f32>,
}

/// A CSV that cannot become a [`Table`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum DataError {
    #[error("no column named {0:?} (the target)")]
    NoTarget(String),
    #[error("line {line}: column {column:?}: {value:?} is not a number")]
    NotNumeric {
        line: u64,
        column: String,
        value: String,
    },
    #[error("malformed CSV: {0}")]
    Csv(String),
    #[error("the data has no rows")]
    Empty,
}

impl Table {
    /// Parses CSV text with a header row; every column but `target` is a feature.
    pub fn from_csv(text: &str, target: &str) -> Result<Self, DataError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
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
            .ok_or_else(|| DataError::NoTarget(target.into()))?;
        let features: Vec<String> = header
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != target_idx)
            .map(|(_, h)| h.clone())
            .collect();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for record in reader.records() {
            let record = record.map_err(|e| DataError::Csv(e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            for (i, field) in record.iter().enumerate() {
                let value: f32 = field.parse().map_err(|_| DataError::NotNumeric {
                    line,
                    column: header[i].clone(),
                    value: field.into(),
                })?;
                if i == target_idx {
                    y.push(value);
                } else {
                    x.push(value);
                }
            }
        }
        if y.is_empty() {
            return Err(DataError::Empty);
        }
        Ok(Self { features, x, y })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of feature columns.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// Per-column mean and standard deviation (a constant column gets deviation 1,
    /// so it maps to 0 instead of dividing by zero).
    pub fn fit_standardize(&self) -> Standardize {
        let (w, n) = (self.width(), self.len() as f64);
        let mut mean = vec![0f64; w];
        for row in self.x.chunks_exact(w) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += f64::from(*v) / n;
            }
        }
        let mut var = vec![0f64; w];
        for row in self.x.chunks_exact(w) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(*v) - m).powi(2) / n;
            }
        }
        Standardize {
            mean: mean.iter().map(|m| *m as f32).collect(),
            std: var
                .iter()
                .map(|v| if *v > 1e-12 { v.sqrt() as f32 } else { 1.0 })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_bad_cells() {
        let t = Table::from_csv("a,target,b\n1,0,2\n3,1,4\n", "target").unwrap();
        assert_eq!(t.features, ["a", "b"]);
        assert_eq!(t.x, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(t.y, [0.0, 1.0]);

        let err = Table::from_csv("a,target\n1,0\nx,1\n", "target").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(matches!(
            Table::from_csv("a,b\n1,2\n", "target"),
            Err(DataError::NoTarget(_))
        ));
    }

    #[test]
    fn standardize_statistics() {
        let t = Table::from_csv("a,c,target\n1,5,0\n3,5,0\n", "target").unwrap();
        let s = t.fit_standardize();
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.std, [1.0, 1.0]);
    }
}
