//! Foreign weight files (PyTorch's `torch.save` zip or legacy pickle, and
//! safetensors), read in two steps so that a hostile file costs nothing to refuse:
//!
//! 1. [`WeightFile::open`] reads the headers only: each tensor's name, shape and
//!    element type, and the bytes it expands to once read, its element count times
//!    its element size whatever its strides (a PyTorch tensor of a million elements
//!    with stride 0 over one stored float is four megabytes once read).
//! 2. [`WeightFile::take`] checks every header against the tensors the network
//!    expects (names, shapes, float types), so an unknown or misshapen tensor is
//!    refused before any data is read. Then it reads the expected tensors only, one
//!    at a time, within a byte budget derived from the network's own parameter
//!    count, and refuses NaN and infinite values, naming the tensor.
//!
//! The file is only ever read by Burn's readers (`pytorch_reader`, the safetensors
//! store); a reader that panics on a malformed file is caught here and reported as
//! a bad file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::Path;

use burn::store::pytorch_reader::{self, DType as TorchDType, PytorchReader};
use burn::store::{ModuleStore, SafetensorsStore};
use burn::tensor::DType;

use super::finite;
use super::sequential::torch::{Expected, check_headers};

mod error;

pub use error::{ReadError, Unreadable, WeightsError};

/// The widest float element a file may hold (f64): an import's byte budget allows
/// every expected tensor at this width.
const WIDEST_FLOAT: u64 = 8;

/// What a file says about one tensor, before any of its data is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Extents, outermost first (PyTorch's layout).
    pub shape: Vec<usize>,
    /// The element type as the file names it (`F32`, `I64`, ...).
    pub dtype: String,
    /// `None` for integer and boolean tensors.
    float: Option<FloatKind>,
    /// Bytes the tensor expands to once read: element count x element size.
    pub bytes: u64,
}

impl Header {
    /// Whether the tensor holds floats (which kiln converts to `f32`).
    pub fn is_float(&self) -> bool {
        self.float.is_some()
    }

    /// An `f32` tensor's header (for tests).
    #[cfg(test)]
    pub fn f32(shape: Vec<usize>) -> Self {
        let bytes = 4 * shape.iter().product::<usize>() as u64;
        Self {
            shape,
            dtype: "F32".into(),
            float: Some(FloatKind::F32),
            bytes,
        }
    }

    /// A non-float tensor's header (for tests).
    #[cfg(test)]
    pub fn other(shape: Vec<usize>, dtype: &str, size: u64) -> Self {
        let bytes = size * shape.iter().product::<usize>() as u64;
        Self {
            shape,
            dtype: dtype.into(),
            float: None,
            bytes,
        }
    }
}

/// A weight file opened for its headers; its data is read by [`take`](Self::take).
pub struct WeightFile {
    headers: BTreeMap<String, Header>,
    data: Data,
}

/// Where tensor data comes from once it is asked for.
enum Data {
    Torch(HashMap<String, pytorch_reader::Tensor>),
    Safetensors(Box<SafetensorsStore>),
    /// Little-endian `f32` bytes by name, counting reads (unit tests).
    #[cfg(test)]
    Memory {
        bytes: BTreeMap<String, Vec<u8>>,
        reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    },
}

impl WeightFile {
    /// Opens a weight file, telling PyTorch and safetensors files apart by content;
    /// reads headers only.
    pub fn open(path: &Path) -> Result<Self, WeightsError> {
        let mut head = [0u8; 16];
        let n = {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(Unreadable::Open)?;
            f.read(&mut head).map_err(Unreadable::Read)?
        };
        let head = &head[..n];
        let result = std::panic::catch_unwind(|| {
            if head.starts_with(b"PK\x03\x04") || head.first() == Some(&0x80) {
                open_pytorch(path)
            } else if looks_like_safetensors(head) {
                open_safetensors(path)
            } else {
                Err(Unreadable::UnknownFormat.into())
            }
        });
        result.unwrap_or_else(|_| Err(Unreadable::Malformed.into()))
    }

    /// Every tensor name in the file.
    pub fn names(&self) -> BTreeSet<String> {
        self.headers.keys().cloned().collect()
    }

    /// Checks the headers against `expected` (see [`check_headers`]), then reads
    /// the expected tensors as `f32`, within the budget, each checked finite.
    /// Nothing is read unless every header fits; nothing else is ever read.
    pub fn take(
        mut self,
        expected: &[Expected],
    ) -> Result<BTreeMap<String, Vec<f32>>, WeightsError> {
        check_headers(&self.headers, expected)?;
        let budget = budget(expected);
        let needed = expected
            .iter()
            .map(|e| self.headers[&e.name].bytes)
            .fold(0u64, u64::saturating_add);
        if needed > budget {
            return Err(WeightsError::OverBudget { needed, budget });
        }
        let mut out = BTreeMap::new();
        for e in expected {
            let header = self.headers.remove(&e.name).expect("checked above");
            let read_error = |reason: ReadError| WeightsError::Read {
                name: e.name.clone(),
                reason,
            };
            let bytes = std::panic::catch_unwind(AssertUnwindSafe(|| self.data.read(&e.name)))
                .unwrap_or(Err(ReadError::Malformed))
                .map_err(read_error)?;
            // What is read is what the header said: the budget holds.
            if bytes.len() as u64 != header.bytes {
                return Err(read_error(ReadError::Length {
                    read: bytes.len() as u64,
                    header: header.bytes,
                }));
            }
            let kind = header.float.expect("checked to be a float tensor");
            let values = floats(kind, &bytes, self.data.order());
            drop(bytes);
            if let Some(found) = finite::count(values.iter().copied()) {
                return Err(WeightsError::NonFinite {
                    name: e.name.clone(),
                    found,
                });
            }
            out.insert(e.name.clone(), values);
        }
        Ok(out)
    }

    /// A file of `f32` tensors held in memory, whose reads are counted (tests).
    #[cfg(test)]
    fn in_memory(
        tensors: &[(&str, Vec<usize>, Vec<f32>)],
        reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> Self {
        let mut headers = BTreeMap::new();
        let mut bytes = BTreeMap::new();
        for (name, shape, values) in tensors {
            let mut header = Header::f32(shape.clone());
            header.bytes = 4 * values.len() as u64;
            headers.insert(name.to_string(), header);
            let b = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            bytes.insert(name.to_string(), b);
        }
        Self {
            headers,
            data: Data::Memory { bytes, reads },
        }
    }
}

/// The most bytes an import may read for `expected`: every tensor at the widest
/// float type a file may hold.
pub fn budget(expected: &[Expected]) -> u64 {
    expected
        .iter()
        .map(|e| {
            e.shape
                .iter()
                .fold(WIDEST_FLOAT, |acc, d| acc.saturating_mul(*d as u64))
        })
        .fold(0u64, u64::saturating_add)
}

impl Data {
    /// One tensor's bytes, contiguous and in [`order`](Self::order).
    fn read(&mut self, name: &str) -> Result<Vec<u8>, ReadError> {
        match self {
            Data::Torch(tensors) => {
                let tensor = tensors.remove(name).ok_or(ReadError::Absent)?;
                Ok(tensor.read()?)
            }
            Data::Safetensors(store) => {
                let all = store.get_all_tensors()?;
                let tensor = all.get(name).ok_or(ReadError::Absent)?;
                Ok(tensor.to_bytes()?.to_vec())
            }
            #[cfg(test)]
            Data::Memory { bytes, reads } => {
                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                bytes.remove(name).ok_or(ReadError::Absent)
            }
        }
    }

    fn order(&self) -> ByteOrder {
        match self {
            Data::Torch(_) => ByteOrder::Native,
            Data::Safetensors(_) => ByteOrder::Little,
            #[cfg(test)]
            Data::Memory { .. } => ByteOrder::Little,
        }
    }
}

/// Safetensors starts with a little-endian u64 header length, then `{`.
fn looks_like_safetensors(head: &[u8]) -> bool {
    head.len() >= 9 && head[8] == b'{' && u64::from_le_bytes(head[..8].try_into().unwrap()) > 1
}

fn open_pytorch(path: &Path) -> Result<WeightFile, WeightsError> {
    let reader = PytorchReader::new(path).map_err(Unreadable::Pytorch)?;
    let tensors = reader.into_tensors();
    let headers = tensors
        .iter()
        .map(|(name, tensor)| {
            let float = match tensor.dtype() {
                TorchDType::F32 => Some(FloatKind::F32),
                TorchDType::F64 => Some(FloatKind::F64),
                TorchDType::F16 => Some(FloatKind::F16),
                TorchDType::BF16 => Some(FloatKind::BF16),
                _ => None,
            };
            let header = Header {
                shape: tensor.shape().to_vec(),
                dtype: format!("{:?}", tensor.dtype()),
                float,
                // Element count x element size, whatever the strides: what a read returns.
                bytes: tensor.byte_len() as u64,
            };
            (name.clone(), header)
        })
        .collect();
    Ok(WeightFile {
        headers,
        data: Data::Torch(tensors),
    })
}

fn open_safetensors(path: &Path) -> Result<WeightFile, WeightsError> {
    let bytes = std::fs::read(path).map_err(Unreadable::Read)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let all = store.get_all_tensors().map_err(Unreadable::Safetensors)?;
    let mut headers = BTreeMap::new();
    for (name, tensor) in all {
        let float = match tensor.dtype {
            DType::F32 | DType::Flex32 => Some(FloatKind::F32),
            DType::F64 => Some(FloatKind::F64),
            DType::F16 => Some(FloatKind::F16),
            DType::BF16 => Some(FloatKind::BF16),
            DType::QFloat(_) => {
                return Err(Unreadable::Quantized(name.clone()).into());
            }
            _ => None,
        };
        let header = Header {
            shape: tensor.shape.to_vec(),
            dtype: format!("{:?}", tensor.dtype),
            float,
            bytes: tensor.byte_len() as u64,
        };
        headers.insert(name.clone(), header);
    }
    Ok(WeightFile {
        headers,
        data: Data::Safetensors(Box::new(store)),
    })
}

#[derive(Clone, Copy)]
enum ByteOrder {
    Native,
    Little,
}

/// The float element types kiln converts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatKind {
    F32,
    F64,
    F16,
    BF16,
}

/// Float bytes as `f32`.
fn floats(kind: FloatKind, bytes: &[u8], order: ByteOrder) -> Vec<f32> {
    fn conv<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks of N")))
            .collect()
    }
    let little = matches!(order, ByteOrder::Little) || cfg!(target_endian = "little");
    match kind {
        FloatKind::F32 if little => conv(bytes, f32::from_le_bytes),
        FloatKind::F32 => conv(bytes, f32::from_be_bytes),
        FloatKind::F64 if little => conv(bytes, |b| f64::from_le_bytes(b) as f32),
        FloatKind::F64 => conv(bytes, |b| f64::from_be_bytes(b) as f32),
        FloatKind::F16 if little => conv(bytes, |b| half::f16::from_le_bytes(b).to_f32()),
        FloatKind::F16 => conv(bytes, |b| half::f16::from_be_bytes(b).to_f32()),
        FloatKind::BF16 if little => conv(bytes, |b| half::bf16::from_le_bytes(b).to_f32()),
        FloatKind::BF16 => conv(bytes, |b| half::bf16::from_be_bytes(b).to_f32()),
    }
}

#[cfg(test)]
mod tests;
