//! The column-shared gradients against autodiff's, and the fused step from blocks.
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::Initializer;

use super::*;
use crate::model::net::{Head, MlpConfig, Net, Task};
use crate::training::data::SplitMix64;
use crate::training::fused::FusedAdam;
use crate::training::spec::LossKind;
use crate::training::step::{Rows, whole};

/// Every parameter's values (or gradient), flattened in module order.
fn flat(net: &Net, grads: Option<&burn::optim::GradientsParams>) -> Vec<f32> {
    struct All<'a>(Option<&'a burn::optim::GradientsParams>, Vec<f32>);
    impl ModuleVisitor for All<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = match self.0 {
                Some(g) => g.get::<D>(p.id).expect("every parameter has a gradient"),
                None => p.val().inner(),
            };
            self.1.extend(t.into_data().try_into_vec::<f32>().unwrap());
        }
    }
    let mut all = All(grads, Vec::new());
    net.visit(&mut all);
    all.1
}

/// Every parameter on a buffer of its own, its id kept.
struct Copied;

impl burn::module::ModuleMapper for Copied {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let copy = Tensor::<D>::from_data(tensor.to_data(), &tensor.device()).require_grad();
        Param::from_mapped_value(id, copy, mapper)
    }
}

fn close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: sizes");
    let scale = a.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 2e-5 * scale, "{what} {i}: {x} vs {y}");
    }
}

/// For MLPs that split (one or two hidden layers or none, every activation),
/// each loss, with and without a penalty, on 2 and 3 threads and 1 to
/// `MAX_ROWS` rows: the loss and the joined gradients are autodiff's, and a
/// fused Adam step from the row blocks is the step from the whole gradients.
#[test]
fn shared_products_give_autodiffs_gradients_and_step() {
    use ActivationKind::*;
    let cases = [
        (
            64,
            vec![300],
            3,
            Relu,
            LossKind::CrossEntropy,
            0.0,
            0.0,
            2,
            37,
        ),
        (
            64,
            vec![256, 40],
            1,
            Gelu,
            LossKind::Mse,
            1e-4,
            1e-3,
            3,
            MAX_ROWS,
        ),
        (80, vec![512], 1, Tanh, LossKind::Bce, 0.0, 1e-2, 2, 1),
        (
            300,
            vec![],
            64,
            Sigmoid,
            LossKind::CrossEntropy,
            1e-3,
            0.0,
            2,
            20,
        ),
        // A small layer before a large one: the large one's input gradient is cut
        // by columns its previous layer did not cut.
        (24, vec![48, 700], 2, Relu, LossKind::Mse, 0.0, 0.0, 2, 16),
        (
            96,
            vec![400, 64],
            5,
            LeakyRelu,
            LossKind::CrossEntropy,
            0.0,
            0.0,
            3,
            64,
        ),
    ];
    for (input, hidden, output, activation, loss, l1, l2, threads, n) in cases {
        let what = format!("{input}-{hidden:?}-{output} {activation:?} {loss:?} x{threads}");
        let task = match loss {
            LossKind::Mse => Task::Regression,
            _ => Task::Classification,
        };
        let config = NetConfig {
            task,
            architecture: Architecture::Mlp(MlpConfig {
                input,
                hidden,
                output,
                activation,
            }),
            preprocess: None,
        };
        let device = Device::flex().autodiff();
        let init = Initializer::KaimingUniform {
            gain: 1.0,
            fan_out_only: false,
        };
        // Two equal networks with buffers of their own (one per step below).
        device.seed(7);
        let net = config.init(&init, &device);
        let nets = [net.clone().map(&mut Copied), net];
        let Net::Mlp(mlp) = &nets[0] else {
            unreachable!("an mlp config")
        };
        let pool = ComputePool::new(threads).unwrap();
        assert!(
            applies(&config, threads, n) && applies_to(mlp, threads, n),
            "{what}"
        );
        let mut rng = SplitMix64(threads as u64);
        let x: Vec<f32> = (0..n * input)
            .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let classes = if loss == LossKind::Bce { 2 } else { output };
        let y: Vec<f32> = (0..n)
            .map(|i| match task {
                Task::Regression => (i as f32 * 0.37).sin(),
                Task::Classification => (i % classes) as f32,
            })
            .collect();
        let rows = Rows {
            x: &x,
            y: &y,
            width: input,
        };
        let terms = LossTerms {
            loss,
            head: Head::Logits,
            l1,
            l2,
            device: &device,
        };
        let batch: Vec<usize> = (0..n).collect();
        let (want_loss, want) = whole(&nets[0], &rows, &batch, &terms);
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [n, input]), &device);
        let (got_loss, got) = grads(mlp, xt.clone(), y.clone(), &terms, &pool);
        assert!(
            (want_loss - got_loss).abs() < 1e-5,
            "{what}: loss {want_loss} vs {got_loss}"
        );
        close(
            &what,
            &flat(&nets[0], Some(&want)),
            &flat(&nets[0], Some(&got.joined())),
        );

        // One step from the blocks, in place, against one from the whole.
        let (_, blocks) = grads(mlp, xt, y, &terms, &pool);
        let mut a = FusedAdam::new(0.9, 0.999, 1e-8, 0.0);
        let mut b = FusedAdam::new(0.9, 0.999, 1e-8, 0.0);
        let mut nets = nets.into_iter();
        let stepped = a.step(1e-2, nets.next().unwrap(), blocks, Some(&pool));
        let reference = b.step(1e-2, nets.next().unwrap(), want.into(), Some(&pool));
        close(&what, &flat(&reference, None), &flat(&stepped, None));
    }
}
