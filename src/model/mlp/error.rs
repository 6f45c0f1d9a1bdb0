//! [`MlpError`]: why an `mlp` config is refused.

use super::MAX_WIDTH;
use crate::model::sequential::MAX_PARAMETERS;

/// Most hidden layers an MLP may have.
pub const MAX_HIDDEN: usize = 64;

/// An `mlp` config out of kiln's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlpError {
    /// A width of 0 or over [`MAX_WIDTH`], or more than [`MAX_HIDDEN`] hidden layers.
    #[error(
        "layer widths must be between 1 and {max}, with at most {hidden} hidden layers",
        max = MAX_WIDTH,
        hidden = MAX_HIDDEN
    )]
    Widths {
        /// Every width, input and output included.
        widths: Vec<usize>,
    },
    /// More weights and biases than a model may store.
    #[error("the MLP would have {params} parameters; the limit is {max}", max = MAX_PARAMETERS)]
    TooManyParameters { params: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::net::MlpConfig;

    #[test]
    fn an_mlp_over_the_limits_says_which() {
        let cfg = |hidden: Vec<usize>| MlpConfig {
            input: 4,
            hidden,
            output: 3,
            activation: Default::default(),
        };
        assert!(matches!(
            cfg(vec![0]).validate(),
            Err(MlpError::Widths { widths }) if widths == [4, 0, 3]
        ));
        let e = cfg(vec![65_536, 65_536]).validate().unwrap_err();
        assert!(
            matches!(e, MlpError::TooManyParameters { params } if params > MAX_PARAMETERS),
            "{e}"
        );
        assert!(e.to_string().ends_with("the limit is 268435456"), "{e}");
        assert!(cfg(vec![8]).validate().is_ok());
    }
}
