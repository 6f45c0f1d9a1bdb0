use super::*;
use crate::model::net::{ActivationKind, Architecture, MlpConfig};
use crate::model::{NetConfig, Task};
use burn::module::Module;

fn tiny() -> (Manifest, Net) {
    let cfg = NetConfig {
        task: Task::Regression,
        architecture: Architecture::Mlp(MlpConfig {
            input: 3,
            hidden: vec![4],
            output: 1,
            activation: ActivationKind::Relu,
        }),
        preprocess: None,
    };
    let net = cfg.init_default(&Device::flex());
    (Manifest::new(cfg, "test"), net)
}

#[test]
fn versions_round_trip_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (manifest, net) = tiny();
    let v = store.create_version(&manifest, &net).unwrap();
    assert_eq!(v, "v1");
    assert_eq!(store.list().unwrap(), ["v1"]);
    let loaded = store.load(&v, &Device::flex()).unwrap();
    assert_eq!(loaded.manifest(), &manifest);
    let rows = vec![0.5, -1.0, 2.0, 1.0, 1.0, 1.0];
    let direct =
        crate::model::LoadedModel::new("x", manifest, net, Device::flex()).forward(rows.clone(), 2);
    assert_eq!(loaded.forward(rows, 2), direct);
    // Nothing is left in the staging area.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

/// A layer stack with every kind of stored state (conv, batch norm statistics, an
/// LSTM, an encoder layer) comes back bit-exact, with nothing missing.
#[test]
fn layer_stacks_round_trip_bit_exact() {
    let cfg = NetConfig::parse(
        r#"
task = "regression"
[architecture]
kind = "sequential"
input_shape = [2, 6]
layers = [
  { type = "conv1d", in_channels = 2, out_channels = 4, kernel_size = 3, padding = 1 },
  { type = "batch_norm1d", num_features = 4 },
  { type = "dropout", p = 0.3 },
  { type = "transpose", dim0 = 1, dim1 = 2 },
  { type = "lstm", input_size = 4, hidden_size = 4, bidirectional = true },
  { type = "positional_encoding" },
  { type = "transformer_encoder_layer", d_model = 8, nhead = 2, dim_feedforward = 8 },
  { type = "select", index = -1 },
  { type = "layer_norm", normalized_shape = 8 },
  { type = "linear", in_features = 8, out_features = 2 },
]
"#,
        false,
    )
    .unwrap();
    let device = Device::flex();
    // Running statistics away from their initial values.
    let net = cfg.init(
        &burn::nn::Initializer::XavierUniform { gain: 1.0 },
        &device.clone().autodiff(),
    );
    let _ = net.forward(burn::prelude::Tensor::ones(
        [4, 12],
        &device.clone().autodiff(),
    ));
    let net = net.valid();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let manifest = Manifest::new(cfg, "test");
    let v = store.create_version(&manifest, &net).unwrap();
    let loaded = store.load(&v, &device).unwrap();
    let rows: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
    let direct =
        crate::model::LoadedModel::new("x", manifest, net, device).forward(rows.clone(), 2);
    assert_eq!(loaded.forward(rows, 2), direct);
}

#[test]
fn ids_count_up_and_active_remembers_previous() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (manifest, net) = tiny();
    let ids: Vec<String> = (0..3)
        .map(|_| store.create_version(&manifest, &net).unwrap())
        .collect();
    assert_eq!(ids, ["v1", "v2", "v3"]);
    assert_eq!(store.active().unwrap(), None);
    store.set_active("v1").unwrap();
    let r = store.set_active("v3").unwrap();
    assert_eq!(r.previous.as_deref(), Some("v1"));
    assert_eq!(store.active().unwrap().unwrap().version, "v3");
    assert!(matches!(
        store.set_active("v9"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.manifest("../etc"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn concurrent_writers_never_share_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let (manifest, net) = tiny();
                    store.create_version(&manifest, &net).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    ids.sort();
    assert_eq!(ids, ["v1", "v2", "v3", "v4"]);
}

#[test]
fn corrupt_weights_are_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (manifest, net) = tiny();
    let v = store.create_version(&manifest, &net).unwrap();
    std::fs::write(
        dir.path().join("versions").join(&v).join(WEIGHTS),
        b"not safetensors",
    )
    .unwrap();
    let err = store.load(&v, &Device::flex()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}
