//! Training: data preparation ([`data`]), the recipe ([`spec`]) and its input
//! ([`input`]), the resource budget ([`budget`]), the loop ([`fit`]), one job from
//! input to version ([`run`]), its candidates on recency windows ([`windows`]), and background jobs in worker processes ([`jobs`]).
//! Also the default model an empty store starts with.

mod blocks;
pub mod budget;
mod columns;
pub mod data;
pub mod defaults;
pub mod error;
pub mod evaluate;
pub mod fit;
mod fused;
pub mod input;
pub mod jobs;
pub mod kept;
mod optimizer;
mod parts;
pub mod promote;
pub mod run;
pub mod schedule;
pub mod search;
pub mod spec;
mod step;
pub mod windows;

use burn::prelude::Device;

use crate::model::{Manifest, Net};
use data::{Dataset, RawTable};
use spec::{MlpShape, ModelChoice, OptimizerSpec, TrainSpec};

/// The example data bundled into the binary for the default model.
const IRIS_CSV: &str = include_str!("../../examples/data/iris.csv");
const IRIS_LABELS: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// Trains the default model: an iris classifier (4 features, 3 classes) with the
/// species names as labels, in well under a second on the CPU. Deterministic.
pub fn default_model() -> (Manifest, Net) {
    let raw = RawTable::from_csv(IRIS_CSV, "target").expect("the bundled iris data parses");
    let mut data = Dataset::prepare(raw, None).expect("the bundled iris data is clean");
    data.labels = IRIS_LABELS.iter().map(|s| s.to_string()).collect();
    let spec = TrainSpec {
        model: ModelChoice::Mlp(MlpShape {
            hidden: vec![16],
            ..MlpShape::default()
        }),
        optimizer: OptimizerSpec::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
        epochs: Some(60),
        batch_size: Some(16),
        seed: 7,
        ..TrainSpec::default()
    };
    let net_config = fit::resolve_net(&spec, &data, None).expect("the default recipe fits iris");
    let outcome = fit::fit(&data, &spec, net_config, &Device::flex(), &mut fit::Quiet)
        .expect("the default model trains");
    let mut manifest = outcome.manifest;
    manifest.source = "default: iris classifier trained at first start".into();
    manifest.placeholder = true;
    manifest
        .metrics
        .insert("accuracy".into(), outcome.best.val_metric.into());
    (manifest, outcome.net)
}
