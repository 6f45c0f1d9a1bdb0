//! Chaos: the real binary killed with SIGKILL at random points of 30
//! train-and-promote cycles on one store. After every restart the store loads, the
//! active version answers, no job reads `running`, no version id ever names two
//! different versions, and no worker process outlived its server.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Process, get_json};
use kiln::training::data::SplitMix64;
use serde_json::{Value, json};

const CYCLES: usize = 30;

/// Every version in the store, with its manifest's bytes.
fn versions(store: &std::path::Path) -> HashMap<String, Vec<u8>> {
    std::fs::read_dir(store.join("versions"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let manifest = std::fs::read(e.path().join("model.json")).ok()?;
            Some((e.file_name().to_str()?.to_string(), manifest))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_of_train_and_promote_cycles() {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return; // Linux only
    }
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut rng = SplitMix64(2026);
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    let env = [
        ("KILN_TRAINING__HEARTBEAT_INTERVAL_MS", "100"),
        ("KILN_TRAINING__HEARTBEAT_TIMEOUT_MS", "1000"),
    ];
    let started = Instant::now();
    let mut killed_while_training = 0;
    for cycle in 0..CYCLES {
        let mut server = Process::serve(dir.path(), &env).await;

        // The store loaded and its active version answers.
        let active: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("active.json")).unwrap())
                .unwrap();
        let ready = get_json(&client, &server.url("/health/ready")).await;
        assert_eq!(ready["model_version"], active["version"], "cycle {cycle}");
        // (The default iris model, or a digits one: ask for the width.)
        let meta = get_json(&client, &server.url("/v2/models/kiln")).await;
        let width = meta["inputs"][0]["shape"][1].as_u64().unwrap() as usize;
        let r = client
            .post(server.url("/predict"))
            .json(&json!({"instances": [vec![0.5; width]]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "cycle {cycle}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["model_version"], active["version"], "cycle {cycle}");
        // No job of a dead process reads running (or queued).
        let jobs = get_json(&client, &server.url("/train")).await;
        for job in jobs["jobs"].as_array().unwrap() {
            assert!(
                job["state"] != "running" && job["state"] != "queued",
                "cycle {cycle}: {job}"
            );
        }
        // An id never names two different versions.
        for (id, manifest) in versions(dir.path()) {
            if let Some(before) = seen.get(&id) {
                assert_eq!(
                    before, &manifest,
                    "cycle {cycle}: version id {id} was reused"
                );
            }
            seen.insert(id, manifest);
        }

        // Train and promote; die at a random point of it.
        // Up to a few seconds of training, then
        // the version write and the promotion.
        let epochs = 1 + rng.next_u64() % 300;
        let r = client
            .post(server.url("/train"))
            .json(&json!({"dataset": {"path": "digits.csv"}, "epochs": epochs,
                          "early_stopping_patience": 0, "promote": "always"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "cycle {cycle}");
        tokio::time::sleep(Duration::from_millis(rng.next_u64() % 1500)).await;
        let workers = common::child_pids(server.child.id());
        killed_while_training += usize::from(!workers.is_empty());
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        for pid in workers {
            while !common::process_dead(pid) {
                assert!(
                    Instant::now() < until,
                    "cycle {cycle}: worker {pid} outlived its server"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    eprintln!(
        "{CYCLES} cycles in {:?}; killed during training {killed_while_training} times; {} versions",
        started.elapsed(),
        seen.len()
    );
    assert!(killed_while_training > 0, "no kill hit a running job");
    assert!(seen.len() > 1, "no cycle got as far as a new version");
}
