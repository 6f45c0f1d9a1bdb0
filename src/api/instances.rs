//! [`Instances`]: the `instances` field of `/predict` and `/explain`, parsed straight
//! into one row-major buffer (no `Vec` per row or per value).
//!
//! Each instance is a flat array of numbers, or arrays nested in the instance's
//! shape (at most [`MAX_DIMS`] dimensions); all instances must have the same shape.
//! The first element of an array decides what the rest of it holds: after a number,
//! the rest are read as plain numbers (serde's typed `f32` path, as for
//! `Vec<Vec<f32>>`); after an array, every later array must have that array's
//! shape, checked once per array, never per value. Shapes are fixed-size values
//! on the stack: nothing is allocated or compared per value. (The parser this
//! replaced compared an empty `Vec` shape per value; glibc's `memcmp` on the empty
//! `Vec`'s dangling pointer takes a masked load from page zero, which costs
//! thousands of cycles on AMD Zen 4, and took two thirds of `/predict`.)

use std::fmt;

use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::serving::infer::Rows;

/// The most dimensions one instance may have.
pub const MAX_DIMS: usize = 4;

/// `instances`, row-major.
#[derive(Debug, Default)]
pub struct Instances {
    pub values: Vec<f32>,
    pub rows: usize,
    /// Values per instance.
    pub width: usize,
    /// The instances' shape as sent (`[width]` when flat).
    pub shape: Vec<usize>,
}

impl From<Instances> for Rows {
    /// The parsed instances, for the inference service to check against the
    /// version that computes them.
    fn from(i: Instances) -> Self {
        Rows {
            values: i.values,
            n: i.rows,
            width: i.width,
            shape: i.shape,
        }
    }
}

/// The shape of one array: its length, then its elements' shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    dims: [usize; MAX_DIMS],
    len: usize,
}

impl Shape {
    /// `n` numbers.
    fn flat(n: usize) -> Self {
        let mut dims = [0; MAX_DIMS];
        dims[0] = n;
        Self { dims, len: 1 }
    }

    /// `n` arrays of shape `inner`; `None` past [`MAX_DIMS`].
    fn of(n: usize, inner: Shape) -> Option<Self> {
        if inner.len >= MAX_DIMS {
            return None;
        }
        let mut dims = [0; MAX_DIMS];
        dims[0] = n;
        dims[1..=inner.len].copy_from_slice(inner.as_slice());
        Some(Self {
            dims,
            len: inner.len + 1,
        })
    }

    /// The elements' shape (`None` for an array of numbers).
    fn inner(self) -> Option<Self> {
        (self.len > 1).then(|| {
            let mut dims = [0; MAX_DIMS];
            dims[..self.len - 1].copy_from_slice(&self.dims[1..self.len]);
            Self {
                dims,
                len: self.len - 1,
            }
        })
    }

    fn as_slice(&self) -> &[usize] {
        &self.dims[..self.len]
    }
}

fn too_deep<E: Error>() -> E {
    E::custom(format!(
        "an instance is nested more than {MAX_DIMS} levels deep"
    ))
}

/// One number, through serde's typed `f32` path.
struct Number<'a> {
    out: &'a mut Vec<f32>,
}

impl<'de> DeserializeSeed<'de> for Number<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_f32(self)
    }
}

impl<'de> Visitor<'de> for Number<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, like element 0 of its array (a ragged instance)")
    }
    fn visit_f32<E: Error>(self, v: f32) -> Result<(), E> {
        self.out.push(v);
        Ok(())
    }
    fn visit_f64<E: Error>(self, v: f64) -> Result<(), E> {
        self.out.push(v as f32);
        Ok(())
    }
    fn visit_i64<E: Error>(self, v: i64) -> Result<(), E> {
        self.visit_f32(v as f32)
    }
    fn visit_u64<E: Error>(self, v: u64) -> Result<(), E> {
        self.visit_f32(v as f32)
    }
}

/// The first element of an array: a number, or an array of any shape.
struct First<'a> {
    out: &'a mut Vec<f32>,
    depth: usize,
}

/// What the first element was.
enum Element {
    Number,
    Array(Shape),
}

impl<'de> DeserializeSeed<'de> for First<'_> {
    type Value = Element;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Element, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for First<'_> {
    type Value = Element;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, or an array of numbers")
    }
    fn visit_f64<E: Error>(self, v: f64) -> Result<Element, E> {
        self.out.push(v as f32);
        Ok(Element::Number)
    }
    fn visit_i64<E: Error>(self, v: i64) -> Result<Element, E> {
        self.out.push(v as f32);
        Ok(Element::Number)
    }
    fn visit_u64<E: Error>(self, v: u64) -> Result<Element, E> {
        self.out.push(v as f32);
        Ok(Element::Number)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
        Array {
            out: self.out,
            depth: self.depth,
        }
        .visit_seq(seq)
        .map(Element::Array)
    }
}

/// An array whose shape is not known yet (an instance, or the first array of a
/// nested level); yields its shape.
struct Array<'a> {
    out: &'a mut Vec<f32>,
    depth: usize,
}

impl<'de> Visitor<'de> for Array<'_> {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers (one instance)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        if self.depth > MAX_DIMS {
            return Err(too_deep());
        }
        let first = seq.next_element_seed(First {
            out: &mut *self.out,
            depth: self.depth + 1,
        })?;
        let mut n = 1;
        match first {
            None => Ok(Shape::flat(0)),
            Some(Element::Number) => {
                while seq
                    .next_element_seed(Number {
                        out: &mut *self.out,
                    })?
                    .is_some()
                {
                    n += 1;
                }
                Ok(Shape::flat(n))
            }
            Some(Element::Array(inner)) => {
                while seq
                    .next_element_seed(Exact {
                        out: &mut *self.out,
                        shape: inner,
                        index: n,
                    })?
                    .is_some()
                {
                    n += 1;
                }
                Shape::of(n, inner).ok_or_else(too_deep)
            }
        }
    }
}

/// A later array of a nested level: must have `shape`, like the level's first.
struct Exact<'a> {
    out: &'a mut Vec<f32>,
    shape: Shape,
    /// Its place in the enclosing array (for the error).
    index: usize,
}

impl<'de> DeserializeSeed<'de> for Exact<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl Exact<'_> {
    fn ragged<E: Error>(&self, what: &str) -> E {
        E::custom(format!(
            "ragged instance: element {} {what}, element 0 has shape {:?}",
            self.index,
            self.shape.as_slice()
        ))
    }
}

impl<'de> Visitor<'de> for Exact<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "an array of shape {:?}, like element 0 (element {} is ragged)",
            self.shape.as_slice(),
            self.index
        )
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let want = self.shape.dims[0];
        let mut n = 0;
        match self.shape.inner() {
            None => {
                while n < want
                    && seq
                        .next_element_seed(Number {
                            out: &mut *self.out,
                        })?
                        .is_some()
                {
                    n += 1;
                }
            }
            Some(inner) => {
                while n < want
                    && seq
                        .next_element_seed(Exact {
                            out: &mut *self.out,
                            shape: inner,
                            index: n,
                        })?
                        .is_some()
                {
                    n += 1;
                }
            }
        }
        if n < want {
            return Err(self.ragged(&format!("has {n} elements")));
        }
        // Anything past the expected length makes it ragged.
        if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(self.ragged(&format!("has more than {want} elements")));
        }
        Ok(())
    }
}

/// One instance: an array (a bare number is refused by name).
struct Instance<'a> {
    out: &'a mut Vec<f32>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for Instance<'_> {
    type Value = Shape;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Instance<'_> {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers (one instance)")
    }
    fn visit_f64<E: Error>(self, _: f64) -> Result<Shape, E> {
        Err(E::custom(format!(
            "instance {} is a number; each instance is an array",
            self.index
        )))
    }
    fn visit_i64<E: Error>(self, v: i64) -> Result<Shape, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: Error>(self, v: u64) -> Result<Shape, E> {
        self.visit_f64(v as f64)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shape, A::Error> {
        Array {
            out: self.out,
            depth: 1,
        }
        .visit_seq(seq)
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rows;
        impl<'de> Visitor<'de> for Rows {
            type Value = Instances;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of instances, each an array of numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Instances, A::Error> {
                let mut out = Instances::default();
                let mut first: Option<Shape> = None;
                while let Some(shape) = seq.next_element_seed(Instance {
                    out: &mut out.values,
                    index: out.rows,
                })? {
                    match first {
                        None => first = Some(shape),
                        Some(s) if s != shape => {
                            return Err(A::Error::custom(format!(
                                "instance {} has shape {:?}, instance 0 has {:?}",
                                out.rows,
                                shape.as_slice(),
                                s.as_slice()
                            )));
                        }
                        Some(_) => {}
                    }
                    out.rows += 1;
                }
                if let Some(s) = first {
                    out.width = s.as_slice().iter().product();
                    out.shape = s.as_slice().to_vec();
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Rows)
    }
}

#[cfg(test)]
mod tests;
