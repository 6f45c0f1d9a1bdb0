//! Shutdown: every thread kiln starts is joined before `run` returns, and SIGTERM
//! to the real binary loses no logged prediction.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::{Process, Server, poll_job, post, submit, train_config};
use serde_json::{Value, json};

/// Every prediction id in the store's prediction log (`predictions/`).
fn logged_ids(store: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let mut dirs = vec![store.join("predictions")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let segment: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for entry in segment["entries"].as_array().unwrap() {
                ids.push(entry["id"].as_str().unwrap().to_string());
            }
        }
    }
    ids
}

/// The audit's case: `sample_rate = 1`, 100 predictions, 1.5 s (the first ones
/// are written by then), 50 more, SIGTERM at once. The process exits 0 and all
/// 150 are in the log; restarted on the same store, it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_every_logged_prediction_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("KILN_MONITORING__SAMPLE_RATE", "1")];
    let mut proc = Process::serve(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let mut sent = Vec::new();
    for i in 0..150 {
        if i == 100 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let r = client
            .post(proc.url("/predict"))
            .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        sent.push(body["prediction_ids"][0].as_str().unwrap().to_string());
    }
    proc.sigterm();
    let (code, proc) = tokio::task::spawn_blocking(move || (proc.wait_exit(), proc))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    drop(proc);

    let logged = logged_ids(dir.path());
    let unique: HashSet<&String> = logged.iter().collect();
    assert_eq!(unique.len(), logged.len(), "each prediction is logged once");
    let missing: Vec<&String> = sent.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} predictions are not in the log: {missing:?}",
        missing.len(),
        sent.len()
    );
    assert_eq!(logged.len(), sent.len());

    let proc = Process::serve(dir.path(), &env).await;
    let r = client
        .post(proc.url("/predict"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The names of this process's threads that kiln starts and owns.
fn kiln_threads() -> Vec<String> {
    const OWNED: [&str; 6] = [
        "kiln-executor",
        "kiln-models",
        "kiln-explain",
        "kiln-trainer",
        "kiln-heartbeat",
        // Thread names are cut to 15 bytes: "kiln-prediction-log".
        "kiln-prediction",
    ];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| OWNED.contains(&name.as_str()))
        .collect()
}

/// With a prediction logged, an explanation made and a job running, `run`
/// returns only once every kiln thread has ended: the job's worker process is
/// reaped and its record says `interrupted`. (The only in-process server of this
/// test binary: the thread census is of this process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_joins_every_thread_kiln_started() {
    if !Path::new("/proc/self/task").exists() {
        return; // Linux only
    }
    // rayon's global pool (the CPU backend's matmuls use it) belongs to the
    // process, not to kiln: its threads would take the name of the thread that
    // first used it, so it is named here for the census to tell it apart.
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("rayon-global-{i}"))
        .build_global()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = train_config(dir.path());
    config.monitoring.sample_rate = 1.0;
    // At idle priority a busy machine may not schedule the job's worker promptly.
    config.training.low_priority = false;
    let server = Server::start(config).await;
    let mut running = kiln_threads();
    running.sort();
    assert_eq!(running.len(), 6, "{running:?}");

    let r = server.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
    assert_eq!(r.status(), 200);
    let r = post(
        &server,
        "/explain",
        json!({"instances": [[5.1, 3.5, 1.4, 0.2]], "method": "gradient_x_input"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let id = submit(
        &server,
        json!({"dataset": {"path": "digits.csv"}, "epochs": 100000,
            "early_stopping_patience": 0, "model": {"hidden": [256, 256]}}),
    )
    .await;
    poll_job(
        &server.client,
        &server.base,
        &id,
        Duration::from_secs(60),
        |job| job["state"] == "running" && job["epoch"].as_u64().unwrap() >= 1,
    )
    .await;
    // The job's worker (the other test's server is a child of this process too).
    let workers: Vec<u32> = common::child_pids(std::process::id())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&id))
        })
        .collect();
    assert_eq!(workers.len(), 1, "the job runs in a worker process");

    server.stop().await.unwrap();
    let left = kiln_threads();
    assert!(
        left.is_empty(),
        "threads still running after shutdown: {left:?}"
    );
    for pid in workers {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} was not waited for"
        );
    }
    let store = kiln::registry::Store::open(dir.path()).unwrap();
    let record = store.read_job(&id).unwrap().unwrap();
    assert_eq!(record["state"], "interrupted", "{record}");
    assert_eq!(logged_ids(dir.path()).len(), 1, "the prediction was logged");
}
