//! Foreign weight files (PyTorch's `torch.save` zip or legacy pickle, and
//! safetensors) read into named `f32` tensors, and checked against the tensors a
//! network expects, in PyTorch's own names and shapes.
//!
//! The file is only ever read by Burn's readers (`pytorch_reader`, the safetensors
//! store); a reader that panics on a malformed file is caught here and reported as
//! a bad file.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use burn::store::pytorch_reader::{DType as TorchDType, PytorchReader};
use burn::store::{ModuleStore, SafetensorsStore};
use burn::tensor::DType;

/// A tensor shape in PyTorch's layout, e.g. `[out, in]` for a Linear weight.
pub type TorchShape = Vec<usize>;

/// One tensor of a weight file: float data converted to `f32`; integer tensors
/// (such as batch norm's `num_batches_tracked`) keep only their shape.
#[derive(Debug)]
pub struct FileTensor {
    pub shape: Vec<usize>,
    pub values: Option<Vec<f32>>,
    pub dtype: String,
}

/// Every tensor of a weight file, by name.
pub type FileTensors = BTreeMap<String, FileTensor>;

/// A tensor a network needs: its full PyTorch name, shape, and which layer wants it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: String,
    pub shape: TorchShape,
    pub layer: String,
}

/// Reads a weight file, telling PyTorch and safetensors files apart by content.
pub fn read_file(path: &Path) -> Result<FileTensors, String> {
    let mut head = [0u8; 16];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
        f.read(&mut head)
            .map_err(|e| format!("cannot read it: {e}"))?
    };
    let head = &head[..n];
    let result = std::panic::catch_unwind(|| {
        if head.starts_with(b"PK\x03\x04") || head.first() == Some(&0x80) {
            read_pytorch(path)
        } else if looks_like_safetensors(head) {
            read_safetensors(path)
        } else {
            Err("it is neither a PyTorch file (torch.save: a zip archive or a pickle) nor safetensors".into())
        }
    });
    result.unwrap_or_else(|_| Err("the file is malformed (the reader gave up on it)".into()))
}

/// Safetensors starts with a little-endian u64 header length, then `{`.
fn looks_like_safetensors(head: &[u8]) -> bool {
    head.len() >= 9 && head[8] == b'{' && u64::from_le_bytes(head[..8].try_into().unwrap()) > 1
}

fn read_pytorch(path: &Path) -> Result<FileTensors, String> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    let reader =
        PytorchReader::new(path).map_err(|e| format!("not a readable PyTorch file: {e}"))?;
    let mut out = FileTensors::new();
    for (name, tensor) in reader.into_tensors() {
        // torch.save stores tensors uncompressed: a tensor larger than the file is
        // a lie, refused before anything is allocated for it.
        if tensor.byte_len() as u64 > file_len {
            return Err(format!(
                "tensor {name} declares {} bytes, more than the file's {file_len}",
                tensor.byte_len()
            ));
        }
        let bytes = tensor.read().map_err(|e| format!("tensor {name}: {e}"))?;
        let shape = tensor.shape().to_vec();
        let kind = match tensor.dtype() {
            TorchDType::F32 => Some(FloatKind::F32),
            TorchDType::F64 => Some(FloatKind::F64),
            TorchDType::F16 => Some(FloatKind::F16),
            TorchDType::BF16 => Some(FloatKind::BF16),
            _ => None,
        };
        let values = floats(kind, &bytes, ByteOrder::Native);
        out.insert(
            name,
            FileTensor {
                shape,
                values,
                dtype: format!("{:?}", tensor.dtype()),
            },
        );
    }
    Ok(out)
}

fn read_safetensors(path: &Path) -> Result<FileTensors, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let all = store
        .get_all_tensors()
        .map_err(|e| format!("not a readable safetensors file: {e}"))?;
    let mut out = FileTensors::new();
    for (name, tensor) in all {
        let bytes = tensor
            .to_bytes()
            .map_err(|e| format!("tensor {name}: {e}"))?;
        let kind = match tensor.dtype {
            DType::F32 | DType::Flex32 => Some(FloatKind::F32),
            DType::F64 => Some(FloatKind::F64),
            DType::F16 => Some(FloatKind::F16),
            DType::BF16 => Some(FloatKind::BF16),
            DType::QFloat(_) => {
                return Err(format!(
                    "tensor {name}: quantized tensors are not supported"
                ));
            }
            _ => None,
        };
        let values = floats(kind, &bytes, ByteOrder::Little);
        out.insert(
            name.clone(),
            FileTensor {
                shape: tensor.shape.to_vec(),
                values,
                dtype: format!("{:?}", tensor.dtype),
            },
        );
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum ByteOrder {
    Native,
    Little,
}

/// The float element types kiln converts from.
#[derive(Clone, Copy)]
enum FloatKind {
    F32,
    F64,
    F16,
    BF16,
}

/// Float tensors as `f32`; `None` for integer and boolean tensors.
fn floats(kind: Option<FloatKind>, bytes: &[u8], order: ByteOrder) -> Option<Vec<f32>> {
    fn conv<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks of N")))
            .collect()
    }
    let little = matches!(order, ByteOrder::Little) || cfg!(target_endian = "little");
    let values = match kind? {
        FloatKind::F32 if little => conv(bytes, f32::from_le_bytes),
        FloatKind::F32 => conv(bytes, f32::from_be_bytes),
        FloatKind::F64 if little => conv(bytes, |b| f64::from_le_bytes(b) as f32),
        FloatKind::F64 => conv(bytes, |b| f64::from_be_bytes(b) as f32),
        FloatKind::F16 if little => conv(bytes, |b| half::f16::from_le_bytes(b).to_f32()),
        FloatKind::F16 => conv(bytes, |b| half::f16::from_be_bytes(b).to_f32()),
        FloatKind::BF16 if little => conv(bytes, |b| half::bf16::from_le_bytes(b).to_f32()),
        FloatKind::BF16 => conv(bytes, |b| half::bf16::from_be_bytes(b).to_f32()),
    };
    Some(values)
}

/// Checks the file against what the network expects and returns the data by name.
/// Every problem is listed (missing, wrong shape, not a float tensor, extra),
/// named as PyTorch names it; batch norm's `num_batches_tracked` is ignored.
pub fn match_tensors(
    mut file: FileTensors,
    expected: &[Expected],
) -> Result<BTreeMap<String, Vec<f32>>, String> {
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for e in expected {
        match file.remove(&e.name) {
            None => problems.push(format!(
                "missing tensor {} {:?} ({})",
                e.name, e.shape, e.layer
            )),
            Some(t) if t.shape != e.shape => problems.push(format!(
                "{} has shape {:?}; {} needs {:?}",
                e.name, t.shape, e.layer, e.shape
            )),
            Some(FileTensor {
                values: None,
                dtype,
                ..
            }) => problems.push(format!(
                "{} is a {dtype} tensor; {} needs floats",
                e.name, e.layer
            )),
            Some(FileTensor {
                values: Some(v), ..
            }) => {
                out.insert(e.name.clone(), v);
            }
        }
    }
    for (name, t) in &file {
        if name == "num_batches_tracked" || name.ends_with(".num_batches_tracked") {
            continue;
        }
        problems.push(format!(
            "{name} {:?} is not part of the model config (no layer has it)",
            t.shape
        ));
    }
    if problems.is_empty() {
        return Ok(out);
    }
    let total = problems.len();
    problems.truncate(12);
    let more = if total > 12 {
        format!(" (and {} more)", total - 12)
    } else {
        String::new()
    };
    Err(format!("{}{more}", problems.join("; ")))
}

/// One layer's view of the matched tensors: names relative to the layer's prefix.
pub struct Source<'a> {
    pub tensors: &'a mut BTreeMap<String, Vec<f32>>,
    pub prefix: String,
}

impl Source<'_> {
    /// The tensor `<prefix>.<suffix>` (checked for presence and shape beforehand).
    pub fn take(&mut self, suffix: &str) -> Result<Vec<f32>, String> {
        let name = self.full(suffix);
        self.tensors
            .remove(&name)
            .ok_or_else(|| format!("tensor {name} was not matched"))
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

    fn file(entries: &[(&str, Vec<usize>, bool)]) -> FileTensors {
        entries
            .iter()
            .map(|(n, s, float)| {
                let len = s.iter().product();
                (
                    n.to_string(),
                    FileTensor {
                        shape: s.clone(),
                        values: float.then(|| vec![0.0; len]),
                        dtype: if *float { "F32" } else { "I64" }.into(),
                    },
                )
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
        let f = file(&[
            ("0.weight", vec![3, 2], true),
            ("0.bias", vec![4], true),
            ("1.running_mean", vec![3], false),
            ("1.num_batches_tracked", vec![], false),
            ("9.weight", vec![1, 1], true),
        ]);
        let err = match_tensors(
            f,
            &[
                want("0.weight", vec![3, 2]),
                want("0.bias", vec![3]),
                want("1.running_mean", vec![3]),
                want("2.weight", vec![5, 3]),
            ],
        )
        .unwrap_err();
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
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            transpose(&[1., 2., 3., 4., 5., 6.], 2, 3),
            [1., 4., 2., 5., 3., 6.]
        );
    }

    #[test]
    fn unknown_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pth");
        std::fs::write(&path, b"hello, this is not a model").unwrap();
        assert!(read_file(&path).unwrap_err().contains("neither"));
        std::fs::write(&path, b"PK\x03\x04garbage").unwrap();
        assert!(read_file(&path).is_err());
    }
}
