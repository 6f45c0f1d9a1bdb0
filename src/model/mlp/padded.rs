//! An MLP's hidden layers widened with zero units to a multiple of [`LANES`], for
//! serving on the CPU: the same function, computed faster.
//!
//! The CPU matrix multiply (the `gemm` crate) lays a product out with the
//! weight's output side as its long dimension, and repacks the whole weight on
//! every call unless that side is a multiple of the SIMD width (16 floats with
//! AVX-512). Serving the seed MLP (1000-500-100-1) at c=8, that repacking
//! (`gemm_common::pack_operands::pack_lhs`) took 13.7% of the server's samples;
//! with its widths padded to 512 and 112 it is gone, and the same server answered
//! 22% more requests at c=8, 9% more at c=64 and 3% more at c=1 (oha, interleaved
//! rounds on one machine).
//!
//! A padded unit has zero incoming weights and bias, so its activation is the
//! constant `f(0)`; its outgoing weights are zero, so it adds nothing to the next
//! layer. Inputs and outputs keep their widths. Only inference uses this copy:
//! training would move the padded weights (a sigmoid's `f(0)` is not zero).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::Mlp;

/// Hidden widths are padded to a multiple of this.
pub const LANES: usize = 16;

impl Mlp {
    /// This network with every hidden width padded to a multiple of [`LANES`], or
    /// `None` when every one already is.
    pub fn padded(&self) -> Option<Mlp> {
        let last = self.layers.len().checked_sub(1)?;
        let widen = |w: usize| w.next_multiple_of(LANES);
        if self.layers[..last]
            .iter()
            .all(|l| l.weight.dims()[1] % LANES == 0)
        {
            return None;
        }
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let [inputs, outputs] = l.weight.dims();
                let padded_in = if i == 0 { inputs } else { widen(inputs) };
                let padded_out = if i == last { outputs } else { widen(outputs) };
                let device = l.weight.val().device();
                let mut linear = LinearConfig::new(padded_in, padded_out)
                    .with_bias(l.bias.is_some())
                    .init(&device);
                linear.weight = burn::module::Param::from_tensor(
                    Tensor::<2>::zeros([padded_in, padded_out], &device)
                        .slice_assign([0..inputs, 0..outputs], l.weight.val()),
                );
                linear.bias = l.bias.as_ref().map(|b| {
                    burn::module::Param::from_tensor(
                        Tensor::<1>::zeros([padded_out], &device).slice_assign(0..outputs, b.val()),
                    )
                });
                linear
            })
            .collect::<Vec<Linear>>();
        Some(Mlp {
            layers,
            activation: self.activation,
        })
    }
}

impl crate::model::Net {
    /// The network to serve on the CPU: an MLP with its hidden widths padded to
    /// [`LANES`], else itself. The same function.
    pub fn for_cpu_serving(self) -> Self {
        match &self {
            Self::Mlp(m) => m.padded().map_or(self, Self::Mlp),
            Self::Sequential(_) => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::mlp::{ActivationKind, MlpConfig};
    use burn::nn::Initializer;

    fn mlp(input: usize, hidden: Vec<usize>, activation: ActivationKind) -> Mlp {
        let cfg = MlpConfig {
            input,
            hidden,
            output: 3,
            activation,
        };
        let init = Initializer::KaimingUniform {
            gain: 1.0,
            fan_out_only: false,
        };
        Mlp::new(&cfg, &init, &Device::flex())
    }

    /// The padded copy computes what the network does, for every activation (a
    /// padded unit's `f(0)` need not be 0), with one hidden layer or several.
    #[test]
    fn padded_networks_answer_alike() {
        let device = Device::flex();
        for activation in [
            ActivationKind::Relu,
            ActivationKind::Sigmoid,
            ActivationKind::Tanh,
            ActivationKind::Gelu,
            ActivationKind::LeakyRelu,
        ] {
            for hidden in [vec![500, 100], vec![17], vec![3, 33, 5]] {
                let net = mlp(37, hidden.clone(), activation);
                let padded = net.padded().expect("a width to pad");
                let widths: Vec<[usize; 2]> =
                    padded.layers().iter().map(|l| l.weight.dims()).collect();
                assert_eq!(widths[0][0], 37);
                assert_eq!(widths.last().unwrap()[1], 3);
                assert!(widths[..widths.len() - 1].iter().all(|w| w[1] % LANES == 0));
                let x = Tensor::<2>::random([9, 37], burn::tensor::Distribution::Default, &device);
                let (a, b) = (net.forward(x.clone()), padded.forward(x));
                assert_eq!(a.dims(), b.dims());
                let a = a.into_data().try_into_vec::<f32>().unwrap();
                let b = b.into_data().try_into_vec::<f32>().unwrap();
                for (p, q) in a.iter().zip(&b) {
                    assert!(
                        (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                        "{activation:?} {hidden:?}: {p} vs {q}"
                    );
                }
            }
        }
    }

    /// Nothing to pad: aligned hidden widths, or no hidden layer at all.
    #[test]
    fn aligned_networks_are_left_alone() {
        assert!(
            mlp(5, vec![32, 16], ActivationKind::Relu)
                .padded()
                .is_none()
        );
        assert!(mlp(5, vec![], ActivationKind::Relu).padded().is_none());
    }
}
