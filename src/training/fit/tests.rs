//! Every recipe choice trains a layer stack without a panic: each optimizer, each
//! init, L1 and L2, and each loss with the head it pairs with.

use super::*;
use crate::training::data::RawTable;
use crate::training::spec::{InitSpec, ModelChoice};
use burn::optim::GradientsParams;

const IRIS: &str = include_str!("../../../examples/data/iris.csv");

fn spec(model: serde_json::Value, extra: serde_json::Value) -> TrainSpec {
    let mut body = serde_json::json!({"model": model, "epochs": 2, "batch_size": 16});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let spec: TrainSpec = serde_json::from_value(body).unwrap();
    spec.validate().unwrap();
    spec
}

fn train(data: &Dataset, spec: &TrainSpec) -> FitOutcome {
    let net = resolve_net(spec, data, None).unwrap();
    fit(data, spec, net, &Device::flex(), &mut Quiet).unwrap()
}

/// A small stack with every kind of state: conv weights, batch norm statistics,
/// dropout, a log_softmax head.
fn stack(classes: usize, head: &str) -> serde_json::Value {
    let mut layers = serde_json::json!([
        {"type": "conv1d", "in_channels": 1, "out_channels": 4, "kernel_size": 2},
        {"type": "batch_norm1d", "num_features": 4},
        {"type": "relu"},
        {"type": "dropout", "p": 0.2},
        {"type": "flatten"},
        {"type": "linear", "in_features": 12, "out_features": classes},
    ]);
    if !head.is_empty() {
        layers
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": head}));
    }
    serde_json::json!({"kind": "sequential", "input_shape": [1, 4], "layers": layers})
}

#[test]
fn every_optimizer_init_and_penalty_trains_a_stack() {
    let data = Dataset::prepare(RawTable::from_csv(IRIS, "target").unwrap(), None).unwrap();
    let optimizers = ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"];
    let inits = [
        serde_json::json!({"kind": "normal", "std": 0.1}),
        serde_json::json!({"kind": "uniform", "a": 0.2}),
        serde_json::json!("xavier"),
        serde_json::json!("kaiming"),
    ];
    for (i, optimizer) in optimizers.iter().enumerate() {
        let init = &inits[i % inits.len()];
        let s = spec(
            stack(3, "log_softmax"),
            serde_json::json!({"optimizer": optimizer, "init": init, "l1": 1e-4, "l2": 1e-3}),
        );
        assert!(matches!(s.model, ModelChoice::Sequential(_)));
        let out = train(&data, &s);
        assert!(out.best.val_loss.is_finite(), "{optimizer}: {:?}", out.best);
        // No standardisation is lost and the saved config is the stack's.
        assert!(out.manifest.standardize.is_some());
        assert_eq!(out.manifest.net.head(), crate::model::Head::LogSoftmax);
    }
    for init in &inits {
        let s = spec(stack(3, ""), serde_json::json!({"init": init}));
        assert!(!matches!(s.init, InitSpec::Kaiming) || init == "kaiming");
        train(&data, &s);
    }
}

#[test]
fn each_loss_trains_with_its_head() {
    let data = Dataset::prepare(RawTable::from_csv(IRIS, "target").unwrap(), None).unwrap();
    // The bar must hold for any seed: 80 epochs at Adam's default rate passed
    // alone but read 0.767 in one CI run beside the other tests, and fell to
    // 0.767 for some seeds (1 to 12, each head). These settings' worst over the
    // same seeds was 0.867.
    for head in ["", "softmax", "log_softmax"] {
        let out = train(
            &data,
            &spec(
                stack(3, head),
                serde_json::json!({"epochs": 150, "optimizer": {"kind": "adam", "lr": 0.01}}),
            ),
        );
        assert!(out.best.val_metric >= 0.8, "{head}: {:?}", out.best);
    }
    // Two classes: one output, with BCE on the logit or on a sigmoid head.
    let two: String = IRIS
        .lines()
        .filter(|l| !l.ends_with(",virginica"))
        .collect::<Vec<_>>()
        .join("\n");
    let data = Dataset::prepare(RawTable::from_csv(&two, "target").unwrap(), None).unwrap();
    for head in ["", "sigmoid"] {
        let out = train(
            &data,
            &spec(
                stack(1, head),
                serde_json::json!({"loss": "bce", "epochs": 60, "early_stopping_patience": 0,
                                   "optimizer": {"kind": "adam", "lr": 0.01}}),
            ),
        );
        assert!(out.best.val_metric > 0.9, "bce {head}: {:?}", out.best);
    }
    // A softmax head with BCE is refused, not trained.
    let s = spec(stack(1, "softmax"), serde_json::json!({"loss": "bce"}));
    assert!(resolve_net(&s, &data, None).is_err());
    // Regression with MSE through a stack.
    let diabetes = include_str!("../../../examples/data/diabetes.csv");
    let data = Dataset::prepare(RawTable::from_csv(diabetes, "target").unwrap(), None).unwrap();
    let model = serde_json::json!({"kind": "sequential", "input_shape": [10], "layers": [
        {"type": "linear", "in_features": 10, "out_features": 16},
        {"type": "layer_norm", "normalized_shape": 16},
        {"type": "tanh"},
        {"type": "linear", "in_features": 16, "out_features": 1},
    ]});
    let out = train(&data, &spec(model, serde_json::json!({"epochs": 40})));
    assert!(out.best.val_metric > 0.2, "{:?}", out.best);
}

/// Every parameter value of `net`, in visiting order.
fn weights(net: &Net) -> Vec<f32> {
    struct All(Vec<f32>);
    impl burn::module::ModuleVisitor for All {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            self.0
                .extend(p.val().into_data().try_into_vec::<f32>().unwrap());
        }
    }
    let mut all = All(Vec::new());
    net.visit(&mut all);
    all.0
}

#[test]
fn the_fused_adam_step_matches_burns_adam_and_adamw() {
    use crate::training::parts::{Stepper, data_loss, generic_optimizer, initializer, optimizer};
    let data = Dataset::prepare(RawTable::from_csv(IRIS, "target").unwrap(), None).unwrap();
    let mlp = serde_json::json!({"kind": "sequential", "input_shape": [4], "layers": [
        {"type": "linear", "in_features": 4, "out_features": 8},
        {"type": "relu"},
        {"type": "linear", "in_features": 8, "out_features": 3},
    ]});
    for kind in ["adam", "adamw"] {
        let s = spec(mlp.clone(), serde_json::json!({"optimizer": kind}));
        let cfg = resolve_net(&s, &data, None).unwrap();
        let device = Device::flex().autodiff();
        device.seed(3);
        let net = cfg.init(&initializer(&s.init), &device);
        let mut fused = optimizer(&s.optimizer, &Device::flex());
        assert!(
            matches!(fused, Stepper::Fused(_)),
            "{kind} is fused on the CPU"
        );
        let mut generic = Stepper::Burn(generic_optimizer(&s.optimizer));
        let x = Tensor::<2>::from_data(TensorData::new(data.x[..64].to_vec(), [16, 4]), &device);
        let y = data.y[..16].to_vec();
        let (mut a, mut b) = (net.clone(), net);
        let start = weights(&a);
        for _ in 0..5 {
            for (net, optim) in [(&mut a, &mut fused), (&mut b, &mut generic)] {
                let loss = data_loss(
                    net,
                    x.clone(),
                    y.clone(),
                    LossKind::CrossEntropy,
                    Head::Logits,
                    &device,
                );
                let grads = GradientsParams::from_grads(loss.backward(), &*net);
                *net = optim.step(0.05, net.clone(), grads.into(), None);
            }
        }
        let (wa, wb) = (weights(&a), weights(&b));
        assert_eq!(wa.len(), wb.len());
        let moved = wa
            .iter()
            .zip(&start)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(moved > 0.05, "{kind}: the weights moved ({moved})");
        for (i, (x, y)) in wa.iter().zip(&wb).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5,
                "{kind}: weight {i}: fused {x} vs Burn {y}"
            );
        }
    }
}

/// Fits `csv` (`a,target`) with its last `validation_last` rows as the validation
/// set.
fn fit_last(csv: &str, task: Task, validation_last: usize) -> Result<FitOutcome, TrainError> {
    let data = Dataset::prepare(RawTable::from_csv(csv, "target").unwrap(), Some(task)).unwrap();
    let s = spec(
        serde_json::json!({"hidden": [8]}),
        serde_json::json!({"validation_last": validation_last}),
    );
    let net = resolve_net(&s, &data, None).unwrap();
    fit(&data, &s, net, &Device::flex(), &mut Quiet)
}

#[test]
fn values_that_overflow_once_standardised_are_refused_up_front() {
    // Fitted on the first four rows, the last one standardises past f32's limit.
    let csv = "a,target\n-3e38,y\n3,x\n4,y\n5,x\n3e38,x\n";
    let Err(e) = fit_last(csv, Task::Classification, 1) else {
        panic!("trained on values that overflow");
    };
    let text = e.to_string();
    assert!(matches!(e, TrainError::Data(_)), "{text}");
    assert!(
        text.contains("column \"a\"") && text.contains("too large to standardise"),
        "{text}"
    );
}

#[test]
fn a_validation_loss_that_is_not_finite_fails_the_fit() {
    // Small training rows; one validation row far outside them, whose squared
    // error overflows while every training figure stays finite.
    let mut csv = String::from("a,target\n");
    for i in 0..30 {
        csv += &format!("{},{}\n", i % 5, i % 3);
    }
    csv += "1e30,1\n";
    let Err(e) = fit_last(&csv, Task::Regression, 1) else {
        panic!("a non-finite validation loss was kept");
    };
    assert!(
        matches!(
            e,
            TrainError::Diverged {
                epoch: 1,
                what: "validation loss"
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("validation loss is not finite at epoch 1")
    );
}

#[test]
fn every_schedule_with_clipping_trains_on_both_optimizer_paths() {
    let data = Dataset::prepare(RawTable::from_csv(IRIS, "target").unwrap(), None).unwrap();
    let schedules = [
        serde_json::json!({"kind": "constant", "warmup_epochs": 1}),
        serde_json::json!({"kind": "cosine", "warmup_epochs": 0.5, "min_factor": 0.01}),
        serde_json::json!({"kind": "one_cycle"}),
        serde_json::json!({"kind": "step", "step_epochs": 1, "gamma": 0.5}),
    ];
    // Adam runs fused on the CPU; SGD through Burn's optimizer.
    for optimizer in ["adam", "sgd"] {
        for schedule in &schedules {
            let s = spec(
                stack(3, "log_softmax"),
                serde_json::json!({"optimizer": optimizer, "lr_schedule": schedule,
                                   "grad_clip_norm": 1.0}),
            );
            let out = train(&data, &s);
            assert_eq!(out.history.len(), 2, "{optimizer} {schedule}");
            assert!(out.best.val_loss.is_finite(), "{optimizer} {schedule}");
        }
    }
}

#[test]
fn clipping_bounds_the_gradients_global_norm() {
    let data = Dataset::prepare(RawTable::from_csv(IRIS, "target").unwrap(), None).unwrap();
    let s = spec(serde_json::json!({"hidden": [8]}), serde_json::json!({}));
    let config = resolve_net(&s, &data, None).unwrap();
    let device = Device::flex().autodiff();
    let net = config.init(&crate::training::parts::initializer(&s.init), &device);
    let grads_of = || {
        let x = Tensor::<2>::from_data(TensorData::new(data.x[..40].to_vec(), [10, 4]), &device);
        let loss = net.forward(x).powf_scalar(2.0).sum();
        GradientsParams::from_grads(loss.backward(), &net)
    };
    let norm = |g: &mut GradientsParams| crate::training::schedule::clip_norm(&net, g, f64::MAX);
    let mut grads = grads_of();
    let before = norm(&mut grads);
    assert!(before > 0.1, "{before}");
    // Over the bound: scaled down to it; under it: untouched.
    let returned = crate::training::schedule::clip_norm(&net, &mut grads, before / 4.0);
    assert_eq!(returned, before);
    assert!(
        (norm(&mut grads) - before / 4.0).abs() < 1e-5 * before,
        "{}",
        norm(&mut grads)
    );
    let mut grads = grads_of();
    crate::training::schedule::clip_norm(&net, &mut grads, before * 2.0);
    assert!((norm(&mut grads) - before).abs() < 1e-9 * before.max(1.0));
}

mod threads;
