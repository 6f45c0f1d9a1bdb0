//! Hand-written `torch.save` files in PyTorch's legacy format (a magic-number
//! pickle, the protocol version, system info, the state dict's pickle, the storage
//! keys, then each storage's element count and raw bytes), so a test can state
//! exactly what a file holds: views with any shape, strides and offset over shared
//! storages, NaN weights. What `torch.save(..., _use_new_zipfile_serialization=False)`
//! writes for a dict of float tensors.
//!
//! Also [`safetensors`]: a safetensors file of `f32` tensors.

use std::path::Path;

/// A tensor of the state dict: a view of `storage`.
pub struct View {
    pub name: String,
    pub storage: &'static str,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl View {
    /// A contiguous view of a whole storage of `shape`.
    pub fn whole(name: &str, storage: &'static str, shape: &[usize]) -> Self {
        let mut stride = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        Self {
            name: name.into(),
            storage,
            offset: 0,
            shape: shape.to_vec(),
            stride,
        }
    }
}

/// The legacy format's magic number, as protocol 2 writes it (a `LONG1`).
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// A pickle (protocol 2) under construction.
struct Pickle(Vec<u8>);

impl Pickle {
    fn new() -> Self {
        Self(vec![0x80, 0x02])
    }
    fn op(&mut self, op: u8) -> &mut Self {
        self.0.push(op);
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(&mut self, v: usize) -> &mut Self {
        self.0.push(b'J');
        self.0
            .extend_from_slice(&i32::try_from(v).expect("fits an i32").to_le_bytes());
        self
    }
    fn tuple(&mut self, items: &[usize]) -> &mut Self {
        self.op(b'(');
        for v in items {
            self.int(*v);
        }
        self.op(b't')
    }
    fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").op(b')').op(b'R')
    }
    fn stop(&mut self) -> Vec<u8> {
        self.0.push(b'.');
        std::mem::take(&mut self.0)
    }
}

/// Writes a legacy `torch.save` file of `f32` storages (key, values) and the
/// state dict `views` over them.
pub fn write(path: &Path, storages: &[(&'static str, Vec<f32>)], views: &[View]) {
    let mut out = Vec::new();
    let mut magic = Pickle::new();
    magic.op(0x8a).op(10);
    magic.0.extend_from_slice(&MAGIC);
    out.extend(magic.stop());
    out.extend(Pickle::new().op(b'M').op(0xe9).op(0x03).stop()); // 1001
    out.extend(
        Pickle::new()
            .op(b'}')
            .op(b'(')
            .str("protocol_version")
            .int(1001)
            .str("little_endian")
            .op(0x88)
            .op(b'u')
            .stop(),
    );
    let numel = |key: &str| {
        storages
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.len())
            .expect("a view of a listed storage")
    };
    let mut dict = Pickle::new();
    dict.op(b'}').op(b'(');
    for v in views {
        dict.str(&v.name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b'(');
        // The storage, as a persistent id: ('storage', type, key, location, numel).
        dict.op(b'(')
            .str("storage")
            .global("torch", "FloatStorage")
            .str(v.storage)
            .str("cpu")
            .int(numel(v.storage))
            .op(b't')
            .op(b'Q');
        dict.int(v.offset).tuple(&v.shape).tuple(&v.stride);
        dict.op(0x89).ordered_dict().op(b't').op(b'R');
    }
    out.extend(dict.op(b'u').stop());
    let mut keys = Pickle::new();
    keys.op(b']').op(b'(');
    for (key, _) in storages {
        keys.str(key);
    }
    out.extend(keys.op(b'e').stop());
    for (_, values) in storages {
        out.extend_from_slice(&(values.len() as i64).to_le_bytes());
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, out).unwrap();
}

/// Writes a safetensors file of `f32` tensors (name, shape, values).
pub fn safetensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&header).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}
