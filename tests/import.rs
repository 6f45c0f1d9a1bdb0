//! PyTorch import: real `torch.save` files (from Burn's own test suite, and PyTorch-
//! layout LSTM / GRU / Transformer weights with reference outputs computed from
//! PyTorch's documented equations) imported with `kiln import`, served, and checked
//! against their reference outputs; then every way an import can go wrong, through
//! the CLI (exit code 2 and a message) and `POST /models` (422), with the old
//! version serving on.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Server, data, test_config};
use serde_json::{Value, json};

fn pytorch(name: &str) -> PathBuf {
    data("pytorch").join(name)
}

fn kiln(args: &[&str], extra: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .args(extra)
        .env("KILN_TELEMETRY__LEVEL", "warn")
        .output()
        .unwrap()
}

/// Runs `kiln import` with `weights` and `config`; returns the output.
fn import(store: &Path, weights: &Path, config: &Path, activate: bool) -> Output {
    let mut args = vec!["import", "--weights"];
    let w = weights.to_str().unwrap();
    let c = config.to_str().unwrap();
    let s = store.to_str().unwrap();
    args.extend([w, "--model-config", c, "--store", s]);
    if !activate {
        args.push("--no-activate");
    }
    kiln(&args, &[])
}

/// A model config (JSON) for a reference entry's layer list.
fn write_config(
    dir: &Path,
    name: &str,
    task: &str,
    input_shape: &Value,
    layers: &Value,
) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let cfg = json!({
        "task": task,
        "architecture": {"kind": "sequential", "input_shape": input_shape, "layers": layers},
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    path
}

fn flat(prediction: &Value) -> Vec<f64> {
    match prediction {
        Value::Number(n) => vec![n.as_f64().unwrap()],
        Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).collect(),
        other => panic!("not a regression answer: {other}"),
    }
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4,
            "{what}: output {i} is {g}, PyTorch says {w}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pytorch_fixture_imports_and_matches_its_reference() {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(pytorch("reference.json")).unwrap()).unwrap();
    let files = reference.as_object().unwrap();
    assert!(files.len() >= 9, "{:?}", files.keys());
    let dir = tempfile::tempdir().unwrap();
    for (file, entry) in files {
        let store = dir.path().join(format!("store-{file}"));
        let config = write_config(
            dir.path(),
            file,
            "regression",
            &entry["input_shape"],
            &entry["layers"],
        );
        let out = import(&store, &pytorch(file), &config, true);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = Server::start(test_config(&store)).await;
        let resp = server.predict(&entry["input"]).await;
        assert_eq!(resp.status(), 200, "{file}");
        let body: Value = resp.json().await.unwrap();
        let predictions = body["predictions"].as_array().unwrap();
        let expected = entry["output"].as_array().unwrap();
        assert_eq!(predictions.len(), expected.len(), "{file}");
        for (p, e) in predictions.iter().zip(expected) {
            let want: Vec<f64> = e
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_close(&flat(p), &want, file);
        }
        eprintln!(
            "{file}: {} outputs per instance match PyTorch within 1e-4",
            expected[0].as_array().unwrap().len()
        );
        server.stop().await.unwrap();
    }
}

fn seed_inputs() -> Vec<(&'static str, Vec<f32>)> {
    vec![
        ("ones", vec![1.0; 1000]),
        ("ramp", (0..1000).map(|i| i as f32 / 1000.0).collect()),
        ("sin", (0..1000).map(|i| (i as f32).sin()).collect()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_mlp_imports_from_pth_and_safetensors_to_the_same_outputs() {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(data("seed_mlp.reference.json")).unwrap()).unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/models/seed-mlp.toml");
    let dir = tempfile::tempdir().unwrap();
    let mut answers = Vec::new();
    for weights in [pytorch("seed_mlp.pth"), data("seed_mlp.safetensors")] {
        let store = dir.path().join(weights.file_name().unwrap());
        let out = import(&store, &weights, &config, true);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = Server::start(test_config(&store)).await;
        let inputs = seed_inputs();
        let rows: Vec<&Vec<f32>> = inputs.iter().map(|(_, r)| r).collect();
        let body: Value = server.predict(&json!(rows)).await.json().await.unwrap();
        let got: Vec<f64> = body["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        let want: Vec<f64> = inputs
            .iter()
            .map(|(name, _)| reference["outputs"][name].as_f64().unwrap())
            .collect();
        assert_close(&got, &want, &weights.display().to_string());
        answers.push(got);
        server.stop().await.unwrap();
    }
    assert_eq!(
        answers[0], answers[1],
        "the two formats give the same numbers"
    );
}

/// A copy of `linear.pt`'s reference config with `layers` changed.
fn linear_config(dir: &Path, name: &str, layers: Value) -> PathBuf {
    write_config(dir, name, "regression", &json!([2]), &layers)
}

fn linear_layers() -> Value {
    json!([
        {"type": "linear", "name": "fc1", "in_features": 2, "out_features": 3},
        {"type": "relu"},
        {"type": "linear", "name": "fc2", "in_features": 3, "out_features": 4, "bias": false},
    ])
}

/// Bad weight files and bad configs, each with the message it must carry.
fn bad_cases(dir: &Path) -> Vec<(&'static str, PathBuf, PathBuf, &'static str)> {
    let good_config = linear_config(dir, "good", linear_layers());
    let missing = linear_config(
        dir,
        "missing",
        json!([
            {"type": "linear", "name": "fc1", "in_features": 2, "out_features": 3},
            {"type": "relu"},
            {"type": "linear", "name": "fc2", "in_features": 3, "out_features": 4, "bias": true},
        ]),
    );
    let wrong_shape = linear_config(
        dir,
        "wrong-shape",
        json!([
            {"type": "linear", "name": "fc1", "in_features": 2, "out_features": 3},
            {"type": "relu"},
            {"type": "linear", "name": "fc2", "in_features": 3, "out_features": 5, "bias": false},
        ]),
    );
    let unnamed = linear_config(
        dir,
        "unnamed",
        json!([
            {"type": "linear", "in_features": 2, "out_features": 3},
            {"type": "relu"},
            {"type": "linear", "in_features": 3, "out_features": 4, "bias": false},
        ]),
    );
    let unknown_type = linear_config(
        dir,
        "unknown-type",
        json!([{"type": "conv3d", "in_channels": 2}]),
    );
    let wrong_arg = linear_config(
        dir,
        "wrong-arg",
        json!([{"type": "linear", "name": "fc1", "in_features": 2, "out_featurs": 3}]),
    );
    let mismatch = linear_config(
        dir,
        "mismatch",
        json!([
            {"type": "linear", "name": "fc1", "in_features": 2, "out_features": 3},
            {"type": "linear", "name": "fc2", "in_features": 4, "out_features": 4, "bias": false},
        ]),
    );
    let bytes = std::fs::read(pytorch("linear.pt")).unwrap();
    let truncated = dir.join("truncated.pt");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let not_pytorch = dir.join("notes.pth");
    std::fs::write(&not_pytorch, "these are my notes, not a model\n").unwrap();
    let empty = dir.join("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    let linear = pytorch("linear.pt");
    vec![
        (
            "missing key",
            linear.clone(),
            missing,
            "missing tensor fc2.bias [4]",
        ),
        (
            "wrong shape",
            linear.clone(),
            wrong_shape,
            "fc2.weight has shape [4, 3]",
        ),
        (
            "other names",
            linear.clone(),
            unnamed,
            "fc1.weight [3, 2] is not part of the model config",
        ),
        (
            "unknown layer type",
            linear.clone(),
            unknown_type,
            "unknown variant `conv3d`",
        ),
        ("wrong argument", linear.clone(), wrong_arg, "out_featurs"),
        (
            "shape mismatch",
            linear.clone(),
            mismatch,
            "in_features = 4 but the input's last dimension is 3",
        ),
        (
            "truncated file",
            truncated,
            good_config.clone(),
            "truncated.pt",
        ),
        (
            "not a PyTorch file",
            not_pytorch,
            good_config.clone(),
            "neither a PyTorch file",
        ),
        ("empty file", empty, good_config, "neither a PyTorch file"),
    ]
}

#[test]
fn bad_files_and_configs_exit_2_with_a_message_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for (what, weights, config, message) in bad_cases(dir.path()) {
        let out = import(&store, &weights, &config, true);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(message),
            "{what}: {stderr:?} lacks {message:?}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: one message: {stderr}");
    }
    let versions = store.join("versions");
    assert!(
        !versions.exists() || std::fs::read_dir(&versions).unwrap().count() == 0,
        "nothing was written"
    );
}

async fn upload(
    server: &Server,
    weights: &Path,
    config: &Path,
    query: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let form = common::import_form(
        weights,
        std::fs::read(config).unwrap(),
        &config.file_name().unwrap().to_string_lossy(),
    );
    let mut req = server
        .client
        .post(server.url(&format!("/models{query}")))
        .multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_models_imports_over_http_and_refuses_bad_uploads_with_422() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut config = test_config(&store);
    config.auth.token = Some("import-secret-123".into());
    config.server.max_upload_bytes = 1024 * 1024;
    let server = Server::start(config).await;
    let token = Some("import-secret-123");
    let active = |s: &Server| {
        let url = s.url("/health/ready");
        let client = s.client.clone();
        async move {
            let r: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            r["model_version"].as_str().unwrap().to_string()
        }
    };
    let before = active(&server).await;

    for (what, weights, config, message) in bad_cases(dir.path()) {
        let resp = upload(&server, &weights, &config, "?activate=true", token).await;
        assert_eq!(resp.status(), 422, "{what}");
        let body: Value = resp.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(message),
            "{what}: {error:?} lacks {message:?}"
        );
        assert_eq!(
            active(&server).await,
            before,
            "{what}: the old version serves on"
        );
    }
    let iris_row = json!([[5.1, 3.5, 1.4, 0.2]]);
    assert_eq!(server.predict(&iris_row).await.status(), 200);

    // No token: 401; too large: 413; not multipart: 4xx with a JSON error.
    let good = linear_config(dir.path(), "good", linear_layers());
    let resp = upload(&server, &pytorch("linear.pt"), &good, "", None).await;
    assert_eq!(resp.status(), 401);
    let resp = upload(&server, &pytorch("seed_mlp.pth"), &good, "", token).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("max_upload_bytes"),
        "{body}"
    );
    let resp = server
        .client
        .post(server.url("/models"))
        .bearer_auth("import-secret-123")
        .json(&json!({"weights": "x"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());

    // A good upload: stored, not active unless asked.
    let resp = upload(&server, &pytorch("linear.pt"), &good, "", token).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let version = body["version"].as_str().unwrap().to_string();
    assert_eq!(body["active"], false, "{body}");
    assert_eq!(active(&server).await, before);
    let resp = upload(
        &server,
        &pytorch("linear.pt"),
        &good,
        "?activate=true",
        token,
    )
    .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");
    let newer = body["version"].as_str().unwrap().to_string();
    assert_ne!(newer, version);
    assert_eq!(active(&server).await, newer);
    let reference: Value =
        serde_json::from_slice(&std::fs::read(pytorch("reference.json")).unwrap()).unwrap();
    let body: Value = server
        .predict(&reference["linear.pt"]["input"])
        .await
        .json()
        .await
        .unwrap();
    for (p, e) in body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["linear.pt"]["output"].as_array().unwrap())
    {
        let want: Vec<f64> = e
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_close(&flat(p), &want, "uploaded linear.pt");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preprocess_and_labels_of_an_imported_classifier_apply_at_predict() {
    let dir = tempfile::tempdir().unwrap();
    // The raw network: z -> 4 scores.
    let raw = linear_config(dir.path(), "raw", linear_layers());
    let raw_store = dir.path().join("raw");
    assert!(
        import(&raw_store, &pytorch("linear.pt"), &raw, true)
            .status
            .success()
    );
    // The same weights as a classifier whose inputs are x = 1 + 2 z.
    let classifier = dir.path().join("classifier.json");
    let cfg = json!({
        "task": "classification",
        "architecture": {"kind": "sequential", "input_shape": [2], "layers": linear_layers()},
        "preprocess": {"mean": 1.0, "std": [2.0, 2.0], "labels": ["north", "east", "south", "west"]},
    });
    std::fs::write(&classifier, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let store = dir.path().join("classifier");
    let out = import(&store, &pytorch("linear.pt"), &classifier, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let z = [[0.3f32, -0.7], [1.1, 0.4]];
    let x: Vec<[f32; 2]> = z
        .iter()
        .map(|r| [1.0 + 2.0 * r[0], 1.0 + 2.0 * r[1]])
        .collect();
    let server = Server::start(test_config(&raw_store)).await;
    let scores: Value = server.predict(&json!(z)).await.json().await.unwrap();
    server.stop().await.unwrap();
    let server = Server::start(test_config(&store)).await;
    let answer: Value = server.predict(&json!(x)).await.json().await.unwrap();
    server.stop().await.unwrap();
    let labels = ["north", "east", "south", "west"];
    for (s, a) in scores["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(answer["predictions"].as_array().unwrap())
    {
        let s = flat(s);
        let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = s.iter().map(|v| (v - max).exp()).sum();
        for (i, label) in labels.iter().enumerate() {
            let p = a["probabilities"][label].as_f64().unwrap();
            assert!(
                ((s[i] - max).exp() / total - p).abs() < 1e-5,
                "{a} vs softmax {s:?}"
            );
        }
        let best = (0..4).max_by(|i, j| s[*i].total_cmp(&s[*j])).unwrap();
        assert_eq!(a["label"], labels[best]);
    }
}
