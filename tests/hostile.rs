//! Hostile and careless inputs an outside audit sent to a running kiln, each
//! reproduced as it was sent and answered with a 4xx JSON error, the old version
//! serving on: a `.pth` of stride-0 tensors that expand to gigabytes, NaN and
//! infinite weights (at import and at load), duplicate class labels, `/explain`
//! on numbers that overflow, and a megabyte of client text in fields that error
//! messages quote.

mod common;
#[path = "common/pth.rs"]
mod pth;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{Server, test_config};
use pth::View;
use serde_json::{Value, json};

const IRIS_ROW: [f32; 4] = [5.1, 3.5, 1.4, 0.2];

/// `linear.pt`'s network: fc1 (2 -> 3), relu, fc2 (3 -> 4, no bias).
fn linear_config(dir: &Path) -> PathBuf {
    let path = dir.join("linear.json");
    let cfg = json!({
        "task": "regression",
        "architecture": {"kind": "sequential", "input_shape": [2], "layers": [
            {"type": "linear", "name": "fc1", "in_features": 2, "out_features": 3},
            {"type": "relu"},
            {"type": "linear", "name": "fc2", "in_features": 3, "out_features": 4, "bias": false},
        ]},
    });
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    path
}

/// The storages and views of a `.pth` for [`linear_config`], with these values.
fn linear_tensors(w1: Vec<f32>, b1: Vec<f32>) -> (Vec<(&'static str, Vec<f32>)>, Vec<View>) {
    let w2: Vec<f32> = (0..12).map(|i| i as f32 / 10.0 - 0.5).collect();
    (
        vec![("0", w1), ("1", b1), ("2", w2)],
        vec![
            View::whole("fc1.weight", "0", &[3, 2]),
            View::whole("fc1.bias", "1", &[3]),
            View::whole("fc2.weight", "2", &[4, 3]),
        ],
    )
}

fn good_w1() -> Vec<f32> {
    vec![0.1, -0.2, 0.3, 0.4, -0.5, 0.6]
}

async fn upload(server: &Server, weights: &Path, config: &Path, query: &str) -> reqwest::Response {
    let part = |p: &Path| {
        reqwest::multipart::Part::bytes(std::fs::read(p).unwrap())
            .file_name(p.file_name().unwrap().to_string_lossy().into_owned())
    };
    let form = reqwest::multipart::Form::new()
        .part("weights", part(weights))
        .part("config", part(config));
    server
        .client
        .post(server.url(&format!("/models{query}")))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn active(server: &Server) -> String {
    let r: Value = server
        .client
        .get(server.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["model_version"].as_str().unwrap().to_string()
}

/// A 4xx with a JSON `error`; returns the error.
async fn refused(resp: reqwest::Response, status: u16, what: &str) -> String {
    assert_eq!(resp.status(), status, "{what}");
    let body: Value = resp.json().await.unwrap();
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no error in {body}"))
        .to_string()
}

/// The server still answers a normal prediction, from version `version`.
async fn serves(server: &Server, version: &str) {
    assert_eq!(active(server).await, version, "the old version serves on");
    let resp = server.predict(&json!([IRIS_ROW])).await;
    assert_eq!(resp.status(), 200);
}

/// This process's resident memory, in kB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stride_zero_tensors_that_expand_to_gigabytes_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(&dir.path().join("store"))).await;
    let before = active(&server).await;
    let config = linear_config(dir.path());

    // The writer makes files kiln reads: the network alone imports.
    let (storages, views) = linear_tensors(good_w1(), vec![0.0, 0.1, 0.2]);
    let clean = dir.path().join("clean.pth");
    pth::write(&clean, &storages, &views);
    assert_eq!(upload(&server, &clean, &config, "").await.status(), 201);

    // The audit's file: 4.2 MB, with 2,000 extra tensors of shape [1000000] and
    // stride [0] over one float of a storage: 8 GB once read.
    let (mut storages, mut views) = linear_tensors(good_w1(), vec![0.0, 0.1, 0.2]);
    storages.push(("pad", vec![0.0; 1_000_000]));
    for i in 0..2000 {
        views.push(View {
            name: format!("extra.{i}"),
            storage: "pad",
            offset: 0,
            shape: vec![1_000_000],
            stride: vec![0],
        });
    }
    let hostile = dir.path().join("hostile.pth");
    pth::write(&hostile, &storages, &views);
    let size = std::fs::metadata(&hostile).unwrap().len();
    assert!((4_000_000..4_400_000).contains(&size), "{size} bytes");

    // Resident memory is sampled while the import runs: nothing is read.
    let start = rss_kb();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(start));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let resp = upload(&server, &hostile, &config, "?activate=true").await;
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let error = refused(resp, 422, "hostile .pth").await;
    assert!(
        error.contains("[1000000] is not part of the model config") && error.contains("extra."),
        "{error}"
    );
    assert!(error.contains("(and 1988 more)"), "{error}");
    let grew_mb = (peak.load(Ordering::Relaxed) - start) / 1024;
    assert!(grew_mb < 200, "resident memory grew {grew_mb} MB");
    serves(&server, &before).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_weights_are_refused_at_import_and_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let server = Server::start(test_config(&store_dir)).await;
    let before = active(&server).await;
    let config = linear_config(dir.path());

    // The audit's file: the weight all NaN, the bias +inf.
    let (storages, views) = linear_tensors(vec![f32::NAN; 6], vec![f32::INFINITY; 3]);
    let nan = dir.path().join("nan.pth");
    pth::write(&nan, &storages, &views);
    let error = refused(
        upload(&server, &nan, &config, "?activate=true").await,
        422,
        "NaN .pth",
    )
    .await;
    assert!(
        error.contains(
            "tensor fc1.weight holds 6 NaN of its 6 values: weights must be finite numbers"
        ),
        "{error}"
    );
    let (storages, views) = linear_tensors(good_w1(), vec![0.0, f32::INFINITY, 1.0]);
    let inf = dir.path().join("inf.pth");
    pth::write(&inf, &storages, &views);
    let error = refused(upload(&server, &inf, &config, "").await, 422, "inf .pth").await;
    assert!(
        error.contains("tensor fc1.bias holds 1 infinite of its 3 values"),
        "{error}"
    );

    // Safetensors too.
    let st = dir.path().join("inf.safetensors");
    let w2: Vec<f32> = vec![0.5; 12];
    pth::safetensors(
        &st,
        &[
            ("fc1.weight", vec![3, 2], good_w1()),
            ("fc1.bias", vec![3], vec![f32::NEG_INFINITY, 0.0, 0.0]),
            ("fc2.weight", vec![4, 3], w2.clone()),
        ],
    );
    let error = refused(upload(&server, &st, &config, "").await, 422, "safetensors").await;
    assert!(
        error.contains("tensor fc1.bias holds 1 infinite of its 3 values"),
        "{error}"
    );
    serves(&server, &before).await;

    // At load: a stored version whose weights turned NaN never serves.
    let st = dir.path().join("good.safetensors");
    pth::safetensors(
        &st,
        &[
            ("fc1.weight", vec![3, 2], good_w1()),
            ("fc1.bias", vec![3], vec![0.0; 3]),
            ("fc2.weight", vec![4, 3], w2),
        ],
    );
    let resp = upload(&server, &st, &config, "").await;
    assert_eq!(resp.status(), 201);
    let good: Value = resp.json().await.unwrap();
    let store = kiln::registry::Store::open(&store_dir).unwrap();
    let mut files = store
        .version_files(good["version"].as_str().unwrap())
        .unwrap();
    let weights = &mut files
        .iter_mut()
        .find(|(name, _)| *name == "weights.safetensors")
        .unwrap()
        .1;
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&weights[8..8 + header_len]).into_owned();
    assert!(
        header.contains("F32") && !header.contains("F64"),
        "{header}"
    );
    for value in weights[8 + header_len..].chunks_exact_mut(4) {
        value.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    assert!(store.put_version("v90", &files).unwrap());
    let resp = server
        .client
        .post(server.url("/models/v90/promote"))
        .send()
        .await
        .unwrap();
    let error = refused(resp, 409, "promoting NaN weights").await;
    assert!(
        error.contains("v90") && error.contains("NaN") && error.contains("must be finite"),
        "{error}"
    );
    serves(&server, &before).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_class_labels_are_refused_naming_the_label() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(&dir.path().join("store"))).await;
    let before = active(&server).await;
    // The audit's case: a 3-class classifier labelled ["a", "a", "b"].
    let weights = dir.path().join("fc.pth");
    pth::write(
        &weights,
        &[
            ("0", vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
            ("1", vec![0.0; 3]),
        ],
        &[
            View::whole("fc.weight", "0", &[3, 2]),
            View::whole("fc.bias", "1", &[3]),
        ],
    );
    let config = dir.path().join("classifier.json");
    let cfg = |labels: Value| {
        json!({
            "task": "classification",
            "architecture": {"kind": "sequential", "input_shape": [2], "layers": [
                {"type": "linear", "name": "fc", "in_features": 2, "out_features": 3},
            ]},
            "preprocess": {"labels": labels},
        })
    };
    std::fs::write(&config, cfg(json!(["a", "a", "b"])).to_string()).unwrap();
    let error = refused(
        upload(&server, &weights, &config, "?activate=true").await,
        422,
        "duplicate labels",
    )
    .await;
    assert!(
        error.contains(r#"preprocess.labels gives "a" twice"#),
        "{error}"
    );
    serves(&server, &before).await;
    // Distinct labels import.
    std::fs::write(&config, cfg(json!(["a", "b", "c"])).to_string()).unwrap();
    assert_eq!(upload(&server, &weights, &config, "").await.status(), 201);
    server.stop().await.unwrap();
}

async fn explain(server: &Server, body: Value) -> reqwest::Response {
    server
        .client
        .post(server.url("/explain"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_answers_422_where_its_numbers_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(&dir.path().join("store"))).await;
    let before = active(&server).await;
    let huge = [3e38f32; 4];
    // /predict refuses these inputs; /explain answered nulls.
    assert_eq!(server.predict(&json!([huge])).await.status(), 422);
    for (what, body) in [
        (
            "overflowing instance",
            json!({"instances": [huge], "method": "integrated_gradients"}),
        ),
        (
            "overflowing baseline",
            json!({"instances": [IRIS_ROW], "method": "integrated_gradients", "baseline": huge}),
        ),
        (
            "overflowing instance, gradient x input",
            json!({"instances": [huge], "method": "gradient_x_input"}),
        ),
    ] {
        let error = refused(explain(&server, body).await, 422, what).await;
        assert!(
            error.contains("instance 0:") && error.contains("is not a finite number"),
            "{what}: {error}"
        );
    }
    // A normal explanation is whole and finite.
    let resp = explain(
        &server,
        json!({"instances": [IRIS_ROW], "method": "integrated_gradients"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let e = &body["explanations"][0];
    assert!(e["output"].is_f64() && e["baseline_output"].is_f64(), "{e}");
    assert!(
        e["attributions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.is_f64()),
        "{e}"
    );
    serves(&server, &before).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_messages_quote_at_most_100_characters_of_client_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(&dir.path().join("store"))).await;
    let before = active(&server).await;
    let mega = "t".repeat(1_000_000);
    let bounded = |error: &str, what: &str| {
        assert!(error.len() < 1000, "{what}: a {}-byte error", error.len());
        assert!(
            error.contains(&format!(
                "\"{}\"... (1000000 bytes in all)",
                "t".repeat(100)
            )),
            "{what}: {error}"
        );
    };

    // /explain's target.
    let resp = explain(
        &server,
        json!({"instances": [IRIS_ROW], "method": "gradient_x_input", "target": mega}),
    )
    .await;
    bounded(&refused(resp, 422, "target").await, "target");

    // OIP v2: the input's name, then its datatype.
    let infer = |name: &str, datatype: &str| json!({"inputs": [{"name": name, "shape": [1, 4], "datatype": datatype, "data": IRIS_ROW}]});
    for (what, body) in [
        ("input name", infer(&mega, "FP32")),
        ("datatype", infer("input", &mega)),
    ] {
        let resp = server
            .client
            .post(server.url("/v2/models/kiln/infer"))
            .json(&body)
            .send()
            .await
            .unwrap();
        bounded(&refused(resp, 400, what).await, what);
    }
    serves(&server, &before).await;
    server.stop().await.unwrap();
}
