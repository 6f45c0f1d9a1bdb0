//! Column-parallel dense layers: a large `Linear` of an inference pass split by
//! output columns among a team of threads.
//!
//! Every thread multiplies the whole input by its own slice of the weight's
//! columns (a view: nothing is copied), so each reads only its share of the
//! weights and the team's outputs sit side by side. For the small batches a
//! serving queue forms, this beats cutting the batch by rows, where each thread
//! streams every weight for half the rows (`benches/forward.rs` measures both).

use burn::nn::Linear;
use burn::prelude::*;

/// The threads a pass may share its dense layers with.
pub trait Team: Sync {
    /// How many threads share a layer.
    fn size(&self) -> usize;

    /// Runs `job(i)` for every `i` below [`size`](Self::size), all at once; the
    /// results in order of `i`.
    fn each(&self, job: &(dyn Fn(usize) -> Tensor<2> + Sync)) -> Vec<Tensor<2>>;
}

/// Weights (inputs x outputs) from which a layer is worth splitting: below, a
/// layer costs about what handing it to another thread does.
pub const MIN_SPLIT_WEIGHTS: usize = 1 << 14;

/// Columns per slice are a multiple of this (the widest SIMD row of floats).
const ALIGN: usize = 16;

/// Whether `linear` is split among a team of `size`.
pub fn splits(linear: &Linear, size: usize) -> bool {
    let [inputs, outputs] = linear.weight.dims();
    splits_shape(inputs, outputs, size)
}

/// Whether a dense layer of `inputs` x `outputs` weights is split among a team of
/// `size`.
pub fn splits_shape(inputs: usize, outputs: usize, size: usize) -> bool {
    size > 1 && inputs.saturating_mul(outputs) >= MIN_SPLIT_WEIGHTS && outputs >= 2 * ALIGN
}

/// `linear` applied to `x` (`[rows, inputs]`), split among `team` when it is
/// large enough; the same values as `linear.forward(x)`.
pub fn linear(linear: &Linear, x: Tensor<2>, team: Option<&dyn Team>) -> Tensor<2> {
    let team = match team {
        Some(t) if splits(linear, t.size()) => t,
        _ => return linear.forward(x),
    };
    let [inputs, outputs] = linear.weight.dims();
    let ranges = slices(outputs, team.size());
    let weight = linear.weight.val();
    let bias = linear.bias.as_ref().map(|b| b.val());
    let parts = team.each(&|i| {
        // A team wider than the layer's slices: the extra threads idle.
        let Some(r) = ranges.get(i).cloned() else {
            return x.clone();
        };
        let y = x
            .clone()
            .matmul(weight.clone().slice([0..inputs, r.clone()]));
        match &bias {
            Some(b) => y + b.clone().slice([r]).unsqueeze::<2>(),
            None => y,
        }
    });
    let parts: Vec<Tensor<2>> = parts.into_iter().take(ranges.len()).collect();
    Tensor::cat(parts, 1)
}

/// `outputs` columns cut into at most `size` contiguous ranges of aligned widths.
pub fn slices(outputs: usize, size: usize) -> Vec<std::ops::Range<usize>> {
    let per = outputs.div_ceil(size).div_ceil(ALIGN) * ALIGN;
    (0..size)
        .map(|i| (i * per).min(outputs)..((i + 1) * per).min(outputs))
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    struct Serial(usize);

    impl Team for Serial {
        fn size(&self) -> usize {
            self.0
        }
        fn each(&self, job: &(dyn Fn(usize) -> Tensor<2> + Sync)) -> Vec<Tensor<2>> {
            (0..self.0).map(job).collect()
        }
    }

    #[test]
    fn slices_cover_the_columns_once_in_aligned_widths() {
        assert_eq!(slices(500, 2), vec![0..256, 256..500]);
        assert_eq!(slices(100, 3), vec![0..48, 48..96, 96..100]);
        assert_eq!(slices(20, 4), vec![0..16, 16..20]);
    }

    #[test]
    fn a_split_layer_computes_what_the_whole_one_does() {
        let device = Device::flex();
        for (inputs, outputs, bias, size) in [
            (1000, 500, true, 2),
            (300, 250, false, 3),
            (256, 512, true, 4),
        ] {
            let l = LinearConfig::new(inputs, outputs)
                .with_bias(bias)
                .init(&device);
            assert!(splits(&l, size));
            for rows in [1, 7, 64] {
                let x = Tensor::<2>::random(
                    [rows, inputs],
                    burn::tensor::Distribution::Default,
                    &device,
                );
                let whole = l.forward(x.clone()).into_data();
                let split = linear(&l, x, Some(&Serial(size))).into_data();
                whole.assert_approx_eq::<f32>(&split, burn::tensor::Tolerance::absolute(1e-4));
            }
        }
    }

    #[test]
    fn small_layers_are_not_split() {
        let l = LinearConfig::new(100, 100).init(&Device::flex());
        assert!(!splits(&l, 2));
        let big = LinearConfig::new(1000, 500).init(&Device::flex());
        assert!(!splits(&big, 1));
    }
}
