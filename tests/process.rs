//! The real binary: configuration errors at startup, SIGTERM draining and exit code.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Process, import_seed_mlp, sample};

#[path = "process/delimiter.rs"]
mod delimiter;
#[path = "process/readme.rs"]
mod readme;
#[path = "process/versions.rs"]
mod versions;
use serde_json::{Value, json};

fn kiln(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the binary with `args`: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_config_fails_at_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let serve = ["serve", "--listen", "127.0.0.1:0", "--store", store];
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("KILN_BATCHING__MAX_BATCH_SIZE", "0")],
            "batching.max_batch_size",
        ),
        (
            &[("KILN_BATCHING__MAX_BATCH_SIZE", "lots")],
            "max_batch_size",
        ),
        (&[("KILN_BATCHING__NO_SUCH_KEY", "1")], "no_such_key"),
        (&[("KILN_MODEL__BACKEND", "tpu")], "backend"),
        (&[("KILN_TELEMETRY__LEVEL", "[[[")], "telemetry.level"),
    ];
    for (env, key) in cases {
        let (ok, stderr) = kiln(&serve, env);
        assert!(!ok, "{env:?} should fail");
        assert!(
            stderr.to_lowercase().contains(key),
            "{env:?}: message should name {key}: {stderr}"
        );
    }
    let missing = dir.path().join("nope.toml");
    let (ok, stderr) = kiln(&["serve", "--config", missing.to_str().unwrap()], &[]);
    assert!(!ok && stderr.contains("does not exist"), "{stderr}");
}

#[cfg(not(feature = "wgpu"))]
#[test]
fn a_backend_not_compiled_in_names_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let (ok, stderr) = kiln(
        &["serve", "--listen", "127.0.0.1:0", "--store", store],
        &[("KILN_MODEL__BACKEND", "wgpu")],
    );
    assert!(!ok);
    assert!(stderr.contains("--features wgpu"), "{stderr}");
}

#[test]
fn import_rejects_weights_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("wrong.toml");
    std::fs::write(
        &cfg,
        "task = \"regression\"\n[architecture]\nkind = \"mlp\"\ninput = 1000\nhidden = [400, 100]\noutput = 1\n",
    )
    .unwrap();
    let (ok, stderr) = kiln(
        &[
            "import",
            "--weights",
            common::data("seed_mlp.safetensors").to_str().unwrap(),
            "--model-config",
            cfg.to_str().unwrap(),
            "--store",
            dir.path().join("store").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok, "a 400-wide layer cannot take 500-wide weights");
    assert!(stderr.contains("does not fit"), "{stderr}");
    // Nothing was written to the store.
    let versions = dir.path().join("store/versions");
    assert!(!versions.exists() || std::fs::read_dir(versions).unwrap().count() == 0);
}

/// Queued requests at the moment of SIGTERM all complete, readiness turns 503 at
/// once, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_accepted_request_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    import_seed_mlp(dir.path());
    // Requests wait up to 400 ms for company, so some are surely queued at SIGTERM.
    let mut proc = Process::serve(
        dir.path(),
        &[
            ("KILN_BATCHING__MAX_QUEUE_DELAY_MS", "400"),
            ("KILN_BATCHING__MAX_BATCH_SIZE", "256"),
            ("KILN_SERVER__SHUTDOWN_DRAIN_DELAY_MS", "1500"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let body = json!({ "instances": [vec![0.5f32; 1000]] });
    let expected: Value = {
        let r = client
            .post(proc.url("/predict"))
            .json(&body)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["predictions"][0].clone()
    };

    // 16 clients in a loop, like traffic behind a load balancer: they stop sending
    // once readiness has failed, as the balancer would.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, body, stop, done, expected) = (
                client.clone(),
                proc.url("/predict"),
                body.clone(),
                stop.clone(),
                done.clone(),
                expected.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let r = client
                        .post(&url)
                        .json(&body)
                        .send()
                        .await
                        .expect("an accepted request completes");
                    assert_eq!(r.status(), 200);
                    let v: Value = r.json().await.unwrap();
                    let (got, want) = (
                        v["predictions"][0].as_f64().unwrap(),
                        expected.as_f64().unwrap(),
                    );
                    // Batches of other sizes may round differently in the last bits.
                    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Wait until rows are sitting in the queue, then SIGTERM.
    let metrics_url = proc.url("/metrics");
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < until,
            "rows never queued up (kiln_queue_depth stayed under 8)"
        );
        let m = client
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if sample(&m, "kiln_queue_depth") >= 8.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proc.sigterm();
    // Readiness turns 503 at once (the listener is still open during the drain delay).
    let ready_url = proc.url("/health/ready");
    let mut turned = false;
    for _ in 0..100 {
        let r = client.get(&ready_url).send().await.unwrap();
        if r.status() == 503 {
            turned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(turned, "readiness did not turn 503 after SIGTERM");
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    assert!(done.load(Ordering::SeqCst) >= 16);
    let code = tokio::task::spawn_blocking(move || proc.wait_exit())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

#[test]
fn offline_train_then_predict() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let iris = common::data("iris.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["train", "--quiet", "--store", store, "--data"])
        .arg(&iris)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("version v1") && text.contains("now active"),
        "{text}"
    );
    // The same recipe again scores the same: a tie is not better, so no promotion.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["train", "--quiet", "--store", store, "--data"])
        .arg(&iris)
        .output()
        .unwrap();
    let again = String::from_utf8_lossy(&out.stdout);
    assert!(
        again.contains("version v2") && again.contains("not promoted"),
        "{again}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["predict", "--store", store, "--data"])
        .arg(&iris)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 150);
    let truth: Vec<String> = std::fs::read_to_string(&iris)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_string())
        .collect();
    let correct = lines
        .iter()
        .zip(&truth)
        .filter(|(p, t)| p["label"] == t.as_str())
        .count();
    assert!(correct >= 140, "{correct}/150");
}

/// Config errors name the variable or the file and key as written, once; a
/// `KILN_` variable with one underscore is warned about; `--listen` takes a name.
#[test]
fn config_mistakes_are_explained_once_in_the_users_words() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let serve = ["serve", "--listen", "127.0.0.1:0", "--store", store];
    let (ok, stderr) = kiln(&serve, &[("KILN_BATCHING__MAX_BATCH_SIZE", "lots")]);
    assert!(!ok);
    assert_eq!(
        stderr.matches("KILN_BATCHING__MAX_BATCH_SIZE").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("environment variable KILN_BATCHING__MAX_BATCH_SIZE: invalid type"),
        "{stderr}"
    );
    assert!(!stderr.contains("`KILN_`"), "no nested backticks: {stderr}");
    let file = dir.path().join("kiln.toml");
    std::fs::write(&file, "[batching]\nmax_batchsize = 3\n").unwrap();
    let (ok, stderr) = kiln(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    let want = format!(
        "{}: key batching.max_batchsize: unknown key",
        file.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    assert_eq!(
        stderr.matches("max_batchsize").count(),
        2,
        "said once: {stderr}"
    );
    let (ok, stderr) = kiln(&serve, &[("KILN_AUTH__TOKEN", "short")]);
    assert!(!ok && stderr.contains("KILN_AUTH__TOKEN"), "{stderr}");

    // One underscore: warned about, and kiln still starts (on localhost, by name).
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--listen", "localhost:0", "--store", store])
        .env("KILN_BATCHING_MAX_BATCH_SIZE", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("listening") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("KILN_BATCHING_MAX_BATCH_SIZE is ignored")
            && seen.contains("did you mean KILN_BATCHING__MAX_BATCH_SIZE?"),
        "{seen}"
    );
    assert!(
        seen.contains("listening") && seen.contains("127.0.0.1:"),
        "{seen}"
    );
}

/// The operator's log: a startup line naming the config file, store and data
/// directory; one access line per request; plain values; the right verbs; no
/// ERROR for a deliberate drain; a prompt exit after "shut down cleanly".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_an_operator_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", store])
        .env("KILN_TELEMETRY__FORMAT", "json")
        .env("KILN_STORE__POLL_INTERVAL_MS", "100")
        .env("KILN_TRAINING__DATA_DIR", "/nonexistent/kiln-data")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(v) = serde_json::from_str::<Value>(&line.unwrap()) else {
                continue;
            };
            if v["message"] == "listening" {
                let _ = tx.send(v["addr"].as_str().unwrap().to_string());
            }
            if v["message"] == "shut down cleanly" {
                let _ = tx.send("down".into());
            }
            sink.lock().unwrap().push(v);
        }
    });
    let base = format!(
        "http://{}",
        rx.recv_timeout(Duration::from_secs(60)).unwrap()
    );
    common::wait_ready(&reqwest::Client::new(), &base).await;
    let client = reqwest::Client::new();
    let ok = client
        .post(format!("{base}/predict"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = client
        .post(format!("{base}/predict"))
        .json(&json!({"instances": [[1.0]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    // A version written by the command line, then a rollback over the API.
    let v2 = import_seed_mlp(dir.path());
    for _ in 0..300 {
        let ready: Value = client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["model_version"] == v2.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = client
        .post(format!("{base}/models/v1/promote"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(format!("{base}/models/rollback"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "down");
    let down = std::time::Instant::now();
    let status = child.wait().unwrap();
    eprintln!("exited {:?} after \"shut down cleanly\"", down.elapsed());
    assert!(status.success());
    assert!(
        down.elapsed() < Duration::from_secs(1),
        "{:?}",
        down.elapsed()
    );

    let lines = lines.lock().unwrap().clone();
    let find = |message: &str| lines.iter().find(|l| l["message"] == message).cloned();
    let start = find("starting kiln").expect("a startup line");
    // A data directory that is not there is said at start, naming the key.
    let missing = lines
        .iter()
        .find(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("training.data_dir (KILN_TRAINING__DATA_DIR) is not a directory")
        })
        .unwrap_or_else(|| panic!("no data_dir warning"));
    assert_eq!(missing["dir"], "/nonexistent/kiln-data");
    assert_eq!(start["store"], store);
    assert!(
        start["config_file"].is_string() && start["data_dir"].is_string(),
        "{start}"
    );
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "kiln::access")
        .collect();
    let predict = |status: u64| {
        access
            .iter()
            .find(|l| l["route"] == "/predict" && l["status"] == status)
            .unwrap_or_else(|| panic!("no access line for a {status} /predict: {access:?}"))
    };
    let line = predict(200);
    assert_eq!(line["method"], "POST");
    assert_eq!(line["version"], "v1");
    assert!(
        line["ms"].as_str().unwrap().parse::<f64>().is_ok(),
        "{line}"
    );
    assert_eq!(line["request_id"].as_str().unwrap().len(), 36, "{line}");
    assert!(
        predict(422)["reason"].as_str().unwrap().contains("expects"),
        "{}",
        predict(422)
    );
    // The command line's version is not "another replica promoted"; a rollback
    // is "rolled back".
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    assert!(
        text.iter()
            .any(|l| l.contains("set by another replica or the command line") && l.contains(&v2)),
        "{text:?}"
    );
    assert!(find("rolled back").is_some(), "{text:?}");
    assert!(find("promoted").is_some());
    for l in &text {
        assert!(
            !l.contains("Some(") && !l.contains("Classification") && !l.contains("0ns"),
            "{l}"
        );
        assert!(!l.contains("\"level\":\"ERROR\""), "{l}");
    }
}

/// `kiln train` with flags for the common recipe fields, progress lines when
/// stderr is not a terminal, a summary that says what happened, and the recipe
/// flag's mistakes explained.
#[test]
fn kiln_train_is_pleasant_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let iris = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/iris.csv");
    let train = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["train", "--store", store, "--data", iris])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = train(&[
        "--target",
        "target",
        "--epochs",
        "30",
        "--task",
        "classification",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    // Not a terminal: one line every tenth of the run.
    for epoch in [3, 15, 30] {
        assert!(
            stderr.contains(&format!("epoch {epoch}/30: train loss")),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("epoch 4/30"), "{stderr}");
    assert!(stderr.contains("task classification"), "{stderr}");
    let path = format!("{store}/versions/v1");
    assert!(
        stdout.contains(&format!("version v1 written to {path} (now active)")),
        "{stdout}"
    );
    assert!(stdout.contains("30 epochs of 30 in "), "{stdout}");
    assert!(stdout.contains("ran every epoch"), "{stdout}");
    assert!(
        stdout.contains("promotion: no version was active"),
        "{stdout}"
    );
    // Early stopping ends the run sooner, and the summary says so.
    let out = train(&["--epochs", "3000", "--quiet"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("stopped early: no better validation loss for"),
        "{stdout}"
    );
    assert!(!stdout.contains("3000 epochs of 3000"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("epoch "),
        "--quiet prints no progress: {stderr}"
    );
    // A server config where the recipe goes; a task kiln does not know.
    let out = train(&[
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("is a server configuration") && stderr.contains("--server-config"),
        "{stderr}"
    );
    let out = train(&["--task", "guess"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected `classification` or `regression`"),
        "{stderr}"
    );
}

/// Ctrl-C stops `kiln train` before the next batch and says where it was.
#[test]
fn ctrl_c_stops_kiln_train_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // The CNN recipe, without early stopping: on a fast CPU it converges in
    // about two seconds.
    let recipe = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/digits-cnn-train.toml"
    ))
    .unwrap()
    .replace(
        "early_stopping_patience = 8",
        "early_stopping_patience = 100000",
    );
    assert!(recipe.contains("patience = 100000"));
    let recipe_path = dir.path().join("recipe.toml");
    std::fs::write(&recipe_path, recipe).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["train", "--store", dir.path().to_str().unwrap(), "--data"])
        .arg(common::data("digits.csv"))
        .args(["--epochs", "100000", "--recipe"])
        .arg(&recipe_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted (Ctrl-C) after epoch"),
        "{stderr}"
    );
    assert!(stderr.contains("of 100000"), "{stderr}");
    assert!(stderr.contains("no version was written"), "{stderr}");
    assert!(!dir.path().join("versions/v1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_healthcheck_asks_health_live() {
    let dir = tempfile::tempdir().unwrap();
    let proc = Process::serve(dir.path(), &[]).await;
    let addr = proc.base.trim_start_matches("http://").to_string();
    let (ok, stderr) = kiln(&["healthcheck", "--addr", &addr], &[]);
    assert!(ok, "{stderr}");
    drop(proc); // killed
    let (ok, _) = kiln(&["healthcheck", "--addr", &addr], &[]);
    assert!(!ok, "nothing listens any more");
}
