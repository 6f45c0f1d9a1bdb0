//! Models beyond the MLP, end to end through `/train`: a CNN on the digits as
//! `[1, 8, 8]` images (served flat, nested and over OIP v2, hot-swapped under load,
//! rolled back), sequence models that beat the MLP where order matters, `/explain`,
//! and bad layer stacks.

#[path = "models/admission.rs"]
mod admission;
mod common;
#[path = "models/explain.rs"]
mod explain;
#[path = "models/named.rs"]
mod named;
#[path = "models/named_train.rs"]
mod named_train;
#[path = "models/residency.rs"]
mod residency;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, data, finished, get, poll_job, post, submit, train_config};
use serde_json::{Value, json};

/// A recipe file from `config/` as a `/train` body.
fn recipe(name: &str, dataset: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    let mut body = serde_json::to_value(toml::from_str::<toml::Value>(&text).unwrap()).unwrap();
    body["dataset"] = json!({"path": dataset});
    body
}

/// Waits (up to `secs`) for a job to finish and checks it succeeded.
async fn succeeded(server: &Server, id: &str, secs: u64) -> Value {
    let job = poll_job(
        &server.client,
        &server.base,
        id,
        Duration::from_secs(secs),
        finished,
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    job
}

/// The first `n` rows of digits.csv: (pixels, label).
fn digits(n: usize) -> Vec<(Vec<f32>, String)> {
    let text = std::fs::read_to_string(data("digits.csv")).unwrap();
    text.lines()
        .skip(1)
        .take(n)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let (x, y) = cells.split_at(cells.len() - 1);
            (
                x.iter().map(|v| v.parse().unwrap()).collect(),
                y[0].to_string(),
            )
        })
        .collect()
}

async fn labels(server: &Server, instances: Value) -> (Vec<String>, String) {
    let r = server.predict(&instances).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let labels = body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap().to_string())
        .collect();
    (labels, body["model_version"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cnn_trains_on_digits_serves_swaps_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let id = submit(&server, recipe("digits-cnn-train.toml", "digits.csv")).await;
    let job = succeeded(&server, &id, 600).await;
    let accuracy = job["best"]["val_metric"].as_f64().unwrap();
    eprintln!(
        "digits CNN: validation accuracy {accuracy:.4} at epoch {}",
        job["best"]["epoch"]
    );
    assert!(accuracy >= 0.98, "{job}");
    assert_eq!(job["promoted"], true, "{job}");
    // The recipe leaves `standardize` unset: an image is scaled per channel.
    let standardize = job["defaults"]
        .as_array()
        .and_then(|d| d.iter().find(|c| c["field"] == "standardize"));
    assert_eq!(
        standardize.map(|c| c["value"].clone()),
        Some(json!("channel")),
        "{job}"
    );
    let cnn = job["version"].as_str().unwrap().to_string();

    // Served flat and nested ([1, 8, 8]), with the same answers.
    let rows = digits(100);
    let flat: Vec<&Vec<f32>> = rows.iter().map(|(x, _)| x).collect();
    let nested: Vec<Value> = rows
        .iter()
        .map(|(x, _)| json!([x.chunks(8).collect::<Vec<_>>()]))
        .collect();
    let (by_flat, version) = labels(&server, json!(flat)).await;
    assert_eq!(version, cnn);
    let (by_nested, _) = labels(&server, json!(nested)).await;
    assert_eq!(by_flat, by_nested);
    let right = by_flat
        .iter()
        .zip(&rows)
        .filter(|(p, (_, y))| *p == y)
        .count();
    assert!(right >= 95, "{right}/100 of the first digits right");
    let wrong_nesting = json!([[rows[0].0.chunks(16).collect::<Vec<_>>()]]);
    let r = server.predict(&wrong_nesting).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("[1, 8, 8]"),
        "{body}"
    );

    // OIP v2: the input is [-1, 1, 8, 8]; [N, 1, 8, 8] and [N, 64] both work.
    let meta = get(&server, "/v2/models/kiln").await;
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 1, 8, 8]), "{meta}");
    let pixels: Vec<f32> = rows[..2].iter().flat_map(|(x, _)| x.clone()).collect();
    for shape in [json!([2, 1, 8, 8]), json!([2, 64])] {
        let r = post(
            &server,
            "/v2/models/kiln/infer",
            json!({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": pixels}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let oip: Vec<String> = body["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(oip, by_flat[..2], "{body}");
    }

    // A second CNN (kept, not promoted), then swaps under load.
    let mut second = recipe("digits-cnn-train.toml", "digits.csv");
    second["seed"] = json!(7);
    second["epochs"] = json!(6);
    second["promote"] = json!("never");
    let job = succeeded(&server, &submit(&server, second).await, 600).await;
    let other = job["version"].as_str().unwrap().to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, answered) = (stop.clone(), answered.clone());
        let client = server.client.clone();
        let url = server.url("/predict");
        let body = json!({"instances": flat[..8]});
        let (cnn, other) = (cnn.clone(), other.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let b: Value = r.json().await.unwrap();
                let v = b["model_version"].as_str().unwrap();
                assert!(v == cnn || v == other, "{v}");
                assert_eq!(b["predictions"].as_array().unwrap().len(), 8);
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for _ in 0..3 {
        let r = post(&server, &format!("/models/{other}/promote"), json!({})).await;
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = post(&server, "/models/rollback", json!({})).await;
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(answered.load(Ordering::Relaxed) > 0);
    // Rolled back: the first CNN serves, with the same answers as before.
    let (again, version) = labels(&server, json!(flat)).await;
    assert_eq!(version, cnn);
    assert_eq!(again, by_flat);
    server.stop().await.unwrap();
}

/// The best validation accuracy of a `/train` job on ab_order.csv.
async fn order_accuracy(server: &Server, body: Value) -> f64 {
    let id = submit(server, body).await;
    let job = succeeded(server, &id, 900).await;
    job["best"]["val_metric"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_models_beat_the_mlp_where_order_matters() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = train_config(dir.path());
    config.training.data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let server = Server::start(config).await;
    // Same seed and fraction, so the same split for all three.
    let mlp = order_accuracy(
        &server,
        json!({"dataset": {"path": "ab_order.csv"}, "promote": "never", "validation_split": 0.2}),
    )
    .await;
    let lstm = order_accuracy(&server, recipe("ab-order-lstm-train.toml", "ab_order.csv")).await;
    let transformer = order_accuracy(
        &server,
        recipe("ab-order-transformer-train.toml", "ab_order.csv"),
    )
    .await;
    eprintln!(
        "ab_order.csv validation accuracy: MLP {mlp:.4}, LSTM {lstm:.4}, Transformer encoder {transformer:.4}"
    );
    assert!(lstm > mlp + 0.1, "LSTM {lstm} vs MLP {mlp}");
    assert!(
        transformer > mlp + 0.1,
        "Transformer {transformer} vs MLP {mlp}"
    );
    server.stop().await.unwrap();
}

/// A seeded uniform draw in [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Away from zero: |x| in [0.5, 2], either sign.
    fn feature(&mut self) -> f32 {
        let m = 0.5 + 1.5 * self.next();
        if self.next() < 0.5 { -m } else { m }
    }
}

/// Regression data where the target depends on features 0 and 3 only.
fn two_feature_rows(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| (0..6).map(|_| rng.feature()).collect())
        .collect()
}

fn target(x: &[f32]) -> f32 {
    2.0 * x[0] - 1.5 * x[3] + 0.5 * x[0] * x[3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_finds_the_features_that_matter_with_both_methods() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = train_config(dir.path());
    config.explain.max_rows = 200;
    let server = Server::start(config).await;
    let rows = two_feature_rows(1500, 3);
    let targets: Vec<f32> = rows.iter().map(|x| target(x)).collect();
    // Batch norm and dropout in the stack: explanations must use inference mode.
    // Smooth activations: along the integration path a ReLU net is piecewise linear,
    // and 64 midpoints only approximate its kinks.
    let model = json!({"kind": "sequential", "input_shape": [6], "layers": [
        {"type": "linear", "in_features": 6, "out_features": 64},
        {"type": "batch_norm1d", "num_features": 64},
        {"type": "gelu"},
        {"type": "dropout", "p": 0.1},
        {"type": "linear", "in_features": 64, "out_features": 32},
        {"type": "tanh"},
        {"type": "linear", "in_features": 32, "out_features": 1},
    ]});
    let id = submit(
        &server,
        json!({"dataset": {"instances": rows, "targets": targets}, "task": "regression",
               "model": model, "optimizer": {"kind": "adam", "lr": 0.003}, "epochs": 150,
               "early_stopping_patience": 20, "promote": "always"}),
    )
    .await;
    let job = succeeded(&server, &id, 600).await;
    eprintln!(
        "two-feature regression: validation R^2 {}",
        job["best"]["val_metric"]
    );
    assert!(job["best"]["val_metric"].as_f64().unwrap() > 0.98, "{job}");

    let probe = two_feature_rows(200, 99);
    let predictions: Vec<f64> = server
        .predict(&json!(probe))
        .await
        .json::<Value>()
        .await
        .unwrap()["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    for method in ["gradient_x_input", "integrated_gradients"] {
        let body = json!({"instances": probe, "method": method, "steps": 64});
        let r = post(&server, "/explain", body.clone()).await;
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(
            r.headers()["x-model-version"],
            job["version"].as_str().unwrap()
        );
        let answer: Value = r.json().await.unwrap();
        let again: Value = post(&server, "/explain", body).await.json().await.unwrap();
        assert_eq!(
            answer, again,
            "{method}: explanations are deterministic (no dropout)"
        );
        let explanations = answer["explanations"].as_array().unwrap();
        assert_eq!(explanations.len(), probe.len());
        let mut top_two_right = 0;
        let mut worst_gap_error: f64 = 0.0;
        for (i, e) in explanations.iter().enumerate() {
            let a: Vec<f64> = e["attributions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(a.len(), 6);
            let mut order: Vec<usize> = (0..6).collect();
            order.sort_by(|x, y| a[*y].abs().total_cmp(&a[*x].abs()));
            if order[..2].contains(&0) && order[..2].contains(&3) {
                top_two_right += 1;
            }
            // The explained output is the served prediction (inference mode).
            let output = e["output"].as_f64().unwrap();
            assert!(
                (output - predictions[i]).abs() <= 1e-3 * (1.0 + predictions[i].abs()),
                "{method}: instance {i} explains {output}, /predict says {}",
                predictions[i]
            );
            if method == "integrated_gradients" {
                let gap = output - e["baseline_output"].as_f64().unwrap();
                let sum: f64 = a.iter().sum();
                let tolerance = (0.02 * gap.abs()).max(0.01);
                worst_gap_error = worst_gap_error.max((sum - gap).abs() / tolerance);
                assert!(
                    (sum - gap).abs() <= tolerance,
                    "instance {i}: attributions add to {sum}, f(x) - f(baseline) = {gap}"
                );
            }
        }
        eprintln!("{method}: features 0 and 3 rank first for {top_two_right}/200 instances");
        if method == "integrated_gradients" {
            eprintln!(
                "integrated gradients (64 steps): the worst sum error is {worst_gap_error:.3} of max(2% of f(x) - f(baseline), 0.01)"
            );
        }
        assert!(top_two_right >= 190, "{method}: {top_two_right}/200");
    }

    // Bad requests: 4xx with a reason.
    let bad = [
        (
            json!({"instances": [[1, 2, 3]], "method": "gradient_x_input"}),
            422,
            "6",
        ),
        (
            json!({"instances": probe[..1], "method": "saliency"}),
            422,
            "saliency",
        ),
        (
            json!({"instances": probe[..1], "method": "integrated_gradients", "steps": 0}),
            422,
            "steps",
        ),
        (
            json!({"instances": probe[..1], "method": "integrated_gradients", "baseline": [0, 0]}),
            422,
            "baseline",
        ),
        (
            json!({"instances": probe[..1], "method": "gradient_x_input", "target": "7"}),
            422,
            "target",
        ),
        (
            json!({"instances": two_feature_rows(201, 5), "method": "gradient_x_input"}),
            413,
            "explain.max_rows",
        ),
        (
            json!({"instances": [[1e39, 1, 1, 1, 1, 1]], "method": "gradient_x_input"}),
            422,
            "finite",
        ),
        (
            json!({"instances": probe[..1], "method": "integrated_gradients", "baseline": [1e39, 0, 0, 0, 0, 1e-50]}),
            422,
            "finite",
        ),
        (
            json!({"instances": [], "method": "gradient_x_input"}),
            422,
            "at least one",
        ),
        (
            json!({"instances": probe[..1], "method": "integrated_gradients", "steps": -1}),
            422,
            "steps",
        ),
    ];
    for (body, status, words) in bad {
        let r = post(&server, "/explain", body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        let b: Value = r.json().await.unwrap();
        assert!(b["error"].as_str().unwrap().contains(words), "{b}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classifiers_explain_the_predicted_or_the_named_class() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    // The default model: an iris classifier.
    let row = json!([[6.7, 3.0, 5.2, 2.3]]);
    let predicted: Value = server.predict(&row).await.json().await.unwrap();
    let label = predicted["predictions"][0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    let r: Value = post(
        &server,
        "/explain",
        json!({"instances": row, "method": "gradient_x_input"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["explanations"][0]["target"], label.as_str(), "{r}");
    let r: Value = post(
        &server,
        "/explain",
        json!({"instances": row, "method": "integrated_gradients", "target": "setosa", "steps": 64}),
    )
    .await
    .json()
    .await
    .unwrap();
    let e = &r["explanations"][0];
    assert_eq!(e["target"], "setosa", "{r}");
    let sum: f64 = e["attributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    let gap = e["output"].as_f64().unwrap() - e["baseline_output"].as_f64().unwrap();
    assert!(
        (sum - gap).abs() <= (0.02 * gap.abs()).max(0.01),
        "{sum} vs {gap}"
    );
    let r = post(
        &server,
        "/explain",
        json!({"instances": row, "method": "gradient_x_input", "target": "rose"}),
    )
    .await;
    assert_eq!(r.status(), 422);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_layer_stacks_get_422_and_the_old_version_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let ready = get(&server, "/health/ready").await;
    let iris = json!({"path": "iris.csv"});
    let cases = [
        (
            json!({"kind": "sequential", "input_shape": [4], "layers": [{"type": "conv3d"}]}),
            "unknown variant `conv3d`",
        ),
        (
            json!({"kind": "sequential", "input_shape": [4], "layers": [{"type": "linear", "in_features": 4, "out_feature": 3}]}),
            "out_feature",
        ),
        (
            json!({"kind": "sequential", "input_shape": [2, 2], "layers": [
            {"type": "conv1d", "in_channels": 2, "out_channels": 3, "kernel_size": 3}]}),
            "does not fit",
        ),
        (
            json!({"kind": "sequential", "input_shape": [4], "layers": [
            {"type": "linear", "in_features": 4, "out_features": 65536},
            {"type": "linear", "in_features": 65536, "out_features": 65536}]}),
            "more than",
        ),
        (
            json!({"kind": "sequential", "input_shape": [5], "layers": [
            {"type": "linear", "in_features": 5, "out_features": 3}]}),
            "feature columns",
        ),
        (
            json!({"kind": "sequential", "input_shape": [4], "layers": [
            {"type": "linear", "in_features": 4, "out_features": 2}]}),
            "needs 3 outputs",
        ),
        (
            json!({"kind": "sequential", "input_shape": [4], "layers": [
            {"type": "embedding", "num_embeddings": 8, "embedding_dim": 4},
            {"type": "flatten"}, {"type": "linear", "in_features": 16, "out_features": 3}]}),
            "is not an id",
        ),
        (json!("no-such-model"), "no-such-model"),
    ];
    for (model, words) in cases {
        let r = post(&server, "/train", json!({"dataset": iris, "model": model})).await;
        assert_eq!(r.status(), 422, "{model}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(words),
            "{words}: {body}"
        );
    }
    // A batch whose widest activation would not fit: lower batch_size.
    let wide = json!({"kind": "sequential", "input_shape": [4], "layers": [
        {"type": "linear", "in_features": 4, "out_features": 65536},
        {"type": "linear", "in_features": 65536, "out_features": 3}]});
    let r = post(
        &server,
        "/train",
        json!({"dataset": iris, "model": wide, "batch_size": 65536}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("lower batch_size"),
        "{body}"
    );
    assert_eq!(get(&server, "/health/ready").await, ready);
    assert_eq!(
        server
            .predict(&json!([[5.1, 3.5, 1.4, 0.2]]))
            .await
            .status(),
        200
    );
    server.stop().await.unwrap();
}
