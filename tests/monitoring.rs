//! The prediction log, feedback and live quality, against the real server: ids in
//! every answer, labels joined to logged predictions, the quality they give, and
//! every bad label refused with a 422 that keeps nothing.

/// The closed loop's audit defects in the feedback path.
#[path = "monitoring/audit.rs"]
mod audit;
mod common;

use common::{Server, post, test_config};
use serde_json::{Value, json};

const SPECIES: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// The bundled iris rows with their species names.
fn iris() -> Vec<(Vec<f32>, &'static str)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/iris.csv"
    ))
    .unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let (values, species) = line.rsplit_once(',').unwrap();
            let v: Vec<f32> = values.split(',').map(|x| x.parse().unwrap()).collect();
            let name = SPECIES.iter().find(|s| **s == species).unwrap();
            (v, *name)
        })
        .collect()
}

async fn monitored(sample_rate: f64, max_log_bytes: u64) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.training.data_dir = common::data("");
    config.monitoring.sample_rate = sample_rate;
    config.monitoring.flush_interval_ms = 50;
    config.monitoring.segment_bytes = 4096;
    config.monitoring.max_log_bytes = max_log_bytes;
    (Server::start(config).await, dir)
}

#[tokio::test]
async fn labels_join_logged_predictions_and_score_live_accuracy() {
    let (server, dir) = monitored(1.0, 1 << 20).await;
    let rows = iris();
    let mut items = Vec::new();
    let mut correct = 0;
    for chunk in rows.chunks(10) {
        let instances: Vec<&Vec<f32>> = chunk.iter().map(|(x, _)| x).collect();
        let r = server.predict(&json!(instances)).await;
        assert_eq!(r.status(), 200);
        let header = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        let ids = body["prediction_ids"].as_array().unwrap();
        assert_eq!(ids.len(), chunk.len());
        assert_eq!(
            ids[0],
            header.as_str(),
            "the header names the first instance"
        );
        for ((id, prediction), (_, species)) in ids
            .iter()
            .zip(body["predictions"].as_array().unwrap())
            .zip(chunk)
        {
            correct += usize::from(prediction["label"] == *species);
            items.push(json!({"prediction_id": id, "target": species}));
        }
    }
    let all: std::collections::HashSet<_> = items
        .iter()
        .map(|i| i["prediction_id"].to_string())
        .collect();
    assert_eq!(all.len(), rows.len(), "every instance has its own id");
    // Sent at once, right after answering: the log writer is asked to flush.
    let r = post(&server, "/feedback", json!({ "items": items })).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], rows.len());
    assert_eq!(body["joined"], rows.len());
    let report = common::get(&server, "/monitoring").await;
    let v = &report["versions"][0];
    assert_eq!(v["version"], "v1", "{report}");
    assert_eq!(v["labelled"], rows.len());
    let expected = correct as f64 / rows.len() as f64;
    assert!(
        (v["accuracy"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{report} vs {expected}"
    );
    assert!(
        expected > 0.9,
        "the default model is a good iris classifier: {expected}"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("kiln_live_quality{metric=\"accuracy\",model=\"kiln\",version=\"v1\"}"),
        "{metrics}"
    );
    assert_eq!(
        common::sample(&metrics, "kiln_feedback_rows_total{model=\"kiln\"}"),
        rows.len() as f64
    );
    // Labelled rows are kept in the store for retraining.
    assert!(
        std::fs::read_dir(dir.path().join("feedback"))
            .unwrap()
            .count()
            >= 1
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_feedback_is_a_422_and_keeps_nothing() {
    let (server, _dir) = monitored(1.0, 1 << 20).await;
    let r = server.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
    let body: Value = r.json().await.unwrap();
    let id = body["prediction_ids"][0].as_str().unwrap().to_string();
    // A well-formed id kiln never made (a v7 UUID from 2020).
    let unknown = "01700000-0000-7000-8000-000000000000";
    let cases = [
        (json!({"items": []}), 422, "items"),
        (
            json!({"items": [{"prediction_id": "nope", "target": "setosa"}]}),
            422,
            "prediction id",
        ),
        (
            json!({"items": [{"prediction_id": "y".repeat(100_000), "target": "setosa"}]}),
            422,
            "prediction id",
        ),
        (
            json!({"items": [{"prediction_id": &id, "target": "z".repeat(100_000)}]}),
            422,
            "classes",
        ),
        (
            json!({"items": [{"prediction_id": uuid_v4(), "target": "setosa"}]}),
            422,
            "kiln made",
        ),
        (
            json!({"items": [{"prediction_id": unknown, "target": "setosa"}]}),
            422,
            "instance",
        ),
        (
            json!({"items": [{"prediction_id": &id, "target": "dragon"}]}),
            422,
            "classes",
        ),
        (
            json!({"items": [{"prediction_id": &id, "target": 3.5}]}),
            422,
            "classes",
        ),
        (
            json!({"items": [{"prediction_id": &id, "target": "setosa"}, {"prediction_id": unknown, "instance": [1, 2], "target": "setosa"}]}),
            422,
            "items[1]",
        ),
        (
            json!({"items": [{"prediction_id": unknown, "instance": [1e39, 0, 0, 0], "target": "setosa"}]}),
            422,
            "items[0]",
        ),
        (json!({"items": [{"prediction_id": &id}]}), 422, "target"),
        (
            json!({"items": [{"prediction_id": &id, "target": "setosa", "extra": 1}]}),
            422,
            "extra",
        ),
    ];
    for (body, status, needle) in cases {
        let r = post(&server, "/feedback", body.clone()).await;
        let got = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(got, status, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(needle), "{body} -> {error}");
        assert!(
            error.len() < 400,
            "the error quotes the client: {} bytes",
            error.len()
        );
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"prediction_id": &id, "target": "setosa"}))
        .collect();
    let r = post(&server, "/feedback", json!({ "items": too_many })).await;
    assert_eq!(r.status(), 413);
    let report = common::get(&server, "/monitoring").await;
    assert_eq!(report["versions"], json!([]), "nothing was kept: {report}");
    // An unsampled prediction is labelled with its instance.
    let r = post(
        &server,
        "/feedback",
        json!({"items": [{"prediction_id": unknown, "instance": [5.1, 3.5, 1.4, 0.2], "target": "setosa"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"accepted": 1, "joined": 0, "remembered": 0}));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn feedback_needs_the_token_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.auth.token = Some("s3cret".into());
    let server = Server::start(config).await;
    for (path, body) in [
        ("/feedback", json!({"items": []})),
        ("/models/v1/canary", json!({"percent": 10})),
        ("/models/v1/shadow", json!({"percent": 10})),
    ] {
        assert_eq!(post(&server, path, body).await.status(), 401, "{path}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_log_stays_within_its_bound() {
    let (server, dir) = monitored(1.0, 16 * 1024).await;
    let row = [5.1, 3.5, 1.4, 0.2];
    for _ in 0..200 {
        let r = server.predict(&json!(vec![row; 8])).await;
        assert_eq!(r.status(), 200);
    }
    // The log's entries are queued after each answer: wait until the writer has
    // accounted for every one.
    let log = |metrics: &str, outcome: &str| {
        common::sample(
            metrics,
            &format!("kiln_prediction_log_entries_total{{model=\"kiln\",outcome=\"{outcome}\"}}"),
        )
    };
    let metrics = server
        .metrics_until(|m| log(m, "written") + log(m, "dropped") >= 1600.0)
        .await;
    let (written, dropped) = (log(&metrics, "written"), log(&metrics, "dropped"));
    assert_eq!(written + dropped, 1600.0, "{metrics}");
    assert!(written > 0.0);
    let bytes: u64 = std::fs::read_dir(dir.path().join("predictions"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(bytes > 0 && bytes <= 16 * 1024, "{bytes} bytes on disk");
    assert!(common::sample(&metrics, "kiln_prediction_log_bytes{model=\"kiln\"}") <= 16.0 * 1024.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sample_rate_zero_logs_nothing_but_answers_carry_ids() {
    let (server, dir) = monitored(0.0, 1 << 20).await;
    let r = server.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
    assert!(r.headers().contains_key("x-prediction-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["prediction_ids"].as_array().unwrap().len(), 1);
    // OIP v2 answers carry theirs in `parameters`.
    let r = post(
        &server,
        "/v2/models/kiln/infer",
        json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2, 6.0, 3.0, 4.8, 1.8]}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let header = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    let ids = body["parameters"]["prediction_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2, "{body}");
    assert_eq!(ids[0], header.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!dir.path().join("predictions").exists());
    server.stop().await.unwrap();
}

fn uuid_v4() -> String {
    // Version nibble 4: a UUID, but not one of kiln's prediction ids.
    "9f1c2a3b-4d5e-4f60-8a7b-0c1d2e3f4a5b".into()
}

/// The default iris model (v1, active) and a second version (v2, not promoted).
async fn two_versions() -> (Server, tempfile::TempDir) {
    let (server, dir) = monitored(1.0, 1 << 20).await;
    let id = common::submit(
        &server,
        json!({"dataset": {"path": "iris.csv"}, "model": {"hidden": [8]}, "epochs": 30, "promote": "never"}),
    )
    .await;
    let job = common::wait_job(&server, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["version"], "v2");
    (server, dir)
}

/// The answer without its per-request ids.
fn answer(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("prediction_ids");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_percent_canary_serves_a_tenth_and_names_itself() {
    let (server, _dir) = two_versions().await;
    let r = post(&server, "/models/v2/canary", json!({"percent": 10})).await;
    assert_eq!(r.status(), 200);
    for (path, body, status) in [
        ("/models/v1/canary", json!({"percent": 10}), 409),
        ("/models/v2/canary", json!({"percent": 150}), 422),
        ("/models/v2/canary", json!({"percent": -1}), 422),
        ("/models/v9/canary", json!({"percent": 10}), 404),
        ("/models/v2/shadow", json!({"share": 10}), 422),
    ] {
        assert_eq!(post(&server, path, body).await.status(), status, "{path}");
    }
    let mut by_version = std::collections::HashMap::<String, usize>::new();
    for _ in 0..100 {
        let answers = futures_join(&server, 50).await;
        for (header, body) in answers {
            assert_eq!(body["model_version"], header.as_str());
            *by_version.entry(header).or_default() += 1;
        }
    }
    let canary = by_version.get("v2").copied().unwrap_or(0);
    let share = canary as f64 / 5000.0;
    assert!((0.07..=0.13).contains(&share), "{by_version:?}");
    let report = common::get(&server, "/monitoring").await;
    assert_eq!(report["canary"], json!({"version": "v2", "percent": 10.0}));
    let r = post(&server, "/models/v2/canary", json!({"percent": 0})).await;
    assert_eq!(r.status(), 200);
    let answers = futures_join(&server, 50).await;
    assert!(answers.iter().all(|(v, _)| v == "v1"));
    server.stop().await.unwrap();
}

/// `n` concurrent one-instance predictions: (x-model-version, body).
async fn futures_join(server: &Server, n: usize) -> Vec<(String, Value)> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (client, url) = (server.client.clone(), server.url("/predict"));
        tasks.push(tokio::spawn(async move {
            let x = [
                5.0 + (i % 10) as f32 * 0.2,
                3.0,
                1.5 + (i % 7) as f32 * 0.7,
                0.3,
            ];
            let r = client
                .post(url)
                .json(&json!({"instances": [x]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v = r.headers()["x-model-version"].to_str().unwrap().to_string();
            (v, r.json::<Value>().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_never_changes_an_answer_and_is_compared() {
    let (server, _dir) = two_versions().await;
    let rows = iris();
    let instances: Vec<&Vec<f32>> = rows.iter().take(40).map(|(x, _)| x).collect();
    let mut without = Vec::new();
    for x in &instances {
        let body: Value = server.predict(&json!([x])).await.json().await.unwrap();
        without.push(answer(body));
    }
    let r = post(&server, "/models/v2/shadow", json!({"percent": 100})).await;
    assert_eq!(r.status(), 200);
    let mut items = Vec::new();
    for (i, x) in instances.iter().enumerate() {
        let body: Value = server.predict(&json!([x])).await.json().await.unwrap();
        items.push(json!({"prediction_id": body["prediction_ids"][0], "target": rows[i].1}));
        assert_eq!(answer(body), without[i], "the shadow changed answer {i}");
    }
    // The mirrors run after the answers: wait for them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let report = common::get(&server, "/monitoring").await;
        if report["shadow_agreement"]["compared"] == 40 {
            assert_eq!(report["shadow_agreement"]["version"], "v2");
            assert_eq!(report["shadow"], json!({"version": "v2", "percent": 100.0}));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{report}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = post(&server, "/feedback", json!({ "items": items })).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["joined"], 40);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_store_that_refuses_log_segments_stops_logging_not_serving() {
    let dir = tempfile::tempdir().unwrap();
    // The log's folder is taken by a file: every segment write fails, as on a
    // full disk.
    std::fs::write(dir.path().join("predictions"), b"in the way").unwrap();
    let mut config = test_config(dir.path());
    config.monitoring.sample_rate = 1.0;
    config.monitoring.flush_interval_ms = 20;
    let server = Server::start(config).await;
    for _ in 0..20 {
        let r = server.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
        assert_eq!(r.status(), 200);
    }
    let failed = "kiln_prediction_log_entries_total{model=\"kiln\",outcome=\"failed\"}";
    let metrics = server
        .metrics_until(|m| common::sample(m, failed) == 20.0)
        .await;
    assert_eq!(
        common::sample(
            &metrics,
            "kiln_prediction_log_entries_total{model=\"kiln\",outcome=\"written\"}"
        ),
        0.0
    );
    let r = server.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
    assert_eq!(r.status(), 200, "serving goes on");
    server.stop().await.unwrap();
}
