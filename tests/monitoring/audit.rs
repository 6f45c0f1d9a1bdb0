//! The feedback path against the audit's cases: ids from the future, a
//! prediction labelled many times.

use serde_json::{Value, json};

use super::common::post;
use super::monitored;

#[tokio::test]
async fn ids_from_the_future_are_refused_and_keep_nothing() {
    let (server, dir) = monitored(0.0, 1 << 20).await;
    // The audit's id: the largest millisecond a UUIDv7 holds.
    let future = "ffffffff-ffff-7fff-bfff-ffffffffffff";
    let items: Vec<Value> = (0..3)
        .map(|_| json!({"prediction_id": future, "instance": [5.1, 3.5, 1.4, 0.2], "target": "setosa"}))
        .collect();
    let r = post(&server, "/feedback", json!({ "items": items })).await;
    assert_eq!(r.status(), 422);
    let error = r.json::<Value>().await.unwrap()["error"].to_string();
    assert!(
        error.contains("items[0].prediction_id") && error.contains("not an id kiln made"),
        "{error}"
    );
    assert!(!dir.path().join("feedback").exists(), "nothing was kept");
    // A real id, answered now, is taken.
    let r = server.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
    let id = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
    let item = json!({"prediction_id": id, "instance": [5.1, 3.5, 1.4, 0.2], "target": "setosa"});
    let r = post(&server, "/feedback", json!({ "items": [item] })).await;
    assert_eq!(r.status(), 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_prediction_labelled_a_thousand_times_counts_once() {
    let (server, _dir) = monitored(1.0, 1 << 20).await;
    let r = server.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
    let id = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
    let label = |target: &str| json!({"prediction_id": id, "target": target});
    let mut items: Vec<Value> = (0..999).map(|_| label("setosa")).collect();
    // The last label wins.
    items.push(label("virginica"));
    let r = post(&server, "/feedback", json!({ "items": items })).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"accepted": 1, "joined": 1}));
    // And again in a second request: still one labelled prediction.
    let r = post(&server, "/feedback", json!({"items": [label("setosa")]})).await;
    assert_eq!(r.status(), 200);
    let report = super::common::get(&server, "/monitoring").await;
    let v1 = &report["versions"][0];
    assert_eq!(v1["version"], "v1", "{report}");
    assert_eq!(v1["labelled"], 1, "{report}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_label_the_log_did_not_sample_is_scored_by_the_serving_version() {
    // The log keeps nothing: every label comes with its instance.
    let (server, _dir) = monitored(0.0, 1 << 20).await;
    let mut items = Vec::new();
    for (x, class) in super::iris().into_iter().take(30) {
        let r = server.predict(&json!([x])).await;
        let id = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
        items.push(json!({"prediction_id": id, "instance": x, "target": class}));
    }
    let r = post(&server, "/feedback", json!({ "items": items })).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"accepted": 30, "joined": 0}));
    let report = super::common::get(&server, "/monitoring").await;
    let v1 = &report["versions"][0];
    assert_eq!(v1["labelled"], 30, "{report}");
    // The default model knows iris.
    assert!(v1["accuracy"].as_f64().unwrap() > 0.8, "{report}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn drifting_traffic_without_labels_starts_no_job_and_makes_no_version() {
    // The audit's flood: retraining on with no cooldown, 60 labelled rows, then
    // anyone's drifting /predict traffic.
    let dir = tempfile::tempdir().unwrap();
    let mut config = super::common::test_config(dir.path());
    config.monitoring.sample_rate = 1.0;
    config.monitoring.flush_interval_ms = 50;
    config.monitoring.drift_window = 200;
    config.monitoring.drift_min_samples = 50;
    config.retrain.enabled = true;
    config.retrain.check_interval_ms = 50;
    config.retrain.cooldown_ms = 0;
    let server = super::common::Server::start(config).await;
    let mut items = Vec::new();
    for (x, class) in super::iris().into_iter().step_by(2).take(60) {
        let r = server.predict(&json!([x])).await;
        let id = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
        items.push(json!({"prediction_id": id, "instance": x, "target": class}));
    }
    let r = post(&server, "/feedback", json!({ "items": items })).await;
    assert_eq!(r.status(), 200);
    for _ in 0..400 {
        assert_eq!(
            server.predict(&json!([[50, 50, 50, 50]])).await.status(),
            200
        );
    }
    let drift = super::common::get(&server, "/monitoring/drift").await;
    assert_eq!(drift["drifted"], true, "{drift}");
    // Forty checks later: no job, one version.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let jobs = super::common::get(&server, "/train").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "{jobs}");
    let models = super::common::get(&server, "/models").await;
    assert_eq!(models["versions"].as_array().unwrap().len(), 1, "{models}");
    server.stop().await.unwrap();
}
