//! Hostile and careless requests against the real binary, with serving checked
//! after each: every one gets a 422 or a `failed` job with its reason, the server
//! still answers `/predict`, and later jobs succeed. Also: a job past
//! `training.max_memory_mb` fails with "out of memory", a worker never outlives
//! its server, and protected mode refuses an open public listener.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Process, poll_job};
use serde_json::{Value, json};

/// The server answers a prediction, whole.
async fn still_serving(server: &Process, client: &reqwest::Client, after: &str) {
    let r = client
        .post(server.url("/predict"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the server is gone after {after}: {e}"));
    assert_eq!(r.status(), 200, "after {after}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["predictions"].as_array().unwrap().len(), 1, "{body}");
}

async fn train(server: &Process, client: &reqwest::Client, body: &Value) -> reqwest::Response {
    client
        .post(server.url("/train"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Submits a job that must be accepted and waits for it to end.
async fn run_job(server: &Process, client: &reqwest::Client, body: Value) -> Value {
    let id = common::submit_at(client, &server.base, &body).await;
    poll_job(
        client,
        &server.base,
        &id,
        Duration::from_secs(300),
        common::finished,
    )
    .await
}

#[tokio::test]
async fn hostile_recipes_and_data_get_a_422_and_nothing_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::serve(
        dir.path(),
        &[("KILN_TRAINING__MAX_DATASET_VALUES", "50000")],
    )
    .await;
    let client = reqwest::Client::new();

    let many_labels: String = std::iter::once("x,target".to_string())
        .chain((0..20_000).map(|i| format!("{i},label{i}")))
        .collect::<Vec<_>>()
        .join("\n");
    let wide: String = {
        let header: Vec<String> = (0..100)
            .map(|c| format!("c{c}"))
            .chain(["target".into()])
            .collect();
        let rows = (0..1000).map(|r| {
            (0..101)
                .map(|c| ((r * 7 + c) % 13).to_string())
                .collect::<Vec<_>>()
                .join(",")
        });
        std::iter::once(header.join(","))
            .chain(rows)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let iris = json!({"path": "iris.csv"});
    let cases = [
        // The audit's three: a 16 GiB layer, 20,000 classes, an init Burn panics on.
        (
            json!({"dataset": iris, "model": {"hidden": [65536, 65536]}}),
            "parameters; the limit is",
        ),
        // Within the structural limit, over the memory budget (134M parameters).
        (
            json!({"dataset": iris, "model": {"hidden": [16384, 8192]}}),
            "training.max_model_mb",
        ),
        (
            json!({"dataset": {"csv": many_labels}, "epochs": 1}),
            "training.max_classes",
        ),
        (
            json!({"dataset": iris, "init": {"kind": "uniform", "a": 1e-50}}),
            "init.a must be between",
        ),
        (
            json!({"dataset": iris, "init": {"kind": "uniform", "a": 1e39}}),
            "init.a must be between",
        ),
        (
            json!({"dataset": iris, "init": {"kind": "normal", "std": 1e-50}}),
            "init.std must be between",
        ),
        (
            json!({"dataset": iris, "optimizer": {"kind": "adam", "beta1": 1.0}}),
            "optimizer.beta1 must be between",
        ),
        (
            json!({"dataset": iris, "optimizer": {"kind": "adamw", "epsilon": 0.0}}),
            "optimizer.epsilon must be between",
        ),
        (
            json!({"dataset": iris, "optimizer": {"kind": "momentum", "momentum": 1e39}}),
            "optimizer.momentum must be between",
        ),
        (
            json!({"dataset": iris, "optimizer": {"kind": "sgd", "lr": 1e-50}}),
            "optimizer.lr must be between",
        ),
        (json!({"dataset": iris, "l2": 1e39}), "l2 must be between"),
        // Per-channel scaling needs an input of [channels, ...]; iris is flat.
        (
            json!({"dataset": iris, "standardize": "channel"}),
            "[channels, ...]",
        ),
        (
            json!({"dataset": iris, "standardize": "pixel"}),
            "unknown variant",
        ),
        // One batch's activation: 65,536 rows x 65,536 units.
        (
            json!({"dataset": iris, "model": {"hidden": [65536]}, "batch_size": 65536}),
            "training.max_activation_mb",
        ),
        // Rows x features over training.max_dataset_values (50,000 here).
        (
            json!({"dataset": {"csv": wide}}),
            "training.max_dataset_values",
        ),
        // A CSV with only the target column.
        (
            json!({"dataset": {"csv": "target\n1\n2\n1\n2\n"}}),
            "no feature columns",
        ),
    ];
    // The same through a named model's route: the same 422, and no model made.
    for (body, expected) in cases {
        for route in ["/train", "/models/hostile/train"] {
            let what = format!("{route} {:.120}", body.to_string());
            let r = client
                .post(server.url(route))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            assert_eq!(status, 422, "{what}: {text}");
            let error: Value = serde_json::from_str(&text).unwrap();
            let error = error["error"].as_str().unwrap();
            assert!(error.contains(expected), "{what}: {error}");
            still_serving(&server, &client, &what).await;
        }
    }
    // A body past server.max_body_bytes (8 MiB) to the named route: 413 (or
    // the connection closed while still sending), nothing made.
    let huge = format!("{{\"dataset\": {{\"csv\": \"{}\"}}}}", "1,".repeat(5 << 20));
    let sent = client
        .post(server.url("/models/hostile/train"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    match sent {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    still_serving(&server, &client, "a 10 MB body to a named model's /train").await;
    // A half-sent body to the named route holds its connection, nothing else.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut half,
        b"POST /models/hostile/train HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"dataset\": {\"csv\": \"a,",
    )
    .unwrap();
    still_serving(
        &server,
        &client,
        "a half-sent body to a named model's /train",
    )
    .await;
    drop(half);
    let models = common::get_json(&client, &server.url("/models")).await;
    assert_eq!(models["models"], json!(["kiln"]), "{models}");
    let jobs = common::get_json(&client, &server.url("/train")).await;
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");

    // A job that diverges in range fails with its reason, and the next one trains.
    let job = run_job(
        &server,
        &client,
        json!({"dataset": {"path": "diabetes.csv"}, "optimizer": {"kind": "sgd", "lr": 10.0}, "epochs": 5}),
    )
    .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["version"].is_null(),
        "a failed job leaves no version: {job}"
    );
    still_serving(&server, &client, "a diverged job").await;
    let job = run_job(&server, &client, json!({"dataset": iris, "epochs": 5})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    still_serving(&server, &client, "a good job").await;
}

#[tokio::test]
async fn a_job_past_its_memory_cap_fails_out_of_memory_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // The budget lets the job through; the worker's address-space cap stops it.
    let server = Process::serve(
        dir.path(),
        &[
            ("KILN_TRAINING__MAX_MEMORY_MB", "400"),
            ("KILN_TRAINING__MAX_MODEL_MB", "100000"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    // 67M parameters: 268 MB of weights, over 1 GB with gradients and Adam's state.
    let job = run_job(
        &server,
        &client,
        json!({"dataset": {"path": "iris.csv"}, "model": {"hidden": [8192, 8192]}, "epochs": 2}),
    )
    .await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("out of memory"), "{error}");
    assert!(error.contains("400 MiB"), "{error}");
    assert!(job["version"].is_null(), "{job}");
    still_serving(&server, &client, "an out-of-memory job").await;
    let job = run_job(
        &server,
        &client,
        json!({"dataset": {"path": "iris.csv"}, "epochs": 5}),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");
}

#[tokio::test]
async fn a_worker_dies_with_its_server() {
    if !Path::new("/proc/self/stat").exists() {
        return; // Linux only
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::serve(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let id = common::submit_at(
        &client,
        &server.base,
        &json!({"dataset": {"path": "digits.csv"}, "epochs": 100000, "early_stopping_patience": 0}),
    )
    .await;
    poll_job(&client, &server.base, &id, Duration::from_secs(60), |j| {
        j["state"] == "running" && j["epoch"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let workers = common::child_pids(server.child.id());
    assert_eq!(workers.len(), 1, "one worker process: {workers:?}");
    server.child.kill().unwrap(); // SIGKILL: nothing of the server runs after it
    server.child.wait().unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !common::process_dead(workers[0]) {
        assert!(
            std::time::Instant::now() < until,
            "worker {} outlived its server",
            workers[0]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn protected_mode_refuses_a_public_listener_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.args(["serve", "--listen", "0.0.0.0:0", "--store"])
            .arg(dir.path())
            .env_remove("KILN_AUTH__TOKEN")
            .env_remove("KILN_AUTH__ALLOW_UNAUTHENTICATED")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    };
    let refused = serve(&[]).wait_with_output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    for fix in [
        "protected mode",
        "KILN_AUTH__TOKEN",
        "127.0.0.1",
        "KILN_AUTH__ALLOW_UNAUTHENTICATED=true",
    ] {
        assert!(message.contains(fix), "{message}");
    }
    assert!(!message.contains("panicked"), "{message}");
    // With a token, or the explicit opt-out, it starts (and is stopped here).
    for env in [
        [("KILN_AUTH__TOKEN", "a-long-enough-token")],
        [("KILN_AUTH__ALLOW_UNAUTHENTICATED", "true")],
    ] {
        let mut child = serve(&env);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "kiln exited with {env:?}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[tokio::test]
async fn overflowing_inputs_and_queue_slots() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::serve(dir.path(), &[("KILN_TRAINING__MAX_QUEUED_JOBS", "1")]).await;
    let client = reqwest::Client::new();

    // Finite inputs that overflow inside the model: a 422 naming the instance,
    // never a 200 with nulls; the other instances' requests are unaffected.
    let r = client
        .post(server.url("/predict"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2], [3e38, 3e38, 3e38, 3e38]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("instance 1"),
        "{body}"
    );
    still_serving(&server, &client, "an overflowing instance").await;

    // One job runs, one waits (max_queued_jobs = 1): the next gets a 429 before
    // its body is read (garbage would otherwise be a 400). The body is small enough
    // to be sent whole before the early answer closes the connection.
    let long =
        json!({"dataset": {"path": "digits.csv"}, "epochs": 100000, "early_stopping_patience": 0});
    let running = run_until_running(&server, &client, &long).await;
    let queued = common::submit_at(&client, &server.base, &long).await;
    let garbage = vec![b'x'; 32 << 10];
    let r = client
        .post(server.url("/train"))
        .header("content-type", "application/json")
        .body(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Cancelling the queued job frees its slot at once.
    let r = client
        .delete(server.url(&format!("/train/{queued}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = train(
        &server,
        &client,
        &json!({"dataset": {"path": "iris.csv"}, "epochs": 3}),
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let r = client
        .delete(server.url(&format!("/train/{running}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    still_serving(&server, &client, "cancels").await;
}

/// Submits `body` and waits until the job is running.
async fn run_until_running(server: &Process, client: &reqwest::Client, body: &Value) -> String {
    let id = common::submit_at(client, &server.base, body).await;
    poll_job(client, &server.base, &id, Duration::from_secs(60), |j| {
        j["state"] == "running"
    })
    .await;
    id
}

#[test]
fn absurd_durations_are_config_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for (section, key, value) in [
        ("batching", "max_queue_delay_ms", "1e30"),
        ("store", "poll_interval_ms", "9223372036854775807"),
        ("server", "shutdown_drain_delay_ms", "9223372036854775807"),
        ("training", "max_memory_mb", "1"),
    ] {
        let file = dir.path().join("kiln.toml");
        std::fs::write(&file, format!("[{section}]\n{key} = {value}\n")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .arg("--store")
            .arg(dir.path().join("store"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(!stderr.contains("panicked"), "{key}: {stderr}");
        assert!(stderr.contains(&format!("{section}.{key}")), "{stderr}");
    }
}

#[tokio::test]
async fn protected_predict_covers_on_demand_loads_and_any_bearer_case() {
    let dir = tempfile::tempdir().unwrap();
    let token = "a-long-enough-token";
    let server = Process::serve(
        dir.path(),
        &[
            ("KILN_AUTH__TOKEN", token),
            ("KILN_AUTH__PROTECT_PREDICT", "true"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    // Routes that load a version on demand need the token like /predict does.
    for path in [
        "/v2/models/kiln/versions/v1",
        "/v2/models/kiln/versions/v1/ready",
    ] {
        let r = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let r = client
                .get(server.url(path))
                .header("authorization", format!("{scheme} {token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} with {scheme}");
        }
    }
    // /predict refuses before reading the body: a body that is not even JSON gets
    // the 401, not a 400.
    let r = client
        .post(server.url("/predict"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(server.url("/predict"))
        .header("authorization", format!("bearer {token}"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn model_names_cannot_read_other_files_or_echo_them() {
    let dir = tempfile::tempdir().unwrap();
    // A careless operator points the model-config directory at config/, where the
    // server's own configuration (with, say, a token) lives too.
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        config_dir.path().join("server.toml"),
        "[auth]\ntoken = \"do-not-echo-this-secret\"\n",
    )
    .unwrap();
    std::fs::write(
        config_dir.path().join("task.toml"),
        "task = \"do-not-echo-this-secret\"\n",
    )
    .unwrap();
    let server = Process::serve(
        dir.path(),
        &[(
            "KILN_TRAINING__CONFIG_DIR",
            config_dir.path().to_str().unwrap(),
        )],
    )
    .await;
    let client = reqwest::Client::new();
    for model in [
        "server",
        "task",
        "server.toml",
        "../default",
        "/etc/passwd",
        "default.yaml",
        "missing",
    ] {
        let r = train(
            &server,
            &client,
            &json!({"dataset": {"path": "iris.csv"}, "model": model}),
        )
        .await;
        assert_eq!(r.status(), 422, "{model}");
        let text = r.text().await.unwrap();
        assert!(!text.contains("do-not-echo"), "{model}: {text}");
        assert!(
            !text.contains(config_dir.path().to_str().unwrap()),
            "{model}: {text}"
        );
    }
    still_serving(&server, &client, "model names").await;
}
