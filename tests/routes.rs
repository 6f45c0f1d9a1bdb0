//! Canary and shadow routes over real HTTP, as the audit reproduced them: a
//! route goes with its version when that version is deleted, promoted or rolled
//! back to; a route is removed by the version it names; a route that cannot take
//! the new active version's requests is dropped when it is promoted; and a canary
//! computes only the instances it takes (checked against itself, not the active
//! version).

mod common;

use std::collections::HashMap;

use burn::prelude::Device;
use common::{Server, get, post, test_config};
use kiln::model::net::{ActivationKind, Architecture, MlpConfig};
use kiln::model::{Manifest, NetConfig, Task};
use kiln::registry::Store;
use serde_json::{Value, json};

const IRIS: [f32; 4] = [5.1, 3.5, 1.4, 0.2];

fn mlp(input: usize) -> NetConfig {
    NetConfig {
        task: Task::Classification,
        architecture: Architecture::Mlp(MlpConfig {
            input,
            hidden: vec![8],
            output: 3,
            activation: ActivationKind::Relu,
        }),
        preprocess: None,
    }
}

/// Four ids in [0, 8) -> 3 classes.
fn embedding() -> NetConfig {
    NetConfig {
        task: Task::Classification,
        architecture: serde_json::from_value(json!({
            "kind": "sequential", "input_shape": [4], "layers": [
                {"type": "embedding", "num_embeddings": 8, "embedding_dim": 4},
                {"type": "flatten"},
                {"type": "linear", "in_features": 16, "out_features": 3}]
        }))
        .unwrap(),
        preprocess: None,
    }
}

/// v1 (active) and v2: iris-shaped classifiers; v3: an embedding classifier over
/// four ids; v4: a classifier of ten inputs.
async fn start() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let device = Device::flex();
    for net in [mlp(4), mlp(4), embedding(), mlp(10)] {
        store
            .create_version(
                &Manifest::new(net.clone(), "test"),
                &net.init_default(&device),
            )
            .unwrap();
    }
    store.set_active("v1").unwrap();
    (Server::start(test_config(dir.path())).await, dir)
}

/// `n` predictions of `instance`, one at a time: how many each version answered.
/// Every one must be a 200.
async fn answered(server: &Server, n: usize, instance: &[f32]) -> HashMap<String, usize> {
    let mut by = HashMap::new();
    for _ in 0..n {
        let r = server.predict(&json!([instance])).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        *by.entry(body["model_version"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    by
}

fn only(version: &str, n: usize) -> HashMap<String, usize> {
    HashMap::from([(version.to_string(), n)])
}

/// POSTs `body` to `path` and checks the answer's status.
async fn expect(server: &Server, path: &str, body: Value, status: u16) {
    let r = post(server, path, body).await;
    assert_eq!(r.status(), status, "{path}: {}", r.text().await.unwrap());
}

async fn routes(server: &Server) -> (Value, Value) {
    let report = get(server, "/monitoring").await;
    (report["canary"].clone(), report["shadow"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_version_answers_nothing() {
    let (server, _dir) = start().await;
    expect(&server, "/models/v2/canary", json!({"percent": 50}), 200).await;
    expect(&server, "/models/v2/shadow", json!({"percent": 50}), 200).await;
    let before = answered(&server, 20, &IRIS).await;
    assert_eq!(before.get("v2"), Some(&10), "{before:?}");

    let r = server
        .client
        .delete(server.url("/models/v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .client
        .get(server.url("/models/v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Before, 10 of these 20 still came from v2.
    assert_eq!(answered(&server, 20, &IRIS).await, only("v1", 20));
    assert_eq!(routes(&server).await, (Value::Null, Value::Null));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_and_rollback_take_the_route_with_them() {
    let (server, _dir) = start().await;
    expect(&server, "/models/v2/canary", json!({"percent": 50}), 200).await;
    expect(&server, "/models/v2/promote", json!({}), 200).await;
    assert_eq!(answered(&server, 20, &IRIS).await, only("v2", 20));
    assert_eq!(routes(&server).await, (Value::Null, Value::Null));
    // With v2 active, removing "its" route is not a conflict: there is none.
    let r = post(&server, "/models/v2/canary", json!({"percent": 0})).await;
    assert_eq!(r.status(), 200);
    expect(&server, "/models/rollback", json!({}), 200).await;
    // Before, 6 of these 20 came from v2.
    assert_eq!(answered(&server, 20, &IRIS).await, only("v1", 20));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_is_removed_by_the_version_it_names() {
    let (server, _dir) = start().await;
    expect(&server, "/models/v2/canary", json!({"percent": 50}), 200).await;
    // Before, this removed whatever route was set.
    let r = post(&server, "/models/v999/canary", json!({"percent": 0})).await;
    assert_eq!(r.status(), 409);
    let error = r.json::<Value>().await.unwrap()["error"].to_string();
    assert!(error.contains("v2"), "{error}");
    let (canary, _) = routes(&server).await;
    assert_eq!(canary, json!({"version": "v2", "percent": 50.0}));
    let r = post(&server, "/models/v2/canary", json!({"percent": 0})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(answered(&server, 20, &IRIS).await, only("v1", 20));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_cannot_take_the_promoted_versions_inputs_is_dropped() {
    let (server, _dir) = start().await;
    expect(&server, "/models/v2/canary", json!({"percent": 50}), 200).await;
    expect(&server, "/models/v4/promote", json!({}), 200).await;
    // Before, half of these were refused with 422 by the iris canary.
    assert_eq!(answered(&server, 20, &[0.5; 10]).await, only("v4", 20));
    assert_eq!(routes(&server).await, (Value::Null, Value::Null));
    // Nor can it be set beside the 10-input version.
    let r = post(&server, "/models/v2/canary", json!({"percent": 50})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(answered(&server, 4, &[0.5; 10]).await, only("v4", 4));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedding_canary_computes_only_the_ids_it_takes() {
    let (server, _dir) = start().await;
    expect(&server, "/models/v3/canary", json!({"percent": 50}), 200).await;
    // Before: a panic in the canary's pass and a 500 for half of these...
    assert_eq!(
        answered(&server, 20, &[50.0, 60.0, 70.0, 80.0]).await,
        only("v1", 20)
    );
    // ... and half of these answered by the canary with the values truncated
    // to ids.
    assert_eq!(answered(&server, 20, &IRIS).await, only("v1", 20));
    // Ids it takes: its share.
    let ids = answered(&server, 20, &[1.0, 2.0, 3.0, 0.0]).await;
    assert_eq!(ids.get("v3"), Some(&10), "{ids:?}");
    let metrics = server.metrics().await;
    assert!(
        !metrics.contains("code=\"500\""),
        "no 500 was answered:\n{metrics}"
    );
    assert_eq!(answered(&server, 4, &IRIS).await.len(), 1);
    server.stop().await.unwrap();
}
