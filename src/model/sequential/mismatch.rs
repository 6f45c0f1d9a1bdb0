//! [`HeaderMismatch`]: how a weight file's tensors differ from those a network
//! expects, one [`TensorProblem`] per tensor, named as PyTorch names them.

use std::fmt;

use crate::quote::bare;

/// The most problems a mismatch lists; the rest are counted.
pub const MAX_LISTED: usize = 12;

/// One tensor that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorProblem {
    /// A tensor the network needs is not in the file.
    #[error("missing tensor {name} {shape:?} ({layer})")]
    Missing {
        name: String,
        shape: Vec<usize>,
        layer: String,
    },
    /// The file's tensor has another shape.
    #[error("{name} has shape {found:?}; {layer} needs {needs:?}")]
    Shape {
        name: String,
        found: Vec<usize>,
        layer: String,
        needs: Vec<usize>,
    },
    /// The file's tensor holds integers or booleans.
    #[error("{name} is a {dtype} tensor; {layer} needs floats")]
    NotFloat {
        name: String,
        dtype: String,
        layer: String,
    },
    /// The file holds a tensor no layer has (its name quoted in part if long).
    #[error(
        "{} {shape:?} is not part of the model config (no layer has it)",
        bare(name)
    )]
    Unexpected { name: String, shape: Vec<usize> },
}

/// Every tensor that does not fit: the first [`MAX_LISTED`], and how many more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMismatch {
    pub problems: Vec<TensorProblem>,
    /// Problems found beyond those listed.
    pub more: usize,
}

impl HeaderMismatch {
    /// `problems` (not empty), cut to [`MAX_LISTED`].
    pub fn new(mut problems: Vec<TensorProblem>) -> Self {
        let more = problems.len().saturating_sub(MAX_LISTED);
        problems.truncate(MAX_LISTED);
        Self { problems, more }
    }
}

impl fmt::Display for HeaderMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        if self.more > 0 {
            write!(f, " (and {} more)", self.more)?;
        }
        Ok(())
    }
}

impl std::error::Error for HeaderMismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_listed_then_counted() {
        let extra = |i: usize| TensorProblem::Unexpected {
            name: format!("x{i}"),
            shape: vec![1],
        };
        let m = HeaderMismatch::new((0..14).map(extra).collect());
        assert_eq!(m.problems.len(), 12);
        let text = m.to_string();
        assert!(
            text.starts_with("x0 [1] is not part of the model config (no layer has it); x1 [1]"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "x11 [1] is not part of the model config (no layer has it) (and 2 more)"
            ),
            "{text}"
        );
    }
}
