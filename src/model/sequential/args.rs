//! Argument shapes PyTorch constructors accept, and the checks every layer shares.
//!
//! PyTorch takes `kernel_size=3` and `kernel_size=(3, 3)` alike, `padding="same"`,
//! and negative dimensions counted from the end; these types read all of them.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::layer_error::LayerError;

/// Largest size kiln accepts for any one dimension, channel count or width.
pub const MAX_DIM: usize = 65_536;

/// One integer, or one per spatial dimension (`3` or `[3, 3]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Dims {
    One(usize),
    Many(Vec<usize>),
}

impl<'de> Deserialize<'de> for Dims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dims;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative integer or a list of them")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dims, E> {
                usize::try_from(v)
                    .map(Dims::One)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dims, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is negative; sizes are >= 0")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dims, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<usize>()? {
                    if out.len() == 8 {
                        return Err(de::Error::custom("more than 8 sizes"));
                    }
                    out.push(v);
                }
                Ok(Dims::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// As the config writes it: `3` or `[3, 3]`.
impl std::fmt::Display for Dims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dims::One(v) => write!(f, "{v}"),
            Dims::Many(v) => write!(f, "{v:?}"),
        }
    }
}

impl Dims {
    /// The value for `N` spatial dimensions (`3` -> `[3, 3]`); `arg` names the
    /// argument in the error.
    pub fn expand<const N: usize>(&self, arg: &'static str) -> Result<[usize; N], LayerError> {
        match self {
            Dims::One(v) => Ok([*v; N]),
            Dims::Many(v) if v.len() == N => Ok(std::array::from_fn(|i| v[i])),
            Dims::Many(v) => Err(LayerError::Arity {
                arg,
                got: v.len(),
                takes: N,
            }),
        }
    }
}

/// `padding`: a size (`1`, `[1, 2]`) or PyTorch's `"same"` / `"valid"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Padding {
    Size(Dims),
    Mode(PaddingMode),
}

/// Named padding modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    Same,
    Valid,
}

impl Default for Padding {
    fn default() -> Self {
        Padding::Size(Dims::One(0))
    }
}

/// A dimension index as PyTorch writes it (`-1` = last), including the batch
/// dimension 0, resolved against a tensor of rank `rank` (batch included).
pub fn resolve_dim(dim: i64, rank: usize, arg: &'static str) -> Result<usize, LayerError> {
    let r = rank as i64;
    let d = if dim < 0 { dim + r } else { dim };
    if !(0..r).contains(&d) {
        return Err(LayerError::DimOutOfRange { arg, dim, rank });
    }
    Ok(d as usize)
}

/// Checks `1 <= v <= MAX_DIM`.
pub fn positive(arg: &'static str, v: usize) -> Result<(), LayerError> {
    if v == 0 || v > MAX_DIM {
        return Err(LayerError::Size { arg, got: v });
    }
    Ok(())
}

/// Checks a probability in `[0, 1)`.
pub fn probability(arg: &'static str, p: f64) -> Result<(), LayerError> {
    if !(p.is_finite() && (0.0..1.0).contains(&p)) {
        return Err(LayerError::Probability { arg, got: p });
    }
    Ok(())
}

/// Checks a small positive constant such as `eps`: below 1e-12 it vanishes next
/// to an f32 variance and a constant input would divide by zero.
pub fn epsilon(arg: &'static str, v: f64) -> Result<(), LayerError> {
    if !(v.is_finite() && (1e-12..=1.0).contains(&v)) {
        return Err(LayerError::Epsilon { arg, got: v });
    }
    Ok(())
}

/// Output length of a sliding window over `len` (PyTorch's formula), or an error
/// when the window does not fit.
pub fn window_out(
    len: usize,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize, LayerError> {
    let span = dilation * (kernel - 1) + 1;
    let padded = len + pad.0 + pad.1;
    if padded < span {
        return Err(LayerError::WindowTooLarge {
            span,
            kernel,
            dilation,
            len,
            padding: pad.0 + pad.1,
        });
    }
    let steps = padded - span;
    let mut out = if ceil_mode {
        steps.div_ceil(stride) + 1
    } else {
        steps / stride + 1
    };
    // PyTorch: with ceil_mode the last window must start inside the input or the
    // left padding.
    if ceil_mode && (out - 1) * stride >= len + pad.0 {
        out -= 1;
    }
    Ok(out)
}

/// `true` in serde defaults.
pub fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_read_ints_and_lists() {
        let d: Dims = serde_json::from_str("3").unwrap();
        assert_eq!(d.expand::<2>("k").unwrap(), [3, 3]);
        let d: Dims = serde_json::from_str("[2, 5]").unwrap();
        assert_eq!(d.expand::<2>("k").unwrap(), [2, 5]);
        assert_eq!(
            d.expand::<1>("k").unwrap_err(),
            LayerError::Arity {
                arg: "k",
                got: 2,
                takes: 1
            }
        );
        assert_eq!(d.to_string(), "[2, 5]");
        assert!(serde_json::from_str::<Dims>("-1").is_err());
        let p: Padding = serde_json::from_str("\"same\"").unwrap();
        assert_eq!(p, Padding::Mode(PaddingMode::Same));
        assert!(serde_json::from_str::<Padding>("\"full\"").is_err());
    }

    #[test]
    fn window_lengths_follow_pytorch() {
        assert_eq!(window_out(8, 3, 1, (1, 1), 1, false).unwrap(), 8);
        assert_eq!(window_out(8, 2, 2, (0, 0), 1, false).unwrap(), 4);
        assert_eq!(window_out(7, 2, 2, (0, 0), 1, false).unwrap(), 3);
        assert_eq!(window_out(7, 2, 2, (0, 0), 1, true).unwrap(), 4);
        assert_eq!(window_out(5, 3, 1, (0, 0), 2, false).unwrap(), 1);
        assert!(matches!(
            window_out(2, 3, 1, (0, 0), 1, false),
            Err(LayerError::WindowTooLarge {
                span: 3,
                len: 2,
                ..
            })
        ));
    }

    #[test]
    fn negative_dims_count_from_the_end() {
        assert_eq!(resolve_dim(-1, 3, "dim").unwrap(), 2);
        assert_eq!(resolve_dim(1, 3, "dim").unwrap(), 1);
        assert_eq!(
            resolve_dim(3, 3, "dim").unwrap_err().to_string(),
            "dim = 3 is out of range for a 3-dimensional tensor (batch included)"
        );
        assert!(resolve_dim(-4, 3, "dim").is_err());
    }
}
