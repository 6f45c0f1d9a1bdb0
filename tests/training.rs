//! The embedded trainer end to end: `/train` jobs, versions, hot swap, rollback,
//! cancellation, restart, auth, and bad input, against a real kiln.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Process, Server, data, get, poll_job, post, sample, seed_small_model, submit, train_config,
    wait_job,
};
use kiln::registry::Store;
use serde_json::{Value, json};

#[path = "training/search.rs"]
mod search;
#[path = "training/series.rs"]
mod series;

fn versions(store: &Path) -> Vec<String> {
    Store::open(store).unwrap().list().unwrap()
}

/// The documented defaults, on the three bundled datasets, through `/train`: the
/// full default run (100 epochs max, early stopping) is fast enough for CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_training_meets_the_accuracy_bars() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let iris_csv = std::fs::read_to_string(data("iris.csv")).unwrap();
    let cases = [
        (
            "iris",
            json!({"dataset": {"csv": iris_csv}, "promote": "always"}),
            "classification",
            0.93,
        ),
        (
            "digits",
            json!({"dataset": {"path": "digits.csv"}, "promote": "always"}),
            "classification",
            0.95,
        ),
        (
            "diabetes",
            json!({"dataset": {"path": "diabetes.csv"}, "promote": "always"}),
            "regression",
            0.40,
        ),
    ];
    for (name, body, task, bar) in cases {
        let id = submit(&server, body).await;
        let job = wait_job(&server, &id).await;
        assert_eq!(job["state"], "succeeded", "{name}: {job}");
        assert_eq!(job["task"], task, "{name}");
        assert!(
            job["task_reason"].as_str().unwrap().starts_with("inferred"),
            "{name}"
        );
        let metric = job["best"]["val_metric"].as_f64().unwrap();
        eprintln!(
            "{name}: validation {} {metric:.4} at epoch {} of {}, {:.0} samples/s",
            job["metric"].as_str().unwrap(),
            job["best"]["epoch"],
            job["epoch"],
            job["samples_per_second"].as_f64().unwrap()
        );
        assert!(metric >= bar, "{name}: {metric} < {bar}");
        assert!(job["history"].as_array().unwrap().len() >= 2);
        assert_eq!(job["rows"]["dropped"], 0);
        let version = job["version"].as_str().unwrap();
        // Each dataset has another schema than the last: `if_better` would keep
        // the active version, so the jobs ask for promotion.
        assert_eq!(job["promoted"], true, "{name}: {}", job["promotion"]);
        let r = server
            .client
            .get(server.url("/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["model_version"], version);
    }
    // The regression model answers in target units (diabetes progression, 25..346).
    let row = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0];
    let body: Value = server.predict(&json!([row])).await.json().await.unwrap();
    let y = body["predictions"][0].as_f64().unwrap();
    assert!((25.0..=346.0).contains(&y), "{y}");

    let m = server.metrics().await;
    assert_eq!(sample(&m, "kiln_train_jobs{state=\"succeeded\"}"), 3.0);
    assert!(m.contains("kiln_train_loss{job="), "{m}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classifiers_keep_label_names_and_answer_top_k() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    // Text labels, one missing cell (dropped and counted), a sigmoid binary head.
    let mut csv = String::from("a,b,kind\n");
    for i in 0..60 {
        let (a, b) = ((i % 10) as f32, (i / 10) as f32);
        csv += &format!("{a},{b},{}\n", if a > 4.0 { "big" } else { "small" });
    }
    csv += ",1,big\n";
    let id = submit(
        &server,
        json!({"dataset": {"csv": csv}, "target": "kind", "loss": "bce", "epochs": 200, "optimizer": {"kind": "adam", "lr": 0.05}}),
    )
    .await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["rows"]["dropped"], 1);
    assert_eq!(job["rows"]["input"], 61);
    let body: Value = server
        .client
        .post(server.url("/predict"))
        .json(&json!({"instances": [[9.0, 1.0], [0.0, 1.0]], "top_k": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = &body["predictions"];
    assert_eq!(p[0]["label"], "big", "{body}");
    assert_eq!(p[1]["label"], "small", "{body}");
    assert_eq!(p[0]["top_k"].as_array().unwrap().len(), 2);
    assert_eq!(p[0]["top_k"][0]["label"], "big");
    let probs = p[0]["probabilities"].as_object().unwrap();
    assert_eq!(probs.keys().collect::<Vec<_>>(), ["big", "small"]);
    server.stop().await.unwrap();
}

/// 16 clients predict continuously while the test flips between two versions 100+
/// times: no error, and every response is exactly its own version's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_never_drops_or_mixes_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let a = seed_small_model(dir.path(), 6); // v1
    let b = seed_small_model(dir.path(), 6); // v2, now active
    let (va, vb) = (a.version().to_string(), b.version().to_string());
    let inputs: Vec<Vec<f32>> = (0..4)
        .map(|i| (0..6).map(|j| (i * 6 + j) as f32 / 10.0 - 1.0).collect())
        .collect();
    let want = |m: &kiln::model::LoadedModel| -> Vec<Vec<f32>> {
        inputs.iter().map(|x| m.forward(x.clone(), 1)).collect()
    };
    let expected: Arc<std::collections::HashMap<String, Vec<Vec<f32>>>> = Arc::new(
        [(va.clone(), want(&a)), (vb.clone(), want(&b))]
            .into_iter()
            .collect(),
    );
    assert_ne!(expected[&va], expected[&vb], "the two versions must differ");

    let server = Arc::new(Server::start(train_config(dir.path())).await);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (server, stop, answered, expected, inputs) = (
                server.clone(),
                stop.clone(),
                answered.clone(),
                expected.clone(),
                inputs.clone(),
            );
            tokio::spawn(async move {
                let mut seen = std::collections::HashSet::new();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let k = i % inputs.len();
                    i += 1;
                    let r = server.predict(&json!([inputs[k]])).await;
                    assert_eq!(r.status(), 200);
                    let header = r.headers()["x-model-version"].to_str().unwrap().to_string();
                    let body: Value = r.json().await.unwrap();
                    let version = body["model_version"].as_str().unwrap().to_string();
                    assert_eq!(header, version);
                    let want = expected
                        .get(&version)
                        .unwrap_or_else(|| panic!("unknown version {version}"));
                    let got: Vec<f32> = body["predictions"][0]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap() as f32)
                        .collect();
                    for (g, w) in got.iter().zip(&want[k]) {
                        assert!((g - w).abs() < 1e-5, "{version}: {got:?} vs {:?}", want[k]);
                    }
                    seen.insert(version);
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                seen
            })
        })
        .collect();
    let mut swaps = 0;
    for i in 0..120 {
        let target = if i % 2 == 0 { &va } else { &vb };
        let r = post(&server, &format!("/models/{target}/promote"), json!({})).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        swaps += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::HashSet::new();
    for c in clients {
        seen.extend(c.await.unwrap());
    }
    eprintln!(
        "{swaps} swaps, {} answers",
        answered.load(Ordering::Relaxed)
    );
    assert!(answered.load(Ordering::Relaxed) > 200);
    assert_eq!(seen.len(), 2, "both versions served: {seen:?}");
    let m = server.metrics().await;
    assert!(sample(&m, "kiln_model_swaps_total{model=\"kiln\"}") >= 120.0);
    Arc::into_inner(server).unwrap().stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_delete_and_the_version_list() {
    let dir = tempfile::tempdir().unwrap();
    seed_small_model(dir.path(), 3);
    seed_small_model(dir.path(), 3); // v2 active, v1 previous
    let server = Server::start(train_config(dir.path())).await;
    let models = get(&server, "/models").await;
    assert_eq!(models["active"], "v2");
    assert_eq!(models["versions"].as_array().unwrap().len(), 2);

    let r = post(&server, "/models/rollback", json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], "v1");
    let body: Value = server
        .predict(&json!([[1.0, 2.0, 3.0]]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["model_version"], "v1");
    // Rolling back again returns to v2.
    let r = post(&server, "/models/rollback", json!({})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["version"], "v2");

    let del = |v: &str| {
        server
            .client
            .delete(server.url(&format!("/models/{v}")))
            .send()
    };
    assert_eq!(
        del("v2").await.unwrap().status(),
        409,
        "the active version stays"
    );
    assert_eq!(del("v9").await.unwrap().status(), 404);
    assert_eq!(del("v1").await.unwrap().status(), 200);
    assert_eq!(versions(dir.path()), ["v2"]);
    let r = post(&server, "/models/rollback", json!({})).await;
    assert_eq!(r.status(), 409, "the previous version is gone");
    assert_eq!(
        post(&server, "/models/v7/promote", json!({}))
            .await
            .status(),
        404
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_fails_to_load_leaves_the_old_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    seed_small_model(dir.path(), 3);
    let store = Store::open(dir.path()).unwrap();
    seed_small_model(dir.path(), 3);
    store.set_active("v1").unwrap();
    // Corrupt v2's weights.
    std::fs::write(
        dir.path().join("versions/v2/weights.safetensors"),
        b"garbage",
    )
    .unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let r = post(&server, "/models/v2/promote", json!({})).await;
    assert_eq!(r.status(), 409);
    let error = r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("v2") && error.contains("cannot be loaded"),
        "{error}"
    );
    let body: Value = server
        .predict(&json!([[1.0, 2.0, 3.0]]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["model_version"], "v1");
    assert_eq!(store.active().unwrap().unwrap().version, "v1");
    server.stop().await.unwrap();
}

/// A job long enough to still be running when the test acts on it.
fn long_job() -> Value {
    json!({"dataset": {"path": "digits.csv"}, "epochs": 100000, "early_stopping_patience": 0, "model": {"hidden": [256, 256]}})
}

async fn wait_running(server: &Server, id: &str) {
    poll_job(
        &server.client,
        &server.base,
        id,
        Duration::from_secs(60),
        |job| job["state"] == "running" && job["epoch"].as_u64().unwrap() >= 1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_and_a_queued_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let before = versions(dir.path());
    let running = submit(&server, long_job()).await;
    let queued = submit(&server, long_job()).await;
    wait_running(&server, &running).await;
    assert_eq!(
        get(&server, &format!("/train/{queued}")).await["state"],
        "queued"
    );

    let cancel = |id: String| {
        server
            .client
            .delete(server.url(&format!("/train/{id}")))
            .send()
    };
    let r = cancel(queued.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "cancelled");
    let r = cancel(running.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let job = wait_job(&server, &running).await;
    assert_eq!(job["state"], "cancelled");
    assert!(job["version"].is_null());
    assert_eq!(
        versions(dir.path()),
        before,
        "a cancelled job writes nothing"
    );
    assert_eq!(cancel(running.clone()).await.unwrap().status(), 409);
    assert_eq!(cancel("job-nope".into()).await.unwrap().status(), 404);
    let list = get(&server, "/train").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 2);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_training_leaves_the_job_interrupted_and_the_version_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = data("");
    let env = [("KILN_TRAINING__DATA_DIR", data_dir.to_str().unwrap())];
    let mut proc = Process::serve(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let active_before = client
        .get(proc.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["model_version"]
        .clone();
    let r = client
        .post(proc.url("/train"))
        .json(&long_job())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    poll_job(&client, &proc.base, &id, Duration::from_secs(30), |job| {
        job["state"] == "running"
    })
    .await;
    proc.child.kill().unwrap(); // SIGKILL
    proc.child.wait().unwrap();

    let proc = Process::serve(dir.path(), &env).await;
    let job: Value = client
        .get(proc.url(&format!("/train/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "interrupted", "{job}");
    let active_after = client
        .get(proc.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["model_version"]
        .clone();
    assert_eq!(active_after, active_before);
    assert_eq!(versions(dir.path()).len(), 1, "only the default model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_endpoints_need_the_token_and_predict_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    seed_small_model(dir.path(), 3);
    seed_small_model(dir.path(), 3);
    let mut config = train_config(dir.path());
    config.auth.token = Some("s3cret-token".into());
    let server = Server::start(config).await;
    let iris = json!({"dataset": {"path": "iris.csv"}, "epochs": 1, "promote": "never"});
    let calls: Vec<(reqwest::Method, &str, Value)> = vec![
        (reqwest::Method::POST, "/train", iris.clone()),
        (reqwest::Method::DELETE, "/train/job-x", json!({})),
        (reqwest::Method::POST, "/models/v1/promote", json!({})),
        (reqwest::Method::POST, "/models/rollback", json!({})),
        (reqwest::Method::DELETE, "/models/v1", json!({})),
    ];
    for (method, path, body) in &calls {
        for auth in [None, Some("Bearer wrong-token"), Some("s3cret-token")] {
            let mut req = server
                .client
                .request(method.clone(), server.url(path))
                .json(body);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            // Each says what was wrong.
            let error = r.json::<Value>().await.unwrap()["error"].to_string();
            let says = match auth {
                None => "needs the header",
                Some(a) if a.starts_with("Bearer") => "wrong bearer token",
                Some(_) => "the Bearer scheme is missing",
            };
            assert!(error.contains(says), "{auth:?}: {error}");
        }
    }
    assert_eq!(versions(dir.path()).len(), 2, "nothing changed");
    assert_eq!(get(&server, "/models").await["active"], "v2");
    // With the token, they work.
    let r = server
        .client
        .post(server.url("/models/v1/promote"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .client
        .post(server.url("/train"))
        .bearer_auth("s3cret-token")
        .json(&iris)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Reads and predictions need no token.
    assert_eq!(
        server.predict(&json!([[1.0, 2.0, 3.0]])).await.status(),
        200
    );
    assert_eq!(
        server
            .client
            .get(server.url("/models"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        server
            .client
            .get(server.url("/train"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.stop().await.unwrap();

    // protect_predict extends it to /predict.
    let mut config = train_config(dir.path());
    config.auth.token = Some("s3cret-token".into());
    config.auth.protect_predict = true;
    let server = Server::start(config).await;
    assert_eq!(
        server.predict(&json!([[1.0, 2.0, 3.0]])).await.status(),
        401
    );
    let r = server
        .client
        .post(server.url("/predict"))
        .bearer_auth("s3cret-token")
        .json(&json!({"instances": [[1.0, 2.0, 3.0]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_training_requests_get_a_clear_4xx_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let before = versions(dir.path());
    let iris = || json!({"path": "iris.csv"});
    let nan_rows = "a,b,target\nnan,1,0\n2,inf,1\n,3,0\n";
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "no target column",
            json!({"dataset": iris(), "target": "species"}),
            422,
            "no column named",
        ),
        (
            "text in a numeric column",
            json!({"dataset": {"csv": "a,target\n1,0\nhello,1\n"}}),
            422,
            "not a number",
        ),
        (
            "all rows NaN",
            json!({"dataset": {"csv": nan_rows}}),
            422,
            "no usable rows",
        ),
        (
            "one class only",
            json!({"dataset": {"csv": "a,target\n1,3\n2,3\n3,3\n"}, "task": "classification"}),
            422,
            "at least 2 classes",
        ),
        (
            "data for dataset",
            json!({"data": iris()}),
            422,
            "unknown field `data`, expected `dataset` or one of",
        ),
        (
            "zero epochs",
            json!({"dataset": iris(), "epochs": 0}),
            422,
            "epochs",
        ),
        (
            "absurd batch size",
            json!({"dataset": iris(), "batch_size": 1_000_000_000u64}),
            422,
            "batch_size",
        ),
        (
            "negative batch size",
            json!({"dataset": iris(), "batch_size": -5}),
            422,
            "batch_size",
        ),
        (
            "path outside the data dir",
            json!({"dataset": {"path": "../../etc/passwd"}}),
            422,
            "inside the data directory",
        ),
        (
            "absolute path",
            json!({"dataset": {"path": "/etc/passwd"}}),
            422,
            "inside the data directory",
        ),
        (
            "missing file",
            json!({"dataset": {"path": "nope.csv"}}),
            422,
            "no dataset file",
        ),
        ("no dataset", json!({"epochs": 3}), 422, "dataset"),
        (
            "malformed dataset",
            json!({"dataset": {"rows": []}}),
            422,
            "dataset must be",
        ),
        (
            "unknown field",
            json!({"dataset": iris(), "epoch": 3}),
            422,
            "unknown field",
        ),
        (
            "unknown optimizer",
            json!({"dataset": iris(), "optimizer": "lbfgs"}),
            422,
            "unknown variant",
        ),
        (
            "loss for the wrong task",
            json!({"dataset": iris(), "loss": "mse"}),
            422,
            "loss",
        ),
        (
            "bce with three classes",
            json!({"dataset": iris(), "loss": "bce"}),
            422,
            "2 classes",
        ),
        (
            "model file outside config",
            json!({"dataset": iris(), "model": "../Cargo"}),
            422,
            "model",
        ),
        (
            "model file that does not fit",
            json!({"dataset": iris(), "model": "seed-mlp"}),
            422,
            "model config",
        ),
        (
            "ragged instances",
            json!({"dataset": {"instances": [[1, 2], [3]], "targets": [0, 1]}}),
            422,
            "features",
        ),
        (
            "targets count",
            json!({"dataset": {"instances": [[1, 2], [3, 4]], "targets": [0]}}),
            422,
            "targets",
        ),
        (
            "too few rows to split",
            json!({"dataset": {"instances": [[1.0], [2.0]], "targets": [1.5, 2.5]}}),
            422,
            "split",
        ),
        (
            "negative l2",
            json!({"dataset": iris(), "l2": -1.0}),
            422,
            "l2",
        ),
        ("not an object", json!([1, 2, 3]), 422, "JSON object"),
    ];
    for (name, body, want, text) in cases {
        let r = post(&server, "/train", body).await;
        assert_eq!(r.status().as_u16(), want, "{name}");
        let err = r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            err.contains(text),
            "{name}: {err:?} should mention {text:?}"
        );
    }
    let r = server
        .client
        .post(server.url("/train"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A learning rate out of range is refused; one in range that diverges fails
    // the job with a readable reason; neither writes anything.
    let r = post(
        &server,
        "/train",
        json!({"dataset": {"path": "diabetes.csv"}, "optimizer": {"kind": "sgd", "lr": 1e30}}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("optimizer.lr must be between")
    );
    let id = submit(
        &server,
        json!({"dataset": {"path": "diabetes.csv"}, "optimizer": {"kind": "sgd", "lr": 10.0}, "epochs": 5}),
    )
    .await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("diverged"), "{job}");

    assert_eq!(
        versions(dir.path()),
        before,
        "nothing was written to the store"
    );
    assert_eq!(
        get(&server, "/train").await["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The model in the store still serves.
    assert_eq!(
        server
            .predict(&json!([[5.1, 3.5, 1.4, 0.2]]))
            .await
            .status(),
        200
    );
    server.stop().await.unwrap();
}

/// The audit's case: values near `f32`'s limit whose standardised form
/// overflows. The job used to end "exited with code 0" (its epoch reports held
/// NaN, which JSON writes as `null`) and leave a version with `val_loss: null`;
/// now it fails with the reason, writes no version, and the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_training_figures_fail_the_job_and_leave_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let before = versions(dir.path());
    let csv = "a,target\n3e38,x\n-3e38,y\n3,x\n4,y\n5,x\n";
    let id = submit(&server, json!({"dataset": {"csv": csv}, "epochs": 2})).await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("too large to standardise") && error.contains("column \"a\""),
        "{job}"
    );
    assert!(job["version"].is_null(), "{job}");
    assert_eq!(versions(dir.path()), before, "no version was written");
    let models = get(&server, "/models").await;
    assert_eq!(models["versions"].as_array().unwrap().len(), before.len());
    assert_eq!(
        server
            .predict(&json!([[5.1, 3.5, 1.4, 0.2]]))
            .await
            .status(),
        200
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_records_a_running_job_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = train_config(dir.path());
    // At idle priority a busy machine may not schedule the job within the grace.
    config.training.low_priority = false;
    let server = Server::start(config).await;
    let running = submit(&server, long_job()).await;
    let queued = submit(&server, long_job()).await;
    wait_running(&server, &running).await;
    server.stop().await.unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (id, why) in [
        (running, "while this job was running"),
        (queued, "before this job ran"),
    ] {
        let record = store.read_job(&id).unwrap().unwrap();
        assert_eq!(record["state"], "interrupted", "{record}");
        assert!(record["error"].as_str().unwrap().contains(why), "{record}");
    }
    assert_eq!(versions(dir.path()).len(), 1, "only the default model");
}

/// The first job on a fresh store replaces the bootstrap default (a placeholder),
/// the bundled data keeps the default's species names, and a later version with
/// another schema is not promoted by `if_better` unless asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_job_replaces_the_placeholder_and_schemas_never_switch_by_surprise() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = train_config(dir.path());
    config.training.data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let server = Server::start(config).await;
    let models = get(&server, "/models").await;
    assert_eq!(models["active"], "v1");
    let id = submit(
        &server,
        json!({"dataset": {"path": "iris.csv"}, "epochs": 3}),
    )
    .await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["promoted"], true, "{job}");
    let reason = job["promotion"].as_str().unwrap();
    assert!(
        reason.contains("v1 is the default model, a placeholder"),
        "{reason}"
    );
    // Still species names, from the new version.
    let answer: Value = server
        .predict(&json!([[6.7, 3.0, 5.2, 2.3]]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["model_version"], "v2");
    let label = answer["predictions"][0]["label"].as_str().unwrap();
    assert!(
        ["setosa", "versicolor", "virginica"].contains(&label),
        "{answer}"
    );

    // Numeric labels: another schema. Not promoted over v2, and the job says why.
    let numeric = std::fs::read_to_string(data("iris.csv")).unwrap();
    let id = submit(&server, json!({"dataset": {"csv": numeric}, "epochs": 30})).await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["promoted"], false, "{job}");
    let reason = job["promotion"].as_str().unwrap();
    assert!(
        reason.contains("not promoted") && reason.contains("cannot be compared"),
        "{reason}"
    );
    assert!(reason.contains("\"promote\": \"always\""), "{reason}");
    let serving: Value = server
        .predict(&json!([[6.7, 3.0, 5.2, 2.3]]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(serving["model_version"], "v2");
    // Asked for: promoted.
    let id = submit(
        &server,
        json!({"dataset": {"csv": numeric}, "epochs": 30, "promote": "always"}),
    )
    .await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["promoted"], true, "{job}");
    server.stop().await.unwrap();
}

/// After a restart, `kiln_train_jobs{state}` counts the jobs `GET /train` lists,
/// and `interrupted` is a state of `kiln_train_job_results_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_gauges_agree_with_the_job_list_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = submit(
            &server,
            json!({"dataset": {"path": "iris.csv"}, "epochs": 2}),
        )
        .await;
        assert_eq!(wait_job(&server, &id).await["state"], "succeeded");
        ids.push(id);
    }
    server.stop().await.unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let jobs = get(&server, "/train").await;
    let listed = jobs["jobs"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{jobs}");
    // In submission order, with every time in milliseconds.
    let order: Vec<&str> = listed.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(order, ids, "{jobs}");
    for job in listed {
        let (created, started, finished) = (
            job["created_at_ms"].as_u64().unwrap(),
            job["started_at_ms"].as_u64().unwrap(),
            job["finished_at_ms"].as_u64().unwrap(),
        );
        assert!(created > 1_000_000_000_000, "ms since the epoch: {job}");
        assert!(created <= started && started <= finished, "{job}");
        assert!(job["heartbeat_ms"].as_u64().unwrap() >= created);
    }
    // The trainer counts the store's records once it starts (its series appear
    // then).
    let metrics = server
        .metrics_until(|m| {
            m.lines()
                .any(|l| l == "kiln_train_jobs{state=\"succeeded\"} 2")
        })
        .await;
    assert_eq!(
        sample(
            &metrics,
            "kiln_train_job_results_total{state=\"interrupted\"}"
        ),
        0.0
    );
    server.stop().await.unwrap();
}

/// A job record's `spec` shows the task and loss the job uses, not `null`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_records_show_the_values_used() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let id = submit(
        &server,
        json!({"dataset": {"path": "diabetes.csv"}, "epochs": 2}),
    )
    .await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["spec"]["task"], "regression", "{job}");
    assert_eq!(job["spec"]["loss"], "mse", "{job}");
    assert_eq!(job["task"], "regression");
    // The same figures, under the same names, as GET /models shows the version.
    let version = job["version"].as_str().unwrap();
    let info = get(&server, &format!("/models/{version}")).await;
    assert_eq!(job["metrics"], info["metrics"], "{job}\n{info}");
    for name in ["r2", "val_loss", "rmse"] {
        assert!(job["metrics"][name].is_number(), "{name}: {job}");
    }
    server.stop().await.unwrap();
}

/// The README's example answer to `POST /train` has the real record's fields, in
/// the real order, with the real values for the bundled digits data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_shows_the_real_job_record() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    let r = post(
        &server,
        "/train",
        json!({"dataset": {"path": "digits.csv"}, "epochs": 1}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let text = r.text().await.unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let shown: String = readme
        .lines()
        .skip_while(|l| !l.starts_with("# {\"id\":\"job-3f2a"))
        .take_while(|l| l.starts_with("# ") && !l.starts_with("# (the job's record"))
        .map(|l| l.trim_start_matches("# ").trim_start())
        .collect();
    // Each `"name":` ends a segment; the text after the last one is no key.
    let keys = |s: &str| -> Vec<String> {
        let parts: Vec<&str> = s.split("\":").collect();
        parts[..parts.len() - 1]
            .iter()
            .map(|part| part.rsplit('"').next().unwrap().to_string())
            .collect()
    };
    let (shown_keys, real_keys) = (keys(&shown), keys(&text));
    let mut at = 0;
    for key in shown_keys.iter().filter(|k| !k.is_empty()) {
        at += real_keys[at..]
            .iter()
            .position(|k| k == key)
            .unwrap_or_else(|| panic!("{key} out of order:\nREADME {shown}\nreal {text}"));
    }
    for fragment in [
        "\"task_reason\":\"inferred: 10 distinct integer targets\"",
        "\"rows\":{\"input\":1797,\"dropped\":0,\"train\":1598,\"validation\":199}",
    ] {
        assert!(
            shown.contains(fragment) && text.contains(fragment),
            "{fragment}"
        );
    }
    server.stop().await.unwrap();
}
