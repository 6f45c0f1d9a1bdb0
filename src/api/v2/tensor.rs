//! Open Inference Protocol v2 request and response bodies, and turning an input
//! tensor (JSON `data`, flat or nested, or the binary tensor extension) into
//! row-major `f32` rows.
//!
//! Pure: no I/O, no model; the handlers in `mod.rs` check names and widths.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod error;

pub use error::TensorError;

/// An inference request. Unknown top-level fields (extensions) are ignored, as
/// other OIP servers do; `model_name` and `model_version` (sent by KServe's
/// client) must match the URL.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model_name: Option<String>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// Exactly one tensor, named `input`.
    #[schema(min_items = 1, max_items = 1)]
    pub inputs: Vec<InferInput>,
    /// Which outputs to return (default: all).
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input tensor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferInput {
    /// kiln's model has one input, `input`.
    #[schema(pattern = "^input$")]
    pub name: String,
    /// Dimensions, e.g. `[N, features]`.
    pub shape: Vec<i64>,
    /// `FP32`, `FP64` or an integer type (`INT8`..`INT64`, `UINT8`..`UINT64`).
    #[schema(pattern = "^(FP32|FP64|U?INT(8|16|32|64))$")]
    pub datatype: String,
    /// Row-major values, flat or nested; absent when sent as binary data.
    #[serde(default)]
    #[schema(value_type = Option<Vec<f64>>)]
    pub data: Option<FlatData>,
    /// `binary_data_size` marks data sent after the JSON header (binary extension).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A requested output.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    pub name: String,
    /// Accepted and ignored: outputs are always returned as JSON.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An inference response.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub parameters: ResponseParameters,
    pub outputs: Vec<OutputTensor>,
}

/// The response's `parameters`: kiln's prediction ids, one per instance (what
/// `POST /feedback` labels).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseParameters {
    #[schema(value_type = Vec<String>)]
    pub prediction_ids: Vec<crate::monitoring::ids::PredictionId>,
}

/// One output tensor.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputTensor {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    pub data: OutputData,
}

/// Output values, row-major.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OutputData {
    Floats(Vec<f32>),
    Strings(Vec<String>),
}

/// Every number of a (possibly nested) JSON array, in row-major order.
#[derive(Debug, Default, PartialEq)]
pub struct FlatData(pub Vec<f64>);

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Flatten<'a>(&'a mut Vec<f64>, usize);
        impl<'de> de::DeserializeSeed<'de> for Flatten<'_> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for Flatten<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("numbers, or arrays of numbers")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
                self.0.push(v);
                Ok(())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
                self.0.push(v as f64);
                Ok(())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
                self.0.push(v as f64);
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                if self.1 > 32 {
                    return Err(de::Error::custom("data is nested more than 32 levels deep"));
                }
                while seq
                    .next_element_seed(Flatten(self.0, self.1 + 1))?
                    .is_some()
                {}
                Ok(())
            }
        }
        let mut values = Vec::new();
        d.deserialize_any(Flatten(&mut values, 0))?;
        Ok(FlatData(values))
    }
}

/// Element types kiln converts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Fp32,
    Fp64,
    Int(u8),
    Uint(u8),
}

impl Datatype {
    /// Parses an OIP datatype name; others (`BOOL`, `BYTES`, `FP16`, ...) are refused.
    pub fn parse(name: &str) -> Result<Self, TensorError> {
        Ok(match name {
            "FP32" => Self::Fp32,
            "FP64" => Self::Fp64,
            "INT8" => Self::Int(1),
            "INT16" => Self::Int(2),
            "INT32" => Self::Int(4),
            "INT64" => Self::Int(8),
            "UINT8" => Self::Uint(1),
            "UINT16" => Self::Uint(2),
            "UINT32" => Self::Uint(4),
            "UINT64" => Self::Uint(8),
            other => return Err(TensorError::Datatype(other.to_string())),
        })
    }

    /// Bytes per element in the binary extension.
    pub fn size(self) -> usize {
        match self {
            Self::Fp32 => 4,
            Self::Fp64 => 8,
            Self::Int(n) | Self::Uint(n) => n as usize,
        }
    }

    /// Decodes little-endian binary elements.
    pub fn decode(self, bytes: &[u8]) -> Vec<f32> {
        let n = self.size();
        bytes
            .chunks_exact(n)
            .map(|b| match (self, n) {
                (Self::Fp32, _) => f32::from_le_bytes(b.try_into().unwrap()),
                (Self::Fp64, _) => f64::from_le_bytes(b.try_into().unwrap()) as f32,
                (Self::Int(_), 1) => i8::from_le_bytes([b[0]]) as f32,
                (Self::Int(_), 2) => i16::from_le_bytes(b.try_into().unwrap()) as f32,
                (Self::Int(_), 4) => i32::from_le_bytes(b.try_into().unwrap()) as f32,
                (Self::Int(_), _) => i64::from_le_bytes(b.try_into().unwrap()) as f32,
                (Self::Uint(_), 1) => b[0] as f32,
                (Self::Uint(_), 2) => u16::from_le_bytes(b.try_into().unwrap()) as f32,
                (Self::Uint(_), 4) => u32::from_le_bytes(b.try_into().unwrap()) as f32,
                (Self::Uint(_), _) => u64::from_le_bytes(b.try_into().unwrap()) as f32,
            })
            .collect()
    }
}

/// A batch of rows read from one input tensor.
#[derive(Debug, PartialEq)]
pub struct Rows {
    pub values: Vec<f32>,
    pub n: usize,
}

/// Checks `input` against a model whose instances have shape `instance` and returns
/// its rows. The tensor is `[N, ..instance]`, `[N, prod(instance)]` (flat rows), or
/// one instance without the batch dimension. `binary` holds this input's bytes
/// when it came through the binary extension.
pub fn rows(
    input: &InferInput,
    instance: &[usize],
    binary: Option<&[u8]>,
) -> Result<Rows, TensorError> {
    let datatype = Datatype::parse(&input.datatype)?;
    let width: usize = instance.iter().product();
    let shape = input.shape.as_slice();
    if let Some(bad) = shape.iter().find(|d| **d <= 0) {
        return Err(TensorError::NonPositive {
            shape: shape.to_vec(),
            dim: *bad,
        });
    }
    let dims: Vec<u64> = shape.iter().map(|d| *d as u64).collect();
    let inst: Vec<u64> = instance.iter().map(|d| *d as u64).collect();
    let n = match dims.as_slice() {
        [n, rest @ ..] if rest == inst.as_slice() => *n as usize,
        [n, w] if *w == width as u64 => *n as usize,
        one if one == inst.as_slice() || one == [width as u64] => 1,
        [_, w] if instance.len() == 1 => {
            return Err(TensorError::Features {
                input: input.name.clone(),
                got: *w,
                width,
            });
        }
        _ if instance.len() == 1 => {
            return Err(TensorError::FlatShape {
                shape: shape.to_vec(),
                width,
            });
        }
        _ => {
            return Err(TensorError::InstanceShape {
                shape: shape.to_vec(),
                instance: instance.to_vec(),
                width,
            });
        }
    };
    let expected = n
        .checked_mul(width)
        .filter(|e| *e <= u32::MAX as usize)
        .ok_or_else(|| TensorError::TooLarge(input.shape.clone()))?;
    let values: Vec<f32> = match (binary, &input.data) {
        (Some(bytes), _) => {
            if bytes.len() != expected * datatype.size() {
                return Err(TensorError::BinaryLength {
                    input: input.name.clone(),
                    shape: input.shape.clone(),
                    datatype: input.datatype.clone(),
                    needed: expected * datatype.size(),
                    got: bytes.len(),
                });
            }
            datatype.decode(bytes)
        }
        (None, Some(FlatData(data))) => {
            if data.len() != expected {
                return Err(TensorError::DataLength {
                    input: input.name.clone(),
                    shape: input.shape.clone(),
                    expected,
                    got: data.len(),
                });
            }
            if matches!(datatype, Datatype::Int(_) | Datatype::Uint(_))
                && data.iter().any(|v| v.fract() != 0.0)
            {
                return Err(TensorError::NotIntegers {
                    input: input.name.clone(),
                    datatype: input.datatype.clone(),
                });
            }
            data.iter().map(|v| *v as f32).collect()
        }
        (None, None) => {
            return Err(TensorError::NoData {
                input: input.name.clone(),
            });
        }
    };
    if let Some(element) = values.iter().position(|v| !v.is_finite()) {
        return Err(TensorError::NotFinite {
            input: input.name.clone(),
            element,
        });
    }
    Ok(Rows { values, n })
}

#[cfg(test)]
mod tests;
