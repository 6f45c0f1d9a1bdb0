use super::*;
use crate::model::net::{ActivationKind, Architecture, MlpConfig};
use crate::model::{NetConfig, Task};

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
