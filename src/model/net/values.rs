//! A network's input domain: which values a request may hold. Every input must be
//! finite; an embedding's inputs must be integer ids in range. [`BadValue`] is the
//! first value outside it, [`BadInstance`] the same value named by instance.

use super::NetConfig;

/// Why a value is outside the input domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueFault {
    #[error("is not a finite number")]
    NotFinite,
    /// Not an integer in `[0, ids)` where the first layer is an embedding.
    #[error("is not an id: the embedding takes integers in [0, {ids})")]
    NotAnId { ids: usize },
}

/// The first value outside the input domain, by its index in the row-major values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value {index} {fault}")]
pub struct BadValue {
    pub index: usize,
    pub fault: ValueFault,
}

/// A [`BadValue`] named by its instance and its place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("instance {instance}, value {value} {fault}")]
pub struct BadInstance {
    pub instance: usize,
    pub value: usize,
    pub fault: ValueFault,
}

impl BadValue {
    /// Where the value is in instances of `width` values each.
    pub fn in_instances(self, width: usize) -> BadInstance {
        let w = width.max(1);
        BadInstance {
            instance: self.index / w,
            value: self.index % w,
            fault: self.fault,
        }
    }
}

impl NetConfig {
    /// Checks one request's values against the input domain: every value finite;
    /// ids integers in range.
    pub fn check_values(&self, values: &[f32]) -> Result<(), BadValue> {
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(BadValue {
                index,
                fault: ValueFault::NotFinite,
            });
        }
        if let Some(ids) = self.ids()
            && let Some(index) = values
                .iter()
                .position(|v| v.fract() != 0.0 || *v < 0.0 || *v >= ids as f32)
        {
            return Err(BadValue {
                index,
                fault: ValueFault::NotAnId { ids },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_is_named_by_instance_and_place() {
        let bad = BadValue {
            index: 7,
            fault: ValueFault::NotAnId { ids: 5 },
        };
        assert_eq!(
            bad.in_instances(3).to_string(),
            "instance 2, value 1 is not an id: the embedding takes integers in [0, 5)"
        );
        let nan = BadValue {
            index: 0,
            fault: ValueFault::NotFinite,
        };
        assert_eq!(
            nan.in_instances(0).to_string(),
            "instance 0, value 0 is not a finite number"
        );
    }
}
