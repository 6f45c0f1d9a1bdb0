use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn want(name: &str, shape: Vec<usize>) -> Expected {
    Expected {
        name: name.into(),
        shape,
        layer: "layer 0 (linear)".into(),
    }
}

#[test]
fn unknown_tensors_are_refused_before_anything_is_read() {
    let reads = Arc::new(AtomicUsize::new(0));
    let mut tensors = vec![("0.weight", vec![2], vec![1.0, 2.0])];
    for i in 0..50 {
        tensors.push((["x0", "x1", "x2", "x3", "x4"][i % 5], vec![1], vec![0.0]));
    }
    let file = WeightFile::in_memory(&tensors, reads.clone());
    let err = file.take(&[want("0.weight", vec![2])]).unwrap_err();
    assert!(
        matches!(&err, WeightsError::Mismatch(m) if m.to_string().contains("x0 [1] is not part of the model config")),
        "{err}"
    );
    assert_eq!(reads.load(Ordering::SeqCst), 0, "nothing was read");
}

#[test]
fn a_tensor_over_its_share_of_the_budget_is_refused_unread() {
    let reads = Arc::new(AtomicUsize::new(0));
    let mut file = WeightFile::in_memory(&[("w", vec![2], vec![1.0, 2.0])], reads.clone());
    // A header that claims more than the widest float allows for its shape.
    file.headers.get_mut("w").unwrap().bytes = 17;
    let err = file.take(&[want("w", vec![2])]).unwrap_err();
    assert!(
        matches!(
            err,
            WeightsError::OverBudget {
                needed: 17,
                budget: 16
            }
        ),
        "{err}"
    );
    assert_eq!(reads.load(Ordering::SeqCst), 0);
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let reads = Arc::new(AtomicUsize::new(0));
    let file = WeightFile::in_memory(
        &[
            ("0.weight", vec![2], vec![f32::NAN, f32::NAN]),
            ("0.bias", vec![1], vec![f32::INFINITY]),
        ],
        reads,
    );
    let err = file
        .take(&[want("0.bias", vec![1]), want("0.weight", vec![2])])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "tensor 0.bias holds 1 infinite of its 1 values: weights must be finite numbers"
    );
}

#[test]
fn the_budget_is_every_expected_value_at_eight_bytes() {
    assert_eq!(
        budget(&[want("a", vec![3, 2]), want("b", vec![3]), want("c", vec![])]),
        8 * (6 + 3 + 1)
    );
}

#[test]
fn unknown_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pth");
    std::fs::write(&path, b"hello, this is not a model").unwrap();
    let err = WeightFile::open(&path).err().unwrap().to_string();
    assert!(err.contains("neither"), "{err}");
    std::fs::write(&path, b"PK\x03\x04garbage").unwrap();
    assert!(WeightFile::open(&path).is_err());
}
