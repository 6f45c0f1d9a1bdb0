//! [`TensorError`]: why an OIP v2 input tensor does not give rows for the model.
//! Client text (the input's name, a datatype) is quoted in part.

use crate::quote::quoted;

/// An input tensor that cannot be read as the model's rows (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// A datatype kiln does not convert (`BOOL`, `BYTES`, `FP16`, ...).
    #[error(
        "datatype {} is not supported; send FP32, FP64 or an integer type",
        quoted(.0)
    )]
    Datatype(String),
    #[error("shape {shape:?} has a dimension that is not positive ({dim})")]
    NonPositive { shape: Vec<i64>, dim: i64 },
    /// `[N, w]` rows of another width than a flat model takes.
    #[error("input {} has {got} features per row; the model expects {width}", quoted(.input))]
    Features {
        input: String,
        got: u64,
        width: usize,
    },
    /// A shape that is neither `[N, width]` nor `[width]` (flat instances).
    #[error("shape {shape:?} must be [N, {width}] (or [{width}] for one row)")]
    FlatShape { shape: Vec<i64>, width: usize },
    /// A shape that is neither `[N, ..instance]`, `[N, width]` nor one instance.
    #[error(
        "shape {shape:?} must be [N, {}] or [N, {width}]",
        .instance.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    )]
    InstanceShape {
        shape: Vec<i64>,
        instance: Vec<usize>,
        width: usize,
    },
    /// More elements than a request may hold.
    #[error("shape {0:?} is too large")]
    TooLarge(Vec<i64>),
    /// Binary data of another length than the shape and datatype need.
    #[error(
        "input {}: shape {shape:?} of {datatype} needs {needed} bytes of binary data, got {got}",
        quoted(.input)
    )]
    BinaryLength {
        input: String,
        shape: Vec<i64>,
        datatype: String,
        needed: usize,
        got: usize,
    },
    /// JSON data of another length than the shape holds.
    #[error(
        "input {}: shape {shape:?} holds {expected} elements, data has {got}",
        quoted(.input)
    )]
    DataLength {
        input: String,
        shape: Vec<i64>,
        expected: usize,
        got: usize,
    },
    /// Fractions in an integer tensor's JSON data.
    #[error("input {}: {datatype} data must be integers", quoted(.input))]
    NotIntegers { input: String, datatype: String },
    /// Neither JSON data nor binary data.
    #[error("input {} has no data", quoted(.input))]
    NoData { input: String },
    /// A NaN or infinite element (after conversion to 32-bit floats).
    #[error("input {}: element {element} is not a finite number", quoted(.input))]
    NotFinite { input: String, element: usize },
}
