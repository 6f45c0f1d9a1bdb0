//! PyTorch's view of a network: the tensors it expects, in PyTorch's own names and
//! shapes ([`Expected`]), the check of a weight file's headers against them
//! ([`check_headers`]: every problem listed, before any data is read), and the
//! helpers each layer uses to take its matched tensors ([`Source`]).
//!
//! Reading the file itself is [`crate::model::weights`]'s.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::prelude::*;

use super::error::Unmatched;
use super::mismatch::{HeaderMismatch, TensorProblem};
use crate::model::weights::Header;

/// A tensor shape in PyTorch's layout, e.g. `[out, in]` for a Linear weight.
pub type TorchShape = Vec<usize>;

/// A tensor a network needs: its full PyTorch name, shape, and which layer wants it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: String,
    pub shape: TorchShape,
    pub layer: String,
}

/// Checks a file's headers against what the network expects: every problem is
/// listed (missing, wrong shape, not a float tensor, extra), named as PyTorch
/// names it; batch norm's `num_batches_tracked` is ignored. Nothing is read.
pub fn check_headers(
    headers: &BTreeMap<String, Header>,
    expected: &[Expected],
) -> Result<(), HeaderMismatch> {
    let mut problems = Vec::new();
    let mut wanted = std::collections::BTreeSet::new();
    for e in expected {
        wanted.insert(e.name.as_str());
        match headers.get(&e.name) {
            None => problems.push(TensorProblem::Missing {
                name: e.name.clone(),
                shape: e.shape.clone(),
                layer: e.layer.clone(),
            }),
            Some(t) if t.shape != e.shape => problems.push(TensorProblem::Shape {
                name: e.name.clone(),
                found: t.shape.clone(),
                layer: e.layer.clone(),
                needs: e.shape.clone(),
            }),
            Some(t) if !t.is_float() => problems.push(TensorProblem::NotFloat {
                name: e.name.clone(),
                dtype: t.dtype.clone(),
                layer: e.layer.clone(),
            }),
            Some(_) => {}
        }
    }
    for (name, t) in headers {
        if wanted.contains(name.as_str())
            || name == "num_batches_tracked"
            || name.ends_with(".num_batches_tracked")
        {
            continue;
        }
        problems.push(TensorProblem::Unexpected {
            name: name.clone(),
            shape: t.shape.clone(),
        });
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(HeaderMismatch::new(problems))
}

/// One layer's view of the matched tensors: names relative to the layer's prefix.
pub struct Source<'a> {
    pub tensors: &'a mut BTreeMap<String, Vec<f32>>,
    pub prefix: String,
}

impl Source<'_> {
    /// The tensor `<prefix>.<suffix>` (checked for presence and shape beforehand).
    pub fn take(&mut self, suffix: &str) -> Result<Vec<f32>, Unmatched> {
        let name = self.full(suffix);
        match self.tensors.remove(&name) {
            Some(values) => Ok(values),
            None => Err(Unmatched { name }),
        }
    }

    /// `<prefix>.<suffix>`, or `<suffix>` for an empty prefix.
    pub fn full(&self, suffix: &str) -> String {
        if self.prefix.is_empty() {
            suffix.to_string()
        } else {
            format!("{}.{suffix}", self.prefix)
        }
    }
}

/// A parameter from row-major data.
pub fn param<const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(data, shape), device))
}

/// `[rows, cols]` -> `[cols, rows]`, row-major.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(entries: &[(&str, Vec<usize>, bool)]) -> BTreeMap<String, Header> {
        entries
            .iter()
            .map(|(n, s, float)| {
                let header = if *float {
                    Header::f32(s.clone())
                } else {
                    Header::other(s.clone(), "I64", 8)
                };
                (n.to_string(), header)
            })
            .collect()
    }

    fn want(name: &str, shape: Vec<usize>) -> Expected {
        Expected {
            name: name.into(),
            shape,
            layer: "layer 0 (linear)".into(),
        }
    }

    #[test]
    fn every_problem_is_named_in_pytorch_terms() {
        let f = headers(&[
            ("0.weight", vec![3, 2], true),
            ("0.bias", vec![4], true),
            ("1.running_mean", vec![3], false),
            ("1.num_batches_tracked", vec![], false),
            ("9.weight", vec![1, 1], true),
        ]);
        let err = check_headers(
            &f,
            &[
                want("0.weight", vec![3, 2]),
                want("0.bias", vec![3]),
                want("1.running_mean", vec![3]),
                want("2.weight", vec![5, 3]),
            ],
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 4);
        assert!(
            matches!(&err.problems[2], TensorProblem::Missing { name, .. } if name == "2.weight")
        );
        let err = err.to_string();
        assert!(
            err.contains("0.bias has shape [4]; layer 0 (linear) needs [3]"),
            "{err}"
        );
        assert!(err.contains("1.running_mean is a I64 tensor"), "{err}");
        assert!(err.contains("missing tensor 2.weight [5, 3]"), "{err}");
        assert!(
            err.contains("9.weight [1, 1] is not part of the model config"),
            "{err}"
        );
        assert!(!err.contains("num_batches_tracked"), "{err}");
    }

    #[test]
    fn a_long_unknown_name_is_quoted_in_part() {
        let long = "x".repeat(10_000);
        let err = check_headers(&headers(&[(&long, vec![1], true)]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.len() < 300, "{err}");
        assert!(err.contains("(10000 bytes in all)"), "{err}");
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            transpose(&[1., 2., 3., 4., 5., 6.], 2, 3),
            [1., 4., 2., 5., 3., 6.]
        );
    }
}
