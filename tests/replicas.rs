//! Several kiln processes on one model store, as replicas behind a Service: a
//! promotion on any replica reaches all of them, any replica answers for any job,
//! and a job whose replica died reads `interrupted` once its heartbeat is stale.

mod common;

use std::time::{Duration, Instant};

use common::{Process, data, finished, get_json, poll_job};
use serde_json::{Value, json};

const POLL_MS: u64 = 200;
const HEARTBEAT_MS: u64 = 200;
const TIMEOUT_MS: u64 = 1500;

async fn replica(store: &std::path::Path, name: &str) -> Process {
    let data_dir = data("");
    let (poll, beat, timeout) = (
        POLL_MS.to_string(),
        HEARTBEAT_MS.to_string(),
        TIMEOUT_MS.to_string(),
    );
    Process::serve(
        store,
        &[
            // Different host names: replicas judge each other by heartbeat alone.
            ("HOSTNAME", name),
            ("KILN_TRAINING__DATA_DIR", data_dir.to_str().unwrap()),
            ("KILN_STORE__POLL_INTERVAL_MS", &poll),
            ("KILN_TRAINING__HEARTBEAT_INTERVAL_MS", &beat),
            ("KILN_TRAINING__HEARTBEAT_TIMEOUT_MS", &timeout),
        ],
    )
    .await
}

async fn serving(client: &reqwest::Client, p: &Process) -> String {
    get_json(client, &p.url("/health/ready")).await["model_version"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls until `p` serves `version`; returns how long that took.
async fn wait_serving(client: &reqwest::Client, p: &Process, version: &str) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if serving(client, p).await == version {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never served {version}", p.base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_promotions_jobs_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut a = replica(dir.path(), "replica-a").await; // makes the default model, v1
    let b = replica(dir.path(), "replica-b").await;
    assert_eq!(serving(&client, &a).await, "v1");
    assert_eq!(serving(&client, &b).await, "v1");

    // A trains and promotes; B serves the new version within the polling bound.
    let r = client
        .post(a.url("/train"))
        .json(&json!({"dataset": {"path": "iris.csv"}, "promote": "always", "epochs": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = poll_job(&client, &a.base, &id, Duration::from_secs(60), finished).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let new = job["version"].as_str().unwrap().to_string();
    let took = wait_serving(&client, &b, &new).await;
    eprintln!("replica B served {new} {took:?} after A finished");
    assert!(took < Duration::from_millis(POLL_MS * 5), "{took:?}");
    // B answers for A's job from the shared store.
    let seen_by_b = get_json(&client, &b.url(&format!("/train/{id}"))).await;
    assert_eq!(seen_by_b["state"], "succeeded");
    assert_eq!(seen_by_b["version"], new.as_str());
    assert!(
        seen_by_b["owner"]
            .as_str()
            .unwrap()
            .starts_with("replica-a:")
    );

    // A rollback sent to B reaches A.
    let r = client.post(b.url("/models/rollback")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], "v1");
    let took = wait_serving(&client, &a, "v1").await;
    eprintln!("replica A served the rollback {took:?} after B did it");
    assert!(took < Duration::from_millis(POLL_MS * 5), "{took:?}");

    // A dies during a job: B sees it running while A's heartbeat is fresh, then
    // interrupted once it is stale; the active version does not change.
    let long = json!({"dataset": {"path": "digits.csv"}, "epochs": 100000, "early_stopping_patience": 0,
        "model": {"hidden": [256, 256]}});
    let r = client
        .post(a.url("/train"))
        .json(&long)
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job_url = b.url(&format!("/train/{id}"));
    poll_job(&client, &b.base, &id, Duration::from_secs(30), |j| {
        j["state"] == "running"
    })
    .await;
    // Still running a few heartbeats later: the heartbeat keeps it alive.
    tokio::time::sleep(Duration::from_millis(TIMEOUT_MS + 500)).await;
    assert_eq!(get_json(&client, &job_url).await["state"], "running");
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    let killed = Instant::now();
    let job = poll_job(&client, &b.base, &id, Duration::from_secs(30), |j| {
        j["state"] == "interrupted"
    })
    .await;
    let took = killed.elapsed();
    eprintln!("B reported the job interrupted {took:?} after A died");
    assert!(
        took >= Duration::from_millis(TIMEOUT_MS - HEARTBEAT_MS),
        "{took:?}"
    );
    assert!(job["error"].as_str().unwrap().contains("replica-a"));
    assert_eq!(serving(&client, &b).await, "v1");
    let models = get_json(&client, &b.url("/models")).await;
    assert_eq!(models["active"], "v1");
    assert_eq!(
        models["versions"].as_array().unwrap().len(),
        2,
        "the dead job wrote nothing"
    );
}
