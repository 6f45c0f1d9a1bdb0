//! Training. For now: the small full-batch classifier fit that gives an empty store
//! its working default model, so a fresh clone answers the README's request.

pub mod data;

use burn::nn::Initializer;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use crate::model::net::{ActivationKind, Architecture, MlpConfig};
use crate::model::{Manifest, Net, NetConfig, Task};
use data::Table;

/// The example data bundled into the binary for the default model.
const IRIS_CSV: &str = include_str!("../../examples/data/iris.csv");
const IRIS_LABELS: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// Trains the default model: an iris classifier (4 features, 3 classes), in well
/// under a second on the CPU. Deterministic (fixed seed).
pub fn default_model() -> (Manifest, Net) {
    let table = Table::from_csv(IRIS_CSV, "target").expect("the bundled iris data parses");
    let labels = IRIS_LABELS.iter().map(|s| s.to_string()).collect();
    fit_classifier(
        &table,
        labels,
        &[16],
        200,
        0.03,
        7,
        "default: iris classifier trained at first start",
    )
}

/// Fits an MLP classifier on all of `table` with full-batch Adam; targets are class
/// indices `0..labels.len()`.
pub fn fit_classifier(
    table: &Table,
    labels: Vec<String>,
    hidden: &[usize],
    epochs: usize,
    lr: f64,
    seed: u64,
    source: &str,
) -> (Manifest, Net) {
    let device = Device::flex().autodiff();
    device.seed(seed);
    let net_config = NetConfig {
        task: Task::Classification,
        architecture: Architecture::Mlp(MlpConfig {
            input: table.width(),
            hidden: hidden.to_vec(),
            output: labels.len(),
            activation: ActivationKind::Relu,
        }),
    };
    let standardize = table.fit_standardize();
    let mut x = table.x.clone();
    standardize.apply(&mut x);
    let n = table.len();
    let x = Tensor::<2>::from_data(TensorData::new(x, [n, table.width()]), &device);
    let targets: Vec<i64> = table.y.iter().map(|v| *v as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);

    let mut net = net_config.init(
        &Initializer::KaimingUniform {
            gain: 1.0,
            fan_out_only: false,
        },
        &device,
    );
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = AdamConfig::new().init();
    for _ in 0..epochs {
        let loss = loss_fn.forward(net.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(lr, net, grads);
    }
    let net = net.valid();

    let mut manifest = Manifest::new(net_config, source);
    manifest.standardize = Some(standardize);
    manifest.labels = Some(labels);
    (manifest, net)
}
