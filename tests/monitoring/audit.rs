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
    assert_eq!(body, json!({"accepted": 1, "joined": 1, "remembered": 0}));
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
    assert_eq!(body, json!({"accepted": 30, "joined": 0, "remembered": 0}));
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

#[tokio::test]
async fn a_version_without_kept_data_retrains_on_feedback_once_it_shows_every_class() {
    // The default model keeps no training data: retraining it waits for labels
    // of all three classes, then trains on the feedback alone.
    let dir = tempfile::tempdir().unwrap();
    let mut config = super::common::test_config(dir.path());
    config.monitoring.sample_rate = 0.0;
    config.retrain.enabled = true;
    config.retrain.check_interval_ms = 50;
    config.retrain.cooldown_ms = 0;
    config.retrain.min_new_labels = 40;
    let server = super::common::Server::start(config).await;
    let iris = super::iris();
    let label = |rows: &[(Vec<f32>, &'static str)]| {
        let server = &server;
        let rows = rows.to_vec();
        async move {
            let mut items = Vec::new();
            for (x, class) in rows {
                let r = server.predict(&json!([x])).await;
                let id = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
                items.push(json!({"prediction_id": id, "instance": x, "target": class}));
            }
            let r = post(server, "/feedback", json!({ "items": items })).await;
            assert_eq!(r.status(), 200);
        }
    };
    // Two classes only (iris is sorted by class: 50 of each).
    label(&iris[..100]).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let jobs = super::common::get(&server, "/train").await;
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");
    // The third class arrives: a job on the feedback alone.
    label(&iris[100..]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let jobs = super::common::get(&server, "/train").await;
        let done = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["state"] == "succeeded");
        if let Some(job) = done {
            assert!(
                job["trigger"].as_str().unwrap().starts_with("labels:"),
                "{job}"
            );
            assert_eq!(job["rows"]["input"], 150, "{job}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{jobs}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.stop().await.unwrap();
}

/// The server's peak resident memory, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_lookups_of_made_up_ids_over_a_large_log_stay_within_memory() {
    // The audit's case: a large log, and 1,000 made-up ids spread over it in
    // each of four concurrent requests. Each lookup reads the segments one at a
    // time and keeps only what it asked for.
    let dir = tempfile::tempdir().unwrap();
    super::common::import_seed_mlp(dir.path());
    let server = super::common::Process::serve(
        dir.path(),
        &[
            ("KILN_MONITORING__SAMPLE_RATE", "1"),
            ("KILN_MONITORING__FLUSH_INTERVAL_MS", "100"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    // About 64 MB of log: 100 requests of 64 instances of 1,000 values.
    let mut ids: Vec<String> = Vec::new();
    let instances: Vec<Vec<f32>> = (0..64)
        .map(|i| {
            (0..1000)
                .map(|j| ((i * 1000 + j) % 97) as f32 / 97.0)
                .collect()
        })
        .collect();
    for _ in 0..100 {
        let r = client
            .post(server.url("/predict"))
            .json(&json!({ "instances": instances }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        ids.extend(
            body["prediction_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string()),
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let log_bytes: u64 = walk(dir.path());
    assert!(log_bytes > 32 << 20, "the log holds {log_bytes} bytes");
    let before = peak_rss_mb(server.child.id());
    // Made-up ids: a real id's millisecond (so its segment is read), another
    // random part.
    let made_up: Vec<Value> = ids
        .iter()
        .step_by(ids.len() / 1000)
        .take(1000)
        .map(|id| {
            let fake = format!("{}{}", &id[..24], "0123456789ab");
            json!({"prediction_id": fake, "target": 1.0})
        })
        .collect();
    let post = |items: Vec<Value>| {
        client
            .post(server.url("/feedback"))
            .json(&json!({ "items": items }))
            .send()
    };
    let answers = futures::future::join_all((0..4).map(|_| post(made_up.clone()))).await;
    for r in answers {
        // Not logged and no instance: refused, after the lookup.
        assert_eq!(r.unwrap().status(), 422);
    }
    let after = peak_rss_mb(server.child.id());
    eprintln!(
        "log {} MB; peak RSS {before:.0} MB before the lookups, {after:.0} MB after",
        log_bytes >> 20
    );
    assert!(
        after - before < 48.0,
        "peak RSS grew from {before:.0} to {after:.0} MB"
    );
}

/// Bytes under `dir`, recursively.
fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn at_the_default_sample_rate_every_label_counts_without_its_instance() {
    // The shipped sample_rate (0.1) and recent_answers: labels carry only the id.
    let dir = tempfile::tempdir().unwrap();
    let server = super::common::Server::start(super::common::test_config(dir.path())).await;
    let (mut items, mut correct) = (Vec::new(), 0);
    for (x, class) in super::iris().into_iter().take(50) {
        let r = server.predict(&json!([x])).await;
        let id = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        correct += usize::from(body["predictions"][0]["label"] == class);
        items.push(json!({"prediction_id": id, "target": class}));
    }
    let r = post(&server, "/feedback", json!({ "items": items })).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    let (joined, remembered) = (
        body["joined"].as_u64().unwrap(),
        body["remembered"].as_u64().unwrap(),
    );
    assert_eq!(joined + remembered, 50, "{body}");
    assert!(remembered >= 40, "9 in 10 were not sampled: {body}");
    assert_eq!(
        body["accepted"], joined,
        "only logged labels are kept: {body}"
    );
    let report = super::common::get(&server, "/monitoring").await;
    let v1 = &report["versions"][0];
    assert_eq!(v1["labelled"], 50, "{report}");
    let accuracy = v1["accuracy"].as_f64().unwrap();
    assert!((accuracy - correct as f64 / 50.0).abs() < 1e-9, "{report}");
    // Off, an unsampled label without its instance is the 422 it was.
    let dir = tempfile::tempdir().unwrap();
    let mut config = super::common::test_config(dir.path());
    config.monitoring.sample_rate = 0.0;
    config.monitoring.recent_answers = 0;
    let server2 = super::common::Server::start(config).await;
    let r = server2.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
    let id = r.headers()["x-prediction-id"].to_str().unwrap().to_string();
    let r = post(
        &server2,
        "/feedback",
        json!({"items": [{"prediction_id": id, "target": "setosa"}]}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("recent answers"));
    server2.stop().await.unwrap();
    server.stop().await.unwrap();
}
