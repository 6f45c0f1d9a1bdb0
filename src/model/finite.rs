//! Finite weights. A network with a NaN or an infinity among its parameters
//! answers nothing useful (every output non-finite, which `/predict` reports as the
//! client's fault), so such weights are refused where they enter: at import, tensor
//! by tensor as the file is read ([`count`]), and at load, over the whole network
//! ([`first_in`]), so a stored version holding them never serves.

use burn::store::ModuleSnapshot;
use burn::tensor::DType;

use super::net::Net;

/// How many values of one tensor are not finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFinite {
    pub nan: usize,
    pub infinite: usize,
    pub total: usize,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.nan, self.infinite) {
            (n, 0) => write!(f, "{n} NaN of its {} values", self.total),
            (0, i) => write!(f, "{i} infinite of its {} values", self.total),
            (n, i) => write!(f, "{n} NaN and {i} infinite of its {} values", self.total),
        }
    }
}

/// The non-finite values among `values`, if any.
pub fn count(values: impl IntoIterator<Item = f32>) -> Option<NonFinite> {
    let mut found = NonFinite {
        nan: 0,
        infinite: 0,
        total: 0,
    };
    for v in values {
        found.total += 1;
        if v.is_nan() {
            found.nan += 1;
        } else if v.is_infinite() {
            found.infinite += 1;
        }
    }
    (found.nan + found.infinite > 0).then_some(found)
}

/// A parameter of a loaded network that holds non-finite values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tensor {tensor} holds {found}: weights must be finite numbers")]
pub struct NonFiniteTensor {
    /// The parameter's path in the network (as the stored weights name it).
    pub tensor: String,
    pub found: NonFinite,
}

/// The first float parameter of `net` (in module order) with a NaN or an infinity.
/// Each parameter is read back once, one at a time.
pub fn first_in(net: &Net) -> Option<NonFiniteTensor> {
    for tensor in net.collect(None, None, false) {
        // A parameter that cannot be read back fails its forward pass instead.
        let Ok(bytes) = tensor.to_bytes() else {
            continue;
        };
        let found = match tensor.dtype {
            DType::F32 | DType::Flex32 => count(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            DType::F64 => count(
                bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8 bytes")) as f32),
            ),
            DType::F16 => count(
                bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            DType::BF16 => count(
                bytes
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            _ => None,
        };
        if let Some(found) = found {
            return Some(NonFiniteTensor {
                tensor: tensor.name.clone(),
                found,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_name_what_is_wrong() {
        assert_eq!(count([1.0, 2.0]), None);
        let found = count([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0]).unwrap();
        assert_eq!((found.nan, found.infinite, found.total), (1, 2, 4));
        assert_eq!(found.to_string(), "1 NaN and 2 infinite of its 4 values");
        assert_eq!(
            count([f32::NAN; 3]).unwrap().to_string(),
            "3 NaN of its 3 values"
        );
    }
}
