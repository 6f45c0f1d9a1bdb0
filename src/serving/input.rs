//! Instances as a protocol parsed them ([`Rows`]), and the check against the
//! version that will compute them ([`check`]): width, nesting, input domain.

use crate::model::LoadedModel;

/// Instances as parsed, not yet checked against any version.
#[derive(Debug, Default)]
pub struct Rows {
    /// Row-major, `n` x `width`.
    pub values: Vec<f32>,
    pub n: usize,
    /// Values per instance.
    pub width: usize,
    /// The instances' nesting as sent: checked against the computing version's
    /// input shape when it has more than one dimension (empty: already shaped).
    pub shape: Vec<usize>,
}

/// Instances a version cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error(
        "instances have {got} values; model version {version} expects {expected} (input shape {shape:?})"
    )]
    Width {
        got: usize,
        version: String,
        expected: usize,
        shape: Vec<usize>,
    },
    #[error(
        "instances are nested as {got:?}; model version {version} takes {shape:?} (or flat arrays of {width})"
    )]
    Nesting {
        got: Vec<usize>,
        version: String,
        shape: Vec<usize>,
        width: usize,
    },
    /// A value outside the version's input domain (not finite, not an id).
    #[error(transparent)]
    Values(crate::model::net::BadInstance),
}

/// Checks instances (`values`, `width` per instance, nested as `shape`) against
/// the version `model`: width, nesting, input domain.
pub fn check(
    model: &LoadedModel,
    values: &[f32],
    width: usize,
    shape: &[usize],
) -> Result<(), InputError> {
    if width != model.input_width() {
        return Err(InputError::Width {
            got: width,
            version: model.version().to_owned(),
            expected: model.input_width(),
            shape: model.manifest().net.input_shape(),
        });
    }
    if shape.len() > 1 {
        let input_shape = model.manifest().net.input_shape();
        if shape != input_shape.as_slice() {
            return Err(InputError::Nesting {
                got: shape.to_vec(),
                version: model.version().to_owned(),
                shape: input_shape,
                width: model.input_width(),
            });
        }
    }
    model.check_instances(values).map_err(InputError::Values)
}

impl Rows {
    /// [`check`] of these instances against `model`.
    pub fn check(&self, model: &LoadedModel) -> Result<(), InputError> {
        check(model, &self.values, self.width, &self.shape)
    }
}
