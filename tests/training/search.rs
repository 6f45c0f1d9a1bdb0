//! `search` through `/train`: every trial listed with what it tried and its
//! score, the best kept, one version written.

use serde_json::json;

use super::common::{Server, submit, train_config, wait_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_lists_every_trial_and_writes_the_best_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(train_config(dir.path())).await;
    // A recipe that learns slowly as given: the trials' other rates do better.
    let id = submit(
        &server,
        json!({"dataset": {"path": "iris.csv"}, "epochs": 15, "promote": "always",
               "optimizer": {"kind": "adam", "lr": 0.0003}, "search": {"trials": 6}}),
    )
    .await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let trials = job["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6, "{job}");
    assert_eq!(trials[0]["lr"], 0.0003, "trial 0 is the recipe: {job}");
    let chosen: Vec<_> = trials.iter().filter(|t| t["chosen"] == true).collect();
    assert_eq!(chosen.len(), 1, "{job}");
    let score = |t: &serde_json::Value| t["val_metric"].as_f64().unwrap();
    let best = trials.iter().map(score).fold(f64::MIN, f64::max);
    assert_eq!(score(chosen[0]), best, "{job}");
    assert!(best >= score(&trials[0]), "{job}");
    assert_eq!(job["metrics"]["accuracy"].as_f64().unwrap(), best, "{job}");
    // One version: the best trial's.
    let versions = super::versions(dir.path());
    assert_eq!(
        versions.len(),
        2,
        "the default model and the kept trial: {versions:?}"
    );
    server.stop().await.unwrap();
}
