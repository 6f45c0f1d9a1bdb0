//! Named models beside the default one: created by a first upload under a new
//! name, each answering with its own weights (checked against PyTorch's reference
//! outputs), listed, promoted, served over OIP v2, apart from the default model's
//! versions, bounded by `model.max_models`, created once under concurrent first
//! uploads, and back after a restart on the same store. Bad and unknown names get
//! their 4xx.

use std::path::Path;

use crate::common::{Server, data, get, import_form, post, seed_small_model, test_config};
use serde_json::{Value, json};

pub(super) async fn upload(server: &Server, name: &str, config: &[u8]) -> reqwest::Response {
    let (weights, config_name) = if config.starts_with(b"{") {
        (data("pytorch/linear.pt"), "model.json")
    } else {
        (data("seed_mlp.safetensors"), "model.toml")
    };
    let form = import_form(&weights, config.to_vec(), config_name);
    let url = server.url(&format!("/models/{name}/versions"));
    server
        .client
        .post(url)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

pub(super) async fn predict(server: &Server, path: &str, instances: Value) -> (u16, Value) {
    let r = post(server, path, json!({ "instances": instances })).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

pub(super) async fn index(server: &Server) -> Value {
    post(server, "/v2/repository/index", json!(null))
        .await
        .json()
        .await
        .unwrap()
}

fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(numbers).collect(),
        n => vec![n.as_f64().unwrap()],
    }
}

fn close(got: &Value, want: &Value, what: &str) {
    let (g, w) = (numbers(got), numbers(want));
    assert_eq!(g.len(), w.len(), "{what}: {got} vs {want}");
    let near = g.iter().zip(&w).all(|(g, w)| (g - w).abs() <= 1e-4);
    assert!(near, "{what}: {got} vs {want}");
}

/// The PyTorch `linear.pt` fixture's config (JSON), inputs and outputs.
fn linear_fixture() -> (Vec<u8>, Value, Value) {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(data("pytorch/reference.json")).unwrap()).unwrap();
    let r = &reference["linear.pt"];
    let config = json!({
        "task": "regression",
        "architecture": {"kind": "sequential", "input_shape": r["input_shape"], "layers": r["layers"]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    (config, r["input"].clone(), r["output"].clone())
}

/// The seed MLP's config (TOML) and its reference answer to a row of ones.
pub(super) fn seed_config() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read(root.join("config/models/seed-mlp.toml")).unwrap()
}

/// Checks that `name` answers as `linear.pt` does.
async fn answers_as_linear(server: &Server, name: &str) {
    let (_, inputs, outputs) = linear_fixture();
    let (code, body) = predict(server, &format!("/models/{name}/predict"), inputs).await;
    assert_eq!(code, 200, "{body}");
    close(&body["predictions"], &outputs, name);
}

/// Checks that `name` answers as the seed MLP does.
pub(super) async fn answers_as_seed(server: &Server, name: &str) {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(data("seed_mlp.reference.json")).unwrap()).unwrap();
    let path = format!("/models/{name}/predict");
    let (code, body) = predict(server, &path, json!([vec![1.0; 1000]])).await;
    assert_eq!(code, 200, "{body}");
    close(
        &body["predictions"],
        &json!([reference["outputs"]["ones"]]),
        name,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_models_serve_their_own_weights_beside_the_default_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let default = seed_small_model(&store, 4);
    let server = Server::start(test_config(&store)).await;

    let (linear, inputs, outputs) = linear_fixture();
    let r = upload(&server, "fraud", &linear).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"version": "v1", "active": true})
    );
    let r = upload(&server, "churn", &seed_config()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    answers_as_linear(&server, "fraud").await;
    answers_as_seed(&server, "churn").await;

    // The default model answers as before, by its routes and by its name.
    let want = default.forward(vec![0.5, -1.0, 2.0, 0.25], 1);
    for path in ["/predict", "/models/kiln/predict"] {
        let (code, body) = predict(&server, path, json!([[0.5, -1.0, 2.0, 0.25]])).await;
        assert_eq!(code, 200, "{path}: {body}");
        close(&body["predictions"], &json!([want]), path);
    }

    // Listed, each with versions of its own.
    let list = get(&server, "/models").await;
    assert_eq!(list["models"], json!(["kiln", "churn", "fraud"]), "{list}");
    assert_eq!(
        list["versions"].as_array().unwrap().len(),
        1,
        "the default's own: {list}"
    );
    let fraud = get(&server, "/models/fraud/versions").await;
    assert_eq!(fraud["active"], "v1", "{fraud}");
    assert_eq!(fraud["versions"][0]["inputs"], 2, "{fraud}");
    let ready = |name: &str| json!({"name": name, "version": "v1", "state": "READY"});
    assert_eq!(
        index(&server).await,
        json!([ready("kiln"), ready("churn"), ready("fraud")])
    );

    // Each model's series under its own label, in one valid exposition.
    let m = server.metrics().await;
    for model in ["kiln", "churn", "fraud"] {
        let info = format!("kiln_model_info{{model=\"{model}\",version=\"v1\"}} 1");
        assert!(m.contains(&info), "{info} missing:\n{m}");
    }
    assert_eq!(m.matches("# TYPE kiln_model_info gauge").count(), 1);
    crate::common::promtool_check_metrics(&m);

    // OIP v2 by name.
    let flat = numbers(&inputs);
    let tensor = json!({"name": "input", "shape": [2, 2], "datatype": "FP32", "data": flat});
    let r = post(
        &server,
        "/v2/models/fraud/infer",
        json!({ "inputs": [tensor] }),
    )
    .await;
    let infer: Value = r.json().await.unwrap();
    close(&infer["outputs"][0]["data"], &outputs, "fraud over OIP v2");
    assert_eq!(infer["model_name"], "fraud", "{infer}");

    // A second version, then promoted.
    let r = upload(&server, "fraud", &linear).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"version": "v2", "active": false})
    );
    let r = post(&server, "/models/fraud/versions/v2/promote", json!(null)).await;
    assert_eq!(r.status(), 200);
    let (_, body) = predict(&server, "/models/fraud/predict", json!([[0.1, 0.2]])).await;
    assert_eq!(body["model_version"], "v2", "{body}");
    let r = post(&server, "/models/fraud/versions/v9/promote", json!(null)).await;
    assert_eq!(r.status(), 404);

    // Names: a version id, capitals, a dot; and a model no one made.
    for bad in ["v3", "Fraud", "a.b", &"x".repeat(65)] {
        let r = upload(&server, bad, &linear).await;
        assert_eq!(r.status(), 422, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("not a model name"),
            "{body}"
        );
    }
    let (code, body) = predict(&server, "/models/nobody/predict", json!([[1.0, 2.0]])).await;
    assert_eq!(code, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nobody"), "{body}");
    // A bad upload under a new name creates nothing: a config that does not
    // parse, or weights that do not fit it.
    let r = upload(&server, "broken", b"{not json").await;
    assert_eq!(r.status(), 422);
    let form = import_form(&data("seed_mlp.safetensors"), linear.clone(), "model.json");
    let url = server.url("/models/misfit/versions");
    let r = server
        .client
        .post(url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
    assert_eq!(
        get(&server, "/models").await["models"],
        json!(["kiln", "churn", "fraud"])
    );
    server.stop().await.unwrap();
    assert!(store.join("models/fraud/versions/v2").is_dir());

    // After a restart on the same store, every model serves again.
    let server = Server::start(test_config(&store)).await;
    for _ in 0..200 {
        let all = index(&server).await;
        let all = all.as_array().unwrap();
        if all.len() == 3 && all.iter().all(|m| m["state"] == "READY") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, body) = predict(&server, "/models/fraud/predict", json!([[0.1, 0.2]])).await;
    assert_eq!(body["model_version"], "v2", "{body}");
    answers_as_linear(&server, "fraud").await;
    answers_as_seed(&server, "churn").await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_models_are_bounded_and_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seed_small_model(&store, 4);
    let mut config = test_config(&store);
    config.model.max_models = 2;
    config.server.max_upload_bytes = 256 * 1024;
    let server = Server::start(config).await;
    let (linear, _, _) = linear_fixture();

    // An upload over server.max_upload_bytes (the seed MLP's 2 MB) creates nothing.
    // The server answers 413 as soon as the limit is passed and closes the
    // connection, so the client may see the 413 or a broken pipe while sending.
    let form = import_form(&data("seed_mlp.safetensors"), seed_config(), "model.toml");
    let sent = server
        .client
        .post(server.url("/models/huge/versions"))
        .multipart(form)
        .send()
        .await;
    match sent {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    assert_eq!(get(&server, "/models").await["models"], json!(["kiln"]));

    // Four first uploads under one new name at once: one model. Imports run one
    // at a time, so the others may be told to come back (429).
    let uploads = (0..4).map(|_| upload(&server, "twin", &linear));
    let codes: Vec<u16> = futures::future::join_all(uploads)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(codes.iter().all(|c| *c == 201 || *c == 429), "{codes:?}");
    let created = codes.iter().filter(|c| **c == 201).count();
    assert!(created >= 1, "{codes:?}");
    let twin = get(&server, "/models/twin/versions").await;
    assert_eq!(
        twin["versions"].as_array().unwrap().len(),
        created,
        "{twin}"
    );
    assert_eq!(twin["active"], "v1", "{twin}");
    let dirs = std::fs::read_dir(store.join("models")).unwrap();
    assert_eq!(
        dirs.filter(|e| e.as_ref().unwrap().path().is_dir()).count(),
        1
    );

    assert_eq!(upload(&server, "second", &linear).await.status(), 201);
    let r = upload(&server, "third", &linear).await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("model.max_models"),
        "{body}"
    );
    // A model that exists still takes new versions at the bound.
    assert_eq!(upload(&server, "second", &linear).await.status(), 201);
    answers_as_linear(&server, "twin").await;
    answers_as_linear(&server, "second").await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_labels_past_the_bound_are_summed_under_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seed_small_model(&store, 4);
    let mut config = test_config(&store);
    config.metrics.max_models = 2;
    let server = Server::start(config).await;
    let (linear, _, _) = linear_fixture();
    for name in ["a1", "b2", "c3"] {
        assert_eq!(upload(&server, name, &linear).await.status(), 201);
    }
    let m = server.metrics().await;
    for shown in [
        "kiln_model_info{model=\"kiln\",version=\"v1\"} 1",
        "kiln_model_info{model=\"a1\",version=\"v1\"} 1",
        // b2 and c3 both serve v1.
        "kiln_model_info{model=\"_other\",version=\"v1\"} 2",
    ] {
        assert!(m.contains(shown), "{shown} missing:\n{m}");
    }
    assert!(
        !m.contains("model=\"b2\"") && !m.contains("model=\"c3\""),
        "{m}"
    );
    crate::common::promtool_check_metrics(&m);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_models_take_feedback_and_routes_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seed_small_model(&store, 4);
    let mut config = test_config(&store);
    config.monitoring.sample_rate = 1.0;
    let server = Server::start(config).await;
    assert_eq!(upload(&server, "churn", &seed_config()).await.status(), 201);

    let rows: Vec<Vec<f64>> = (0..3)
        .map(|k| {
            (0..1000)
                .map(|i| ((i * (k + 1)) % 7) as f64 / 7.0)
                .collect()
        })
        .collect();
    let (code, answer) = predict(&server, "/models/churn/predict", json!(rows)).await;
    assert_eq!(code, 200, "{answer}");
    let items: Vec<Value> = answer["prediction_ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(answer["predictions"].as_array().unwrap())
        .map(|(id, p)| json!({"prediction_id": id, "target": p.as_f64().unwrap() + 0.5}))
        .collect();
    // The default model never answered these: its feedback route does not know them.
    let r = post(&server, "/feedback", json!({ "items": items.clone() })).await;
    assert_eq!(r.status(), 422);
    let r = post(&server, "/models/churn/feedback", json!({ "items": items })).await;
    assert_eq!(r.status(), 200);
    let kept: Value = r.json().await.unwrap();
    assert_eq!(kept["accepted"], 3, "{kept}");
    assert_eq!(
        kept["joined"].as_u64().unwrap() + kept["remembered"].as_u64().unwrap(),
        3,
        "{kept}"
    );
    let churn = get(&server, "/models/churn/monitoring").await;
    assert_eq!(churn["versions"][0]["version"], "v1", "{churn}");
    let default = get(&server, "/monitoring").await;
    assert_eq!(default["versions"], json!([]), "{default}");
    let drift = get(&server, "/models/churn/monitoring/drift").await;
    assert!(drift.is_object(), "{drift}");

    // A canary of the model's own second version takes every unpinned request.
    assert_eq!(upload(&server, "churn", &seed_config()).await.status(), 201);
    let set = |p: u32| {
        post(
            &server,
            "/models/churn/versions/v2/canary",
            json!({ "percent": p }),
        )
    };
    assert_eq!(set(100).await.status(), 200);
    let (_, body) = predict(&server, "/models/churn/predict", json!([vec![1.0; 1000]])).await;
    assert_eq!(body["model_version"], "v2", "{body}");
    assert_eq!(
        get(&server, "/models/churn/monitoring").await["canary"]["version"],
        "v2"
    );
    assert_eq!(set(0).await.status(), 200);
    let (_, body) = predict(&server, "/models/churn/predict", json!([vec![1.0; 1000]])).await;
    assert_eq!(body["model_version"], "v1", "{body}");
    let r = post(&server, "/models/nobody/feedback", json!({ "items": [] })).await;
    assert_eq!(r.status(), 404);

    // Explanations of the model's own answers: attributions that add up to the
    // answer less the baseline's (integrated gradients).
    let body = json!({ "instances": [vec![1.0; 1000]], "method": "integrated_gradients" });
    let r = post(&server, "/models/churn/explain", body).await;
    assert_eq!(r.status(), 200);
    let explained: Value = r.json().await.unwrap();
    assert_eq!(explained["model_version"], "v1", "{explained}");
    let e = &explained["explanations"][0];
    let sum: f64 = numbers(&e["attributions"]).iter().sum();
    let (out, base) = (numbers(&e["output"])[0], numbers(&e["baseline_output"])[0]);
    assert!(
        (sum - (out - base)).abs() <= 0.05 * (out - base).abs().max(1.0),
        "{e}"
    );
    server.stop().await.unwrap();
}
