//! Standard protocols against a real kiln: the Open Inference Protocol v2 (with
//! NVIDIA's official `tritonclient` and KServe's own `kserve` client from PyPI),
//! Triton's model config and repository extension on named models, the OpenAPI
//! document (fuzzed with schemathesis from PyPI) and Swagger UI.

mod common;
#[path = "protocol/perf_analyzer.rs"]
mod perf_analyzer;

use std::process::Command;

use common::{Server, import_seed_mlp, python_env, seed_small_model, test_config};
use serde_json::{Value, json};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
}

/// `/predict`'s answers for `rows`, flattened.
async fn predict_flat(server: &Server, rows: &Value) -> Vec<f64> {
    let body: Value = server.predict(rows).await.json().await.unwrap();
    body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| match p {
            Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).collect(),
            v => vec![v.as_f64().unwrap()],
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_triton_client_works_unchanged() {
    let python =
        tokio::task::spawn_blocking(|| python_env("tritonclient", &["tritonclient[http]==2.73.0"]))
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let version = import_seed_mlp(dir.path());
    let server = Server::start(test_config(dir.path())).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let seen = common::run_python(
        python,
        "oip_client.py",
        vec![addr, "kiln".into(), "1000".into()],
    )
    .await;
    assert_eq!(seen["live"], true);
    assert_eq!(seen["ready"], true);
    assert_eq!(seen["model_ready"], true);
    assert_eq!(seen["server_metadata"]["name"], "kiln");
    assert_eq!(
        seen["model_metadata"]["inputs"][0]["shape"],
        json!([-1, 1000])
    );
    assert_eq!(seen["model_metadata"]["outputs"][0]["name"], "output");
    assert_eq!(seen["model_config"]["input"][0]["data_type"], "TYPE_FP32");
    assert_eq!(seen["model_config"]["input"][0]["dims"], json!([1000]));
    let calls = seen["infer"].as_array().unwrap();
    assert_eq!(calls.len(), 4, "N = 1 and 8, JSON and binary input");
    for call in calls {
        let rows = &call["rows"];
        let n = rows.as_array().unwrap().len();
        assert!(n == 1 || n == 8);
        assert_eq!(call["model_version"], version.as_str());
        assert!(call["id"].as_str().unwrap().starts_with("req-"));
        let got: Vec<f64> = call["output"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        let want = predict_flat(&server, rows).await;
        assert_eq!(got.len(), n);
        for (g, w) in got.iter().zip(&want) {
            assert!(close(*g, *w), "tritonclient {g} vs /predict {w}");
        }
    }
    server.stop().await.unwrap();
}

/// Uploads the seed MLP as the first version of the named model `name`.
async fn upload_seed(server: &Server, name: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let form = common::import_form(
        &common::data("seed_mlp.safetensors"),
        std::fs::read(root.join("config/models/seed-mlp.toml")).unwrap(),
        "model.toml",
    );
    let r = server
        .client
        .post(server.url(&format!("/models/{name}/versions")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_triton_client_drives_named_models_and_the_repository() {
    let python =
        tokio::task::spawn_blocking(|| python_env("tritonclient", &["tritonclient[http]==2.73.0"]))
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed_small_model(dir.path(), 3);
    let server = Server::start(test_config(dir.path())).await;
    for name in ["fraud", "churn"] {
        upload_seed(&server, name).await;
    }
    let addr = server.base.trim_start_matches("http://").to_string();
    let seen = common::run_python(
        python,
        "triton_repository.py",
        vec![addr, "fraud".into(), "churn".into(), "1000".into()],
    )
    .await;
    let state = |index: &Value, name: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["state"].clone())
    };
    for name in ["kiln", "fraud", "churn"] {
        assert_eq!(state(&seen["index"], name), Some(json!("READY")), "{seen}");
    }
    let after = &seen["after_unload"];
    assert_eq!(
        state(&after["index"], "fraud"),
        Some(json!("UNAVAILABLE")),
        "{seen}"
    );
    assert_eq!(after["ready"], false, "{seen}");
    assert_eq!(seen["first_ready"], true, "{seen}");
    assert_eq!(seen["second_ready"], true, "{seen}");
    // Each answers what its own /predict does.
    for name in ["fraud", "churn"] {
        let want: Value = server
            .client
            .post(server.url(&format!("/models/{name}/predict")))
            .json(&json!({"instances": seen["rows"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = if name == "fraud" { "first" } else { "second" };
        let got = &seen[key];
        assert_eq!(got["model_version"], "v1", "{seen}");
        let got: Vec<f64> = got["output"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        let want: Vec<f64> = want["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            assert!(close(*g, *w), "{name}: tritonclient {g} vs /predict {w}");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kserves_own_client_works_unchanged() {
    let python = tokio::task::spawn_blocking(|| python_env("kserve", &["kserve==0.21.0"]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.training.data_dir = common::data("");
    // The default model: an iris classifier (label and probabilities outputs);
    // `fraud`, a named model trained on iris through its own route.
    let server = Server::start(config).await;
    let r = server
        .client
        .post(server.url("/models/fraud/train"))
        .json(&json!({"dataset": {"path": "iris.csv"}, "epochs": 30, "seed": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job = common::wait_job(&server, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    for (name, predict) in [("kiln", "/predict"), ("fraud", "/models/fraud/predict")] {
        let seen = common::run_python(
            python.clone(),
            "kserve_client.py",
            vec![server.base.clone(), name.into(), "4".into()],
        )
        .await;
        assert_eq!(seen["live"], true);
        assert_eq!(seen["ready"], true);
        assert_eq!(seen["model_ready"], true, "{name}");
        let serving = if name == "kiln" {
            common::get(&server, "/health/ready").await["model_version"].clone()
        } else {
            common::get(&server, "/models/fraud/versions").await["active"].clone()
        };
        let calls = seen["infer"].as_array().unwrap();
        assert_eq!(calls.len(), 4, "N = 1 and 5, JSON and binary input");
        for call in calls {
            let rows = &call["rows"];
            let n = rows.as_array().unwrap().len();
            assert!(call["id"].as_str().unwrap().starts_with("kserve-"));
            // (kserve's InferResponse drops model_version; the header carries it.)
            assert_eq!(call["header_version"], serving, "{name}");
            let labels = call["outputs"]["label"].as_array().unwrap();
            let probabilities = call["outputs"]["probabilities"].as_array().unwrap();
            assert_eq!(labels.len(), n);
            assert_eq!(probabilities.len(), n);
            let want: Value = common::post(&server, predict, json!({ "instances": rows }))
                .await
                .json()
                .await
                .unwrap();
            for (i, p) in want["predictions"].as_array().unwrap().iter().enumerate() {
                assert_eq!(labels[i], p["label"], "{name} row {i}");
                let got: Vec<f64> = probabilities[i]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let expected: Vec<f64> = p["probabilities"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                assert_eq!(got.len(), expected.len());
                for (g, w) in got.iter().zip(&expected) {
                    assert!(close(*g, *w), "{name}: kserve {g} vs /predict {w}");
                }
            }
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_mismatch() {
    let python =
        tokio::task::spawn_blocking(|| python_env("schemathesis", &["schemathesis==4.32.5"]))
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed_small_model(dir.path(), 3);
    seed_small_model(dir.path(), 3);
    let mut config = test_config(dir.path());
    config.training.data_dir = common::data("");
    let server = Server::start(config).await;
    let st_config = dir.path().join("schemathesis.toml");
    // Schema-valid data may still be refused for what the schema cannot state
    // (the serving model's width, an id that does not exist): 404, 409 and 422
    // count as accepted; a 400 or a 5xx does not.
    std::fs::write(
        &st_config,
        "[parameters]\n\"path.name\" = \"kiln\"\n\"path.version\" = \"v1\"\n\n\
         [checks.positive_data_acceptance]\n\
         expected-statuses = [\"2xx\", \"401\", \"404\", \"409\", \"422\"]\n",
    )
    .unwrap();
    let cli = python.parent().unwrap().join("schemathesis");
    let url = server.url("/openapi.json");
    // Every check on every operation, but for OIP v2 inference: there, a shape
    // that does not match its data or the model is a 400 by the protocol, which
    // a schema cannot rule out; those two get every other check.
    let runs: [(&[&str], &str); 2] = [
        (
            &["-c", "all", "--exclude-path-regex", "/infer$"],
            "Tested: 44",
        ),
        (
            &[
                "-c",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,response_headers_conformance,\
                 negative_data_rejection,missing_required_header,unsupported_method",
                "--include-path-regex",
                "/infer$",
            ],
            "Tested: 2",
        ),
    ];
    for (checks, tested) in runs {
        let (cli, st_config, url) = (cli.clone(), st_config.clone(), url.clone());
        let checks: Vec<String> = checks.iter().map(|s| s.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(cli)
                .current_dir(std::env::temp_dir()) // schemathesis keeps a cache in its working dir
                .arg("--config-file")
                .arg(&st_config)
                .args([
                    "run",
                    &url,
                    "--seed",
                    "1",
                    "-n",
                    "40",
                    "--continue-on-failure",
                    "--request-timeout",
                    "30",
                ])
                .args(&checks)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!(
            "{}",
            text.lines()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            out.status.success(),
            "schemathesis found problems:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(tested),
            "every operation was exercised:\n{text}"
        );
    }
    // Still serving afterwards.
    let r = server
        .client
        .get(server.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await.unwrap();
}

async fn infer(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let r = server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inference_requests_get_a_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    seed_small_model(dir.path(), 3);
    let server = Server::start(test_config(dir.path())).await;
    let good = || json!({"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]});
    let with = |field: &str, value: Value| {
        let mut input = good();
        input[field] = value;
        json!({ "inputs": [input] })
    };
    let path = "/v2/models/kiln/infer";
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "shape/data mismatch",
            path,
            with("data", json!([1, 2])),
            400,
            "holds 3 elements",
        ),
        (
            "unknown datatype",
            path,
            with("datatype", json!("FP8")),
            400,
            "not supported",
        ),
        (
            "BYTES",
            path,
            with("datatype", json!("BYTES")),
            400,
            "not supported",
        ),
        ("missing inputs", path, json!({}), 400, "inputs"),
        (
            "no inputs",
            path,
            json!({"inputs": []}),
            400,
            "exactly one input",
        ),
        (
            "two inputs",
            path,
            json!({"inputs": [good(), good()]}),
            400,
            "exactly one input",
        ),
        (
            "wrong input name",
            path,
            with("name", json!("pixels")),
            400,
            "unknown input",
        ),
        (
            "wrong width",
            path,
            with("shape", json!([1, 4])),
            400,
            "expects 3",
        ),
        (
            "zero dim",
            path,
            with("shape", json!([0, 3])),
            400,
            "not positive",
        ),
        (
            "negative dim",
            path,
            with("shape", json!([-1, 3])),
            400,
            "not positive",
        ),
        (
            "huge shape, little data",
            path,
            with("shape", json!([100000000, 3])),
            400,
            "holds",
        ),
        (
            "absurd shape",
            path,
            with("shape", json!([9007199254740991i64, 3])),
            400,
            "too large",
        ),
        (
            "rank 3",
            path,
            with("shape", json!([1, 1, 3])),
            400,
            "must be",
        ),
        (
            "text data",
            path,
            with("data", json!(["a", "b", "c"])),
            400,
            "invalid",
        ),
        (
            "no data",
            path,
            json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32"}]}),
            400,
            "no data",
        ),
        (
            "unknown output",
            path,
            json!({"inputs": [good()], "outputs": [{"name": "logits"}]}),
            400,
            "unknown output",
        ),
        (
            "body names another model",
            path,
            json!({"model_name": "other", "inputs": [good()]}),
            400,
            "the body names model",
        ),
        (
            "body names another version",
            "/v2/models/kiln/versions/v1/infer",
            json!({"model_version": "v7", "inputs": [good()]}),
            400,
            "the body names version",
        ),
        (
            "unknown model",
            "/v2/models/other/infer",
            json!({"inputs": [good()]}),
            404,
            "no model",
        ),
        (
            "unknown version",
            "/v2/models/kiln/versions/v42/infer",
            json!({"inputs": [good()]}),
            404,
            "no version",
        ),
        (
            "bad version name",
            "/v2/models/kiln/versions/..%2F/infer",
            json!({"inputs": [good()]}),
            404,
            "no version",
        ),
    ];
    for (name, path, body, want, text) in cases {
        let (status, body) = infer(&server, path, body).await;
        assert_eq!(status, want, "{name}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(text),
            "{name}: {error:?} should mention {text:?}"
        );
        let (ok, _) = infer(
            &server,
            "/v2/models/kiln/infer",
            json!({"inputs": [good()]}),
        )
        .await;
        assert_eq!(ok, 200, "still serving after {name}");
    }
    // KServe's InferenceRESTClient sends model_name (and extension fields some
    // clients add are ignored): answered, with the serving version in a header.
    let r = server
        .client
        .post(server.url(path))
        .json(&json!({"id": "k-1", "model_name": "kiln", "inputs": [good()], "x-extension": {"a": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let header = r.headers()["x-model-version"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["model_version"], header.as_str());
    assert_eq!(body["id"], "k-1");
    // Every refused v2 request above counted in kiln_rejected_total.
    let rejected = server
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("kiln_rejected_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(rejected >= 15.0, "{rejected} rejections counted");
    // Not JSON at all, and a binary header that does not match the body.
    let r = server
        .client
        .post(server.url(path))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = server
        .client
        .post(server.url(path))
        .header("inference-header-content-length", "9999")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    for path in [
        "/v2/models/other",
        "/v2/models/other/ready",
        "/v2/models/kiln/versions/v9",
        "/v2/models/kiln/versions/v9/ready",
    ] {
        let r = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_metadata_binary_tensors_and_docs() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = seed_small_model(dir.path(), 3); // v1
    let v2 = seed_small_model(dir.path(), 3); // v2, active
    let server = Server::start(test_config(dir.path())).await;
    let x = [0.5f32, -1.0, 2.0];
    let input = json!({"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [x]});
    let get = |path: &'static str| server.client.get(server.url(path)).send();

    // Unversioned: the active version; versioned: exactly that version.
    for (path, model, version) in [
        ("/v2/models/kiln/infer", &v2, "v2"),
        ("/v2/models/kiln/versions/v1/infer", &v1, "v1"),
        ("/v2/models/kiln/versions/v2/infer", &v2, "v2"),
        // Triton's clients number versions: `model_version="1"` is v1.
        ("/v2/models/kiln/versions/1/infer", &v1, "v1"),
    ] {
        let (status, body) = infer(&server, path, json!({"id": "x-1", "inputs": [input]})).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["model_version"], version);
        assert_eq!(body["id"], "x-1");
        assert_eq!(body["outputs"][0]["shape"], json!([1, 2]));
        let want = model.forward(x.to_vec(), 1);
        let got = body["outputs"][0]["data"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{path}: {body}");
        for (g, w) in got.iter().zip(&want) {
            assert!(close(g.as_f64().unwrap(), f64::from(*w)), "{path}");
        }
    }

    // The binary tensor extension: JSON header, then little-endian FP32 data.
    let (status, b) = common::infer_binary(&server, &[1, 3], &x).await;
    assert_eq!(status, 200, "{b}");
    let want = v2.forward(x.to_vec(), 1);
    assert!(close(
        b["outputs"][0]["data"][0].as_f64().unwrap(),
        f64::from(want[0])
    ));

    // Metadata and readiness.
    let meta: Value = get("/v2/models/kiln").await.unwrap().json().await.unwrap();
    assert_eq!(meta["versions"], json!(["v1", "v2"]));
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 3]));
    assert_eq!(
        get("/v2/models/kiln/versions/v1/ready")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get("/v2/health/ready").await.unwrap().status(), 200);
    let config: Value = get("/v2/models/kiln/config")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["max_batch_size"], 1024);
    assert_eq!(config["output"][0]["dims"], json!([2]));

    // A classifier adds the probabilities tensor next to the labels.
    let cls = tempfile::tempdir().unwrap();
    let server2 = Server::start(test_config(cls.path())).await; // the default iris model
    let (status, body) = infer(
        &server2,
        "/v2/models/kiln/infer",
        json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64",
            "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["name"], "label");
    assert_eq!(body["outputs"][0]["data"], json!(["setosa", "virginica"]));
    assert_eq!(body["outputs"][1]["name"], "probabilities");
    assert_eq!(body["outputs"][1]["shape"], json!([2, 3]));
    // A label per row: dims [1] reshaped to none, so [-1] in full as the metadata says.
    let get2 = |path: &'static str| {
        let req = server2.client.get(server2.url(path));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let config = get2("/v2/models/kiln/config").await;
    assert_eq!(config["output"][0]["dims"], json!([1]), "{config}");
    assert_eq!(
        config["output"][0]["reshape"]["shape"],
        json!([]),
        "{config}"
    );
    let meta = get2("/v2/models/kiln").await;
    assert_eq!(meta["outputs"][0]["shape"], json!([-1]), "{meta}");
    server2.stop().await.unwrap();

    // The OpenAPI document covers every route, and Swagger UI is served locally.
    let doc: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/predict",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/train",
        "/train/{id}",
        "/models",
        "/models/rollback",
        "/models/{version}",
        "/models/{version}/promote",
        "/models/{name}/predict",
        "/models/{name}/explain",
        "/models/{name}/versions",
        "/models/{name}/versions/{version}/promote",
        "/v2/repository/index",
        "/models/{name}/feedback",
        "/models/{name}/monitoring",
        "/models/{name}/versions/{version}/canary",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/config",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
        "/openapi.json",
        "/docs",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    let html = get("/docs").await.unwrap().text().await.unwrap();
    assert!(html.contains("/docs/swagger-ui-bundle.js") && html.contains("/openapi.json"));
    let js = get("/docs/swagger-ui-bundle.js").await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.bytes().await.unwrap().len() > 100_000);
    server.stop().await.unwrap();
}

/// Unversioned OIP v2 answers under promotions every 10 ms between a regression
/// model and a classifier: each answer is shaped by the version that computed it
/// (names, shapes, labels), never by the one active at admission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_answers_follow_the_version_that_computed_them_under_promotions() {
    let dir = tempfile::tempdir().unwrap();
    seed_small_model(dir.path(), 4); // v1: regression, 2 outputs
    let mut config = test_config(dir.path());
    config.training.data_dir = common::data("");
    let server = Server::start(config).await;
    let id = common::submit(
        &server,
        json!({"dataset": {"path": "iris.csv"}, "epochs": 5, "promote": "never"}),
    )
    .await;
    let job = common::wait_job(&server, &id).await;
    assert_eq!(job["version"], "v2", "{job}"); // a classifier
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = tokio::spawn({
        let (client, base, stop) = (server.client.clone(), server.base.clone(), stop.clone());
        async move {
            let mut flips = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let v = if flips % 2 == 0 { "v2" } else { "v1" };
                let r = client
                    .post(format!("{base}/models/{v}/promote"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                flips += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            flips
        }
    });
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(3) {
        let r = common::post(
            &server,
            "/v2/models/kiln/infer",
            json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let header = r.headers()["x-model-version"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["model_version"], header.as_str());
        let names: Vec<&str> = body["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        match header.as_str() {
            "v1" => {
                assert_eq!(names, ["output"], "{body}");
                assert_eq!(body["outputs"][0]["shape"], json!([1, 2]), "{body}");
            }
            "v2" => {
                assert_eq!(names, ["label", "probabilities"], "{body}");
                assert_eq!(body["outputs"][1]["shape"], json!([1, 3]), "{body}");
            }
            other => panic!("unexpected version {other}"),
        }
        *seen.entry(header).or_default() += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.await.unwrap();
    assert!(flips > 20, "{flips} promotions");
    assert!(seen.len() == 2, "both versions answered: {seen:?}");
    server.stop().await.unwrap();
}
