//! Several kiln processes on one model store, as replicas behind a Service: a
//! promotion on any replica reaches all of them, any replica answers for any job,
//! and a job whose replica died reads `interrupted` once its heartbeat is stale.

mod common;

use std::time::{Duration, Instant};

use common::s3::Backing;
use common::{Process, data, finished, get_json, poll_job, serving, train_version, wait_serving};
use serde_json::{Value, json};

/// Runs a scenario on a directory store and on a bucket (moto on loopback): the
/// same test, both backends.
macro_rules! on_both_backends {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn directory() {
                super::$scenario(super::Backing::dir()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bucket() {
                super::$scenario(super::Backing::s3().await).await
            }
        }
    };
}

const POLL_MS: u64 = 200;
const HEARTBEAT_MS: u64 = 200;
const TIMEOUT_MS: u64 = 1500;

async fn replica(store: &std::path::Path, name: &str) -> Process {
    replica_on(&Backing::at(store), name).await
}

async fn replica_on(backing: &Backing, name: &str) -> Process {
    let data_dir = data("");
    let (poll, beat, timeout) = (
        POLL_MS.to_string(),
        HEARTBEAT_MS.to_string(),
        TIMEOUT_MS.to_string(),
    );
    backing
        .serve(&[
            // Different host names: replicas judge each other by heartbeat alone.
            ("HOSTNAME", name),
            ("KILN_TRAINING__DATA_DIR", data_dir.to_str().unwrap()),
            ("KILN_STORE__POLL_INTERVAL_MS", &poll),
            ("KILN_TRAINING__HEARTBEAT_INTERVAL_MS", &beat),
            ("KILN_TRAINING__HEARTBEAT_TIMEOUT_MS", &timeout),
        ])
        .await
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
    let id = common::submit_at(
        &client,
        &a.base,
        &json!({"dataset": {"path": "iris.csv"}, "promote": "always", "epochs": 20}),
    )
    .await;
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
    let id = common::submit_at(&client, &a.base, &long).await;
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
    // Not before the timeout, less the age of A's last heartbeat (one interval,
    // plus a scheduling delay on a busy machine).
    assert!(
        took >= Duration::from_millis(TIMEOUT_MS - 2 * HEARTBEAT_MS),
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

fn active_record(backing: &Backing) -> Value {
    serde_json::to_value(backing.store().active().unwrap().unwrap()).unwrap()
}

on_both_backends!(version_ids_are_never_reused_across_replicas);
async fn version_ids_are_never_reused_across_replicas(store: Backing) {
    let client = reqwest::Client::new();
    let a = replica_on(&store, "replica-a").await;
    let b = replica_on(&store, "replica-b").await;
    let v2 = train_version(&client, &a, "never").await;
    assert_eq!(v2, "v2");
    let r = client.delete(a.url("/models/v2")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The newest version is gone; its id stays taken for every replica.
    assert_eq!(train_version(&client, &b, "never").await, "v3");
    assert_eq!(train_version(&client, &a, "never").await, "v4");
}

on_both_backends!(promote_and_rollback_on_a_lagging_replica_follow_the_store);
async fn promote_and_rollback_on_a_lagging_replica_follow_the_store(store: Backing) {
    let client = reqwest::Client::new();
    // Neither replica polls: each only knows what it did itself.
    let never = [("KILN_STORE__POLL_INTERVAL_MS", "0")];
    let a = store.serve(&never).await;
    let b = store.serve(&never).await;
    let v2 = train_version(&client, &a, "never").await;
    let r = client
        .post(b.url(&format!("/models/{v2}/promote")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(active_record(&store)["version"], v2.as_str());
    assert_eq!(serving(&client, &a).await, "v1", "a has not polled");
    // Promoting what a still serves must still write the store's record.
    let r = client
        .post(a.url("/models/v1/promote"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let record = active_record(&store);
    assert_eq!(record["version"], "v1", "{record}");
    assert_eq!(record["previous"], v2.as_str(), "{record}");
    // And a rollback on the lagging replica goes by the store's record too.
    let r = client.post(b.url("/models/rollback")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let record = active_record(&store);
    assert_eq!(record["version"], v2.as_str());
    // Three writes after the first: each one counted, none lost.
    assert_eq!(record["generation"], 4, "{record}");
}

on_both_backends!(delete_and_promote_on_two_replicas_never_strand_the_record);
async fn delete_and_promote_on_two_replicas_never_strand_the_record(store: Backing) {
    let client = reqwest::Client::new();
    let a = replica_on(&store, "replica-a").await;
    let b = replica_on(&store, "replica-b").await;
    for _ in 0..5 {
        let v = train_version(&client, &a, "never").await;
        let promote = client.post(a.url(&format!("/models/{v}/promote"))).send();
        let delete = client.delete(b.url(&format!("/models/{v}"))).send();
        let (promoted, deleted) = tokio::join!(promote, delete);
        let (promoted, deleted) = (promoted.unwrap().status(), deleted.unwrap().status());
        // Exactly one wins; the record always names a version that exists.
        assert!(
            (promoted == 200) != (deleted == 200),
            "promote {promoted}, delete {deleted}"
        );
        let active = active_record(&store)["version"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            store.store().list().unwrap().contains(&active),
            "the active record names {active}, which is gone"
        );
        let r = client
            .post(a.url("/models/v1/promote"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_cancelled_from_the_other_replica() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let a = replica(dir.path(), "replica-a").await;
    let b = replica(dir.path(), "replica-b").await;
    let id = common::submit_at(
        &client,
        &a.base,
        &json!({"dataset": {"path": "digits.csv"}, "epochs": 100000, "early_stopping_patience": 0}),
    )
    .await;
    poll_job(&client, &b.base, &id, Duration::from_secs(30), |j| {
        j["state"] == "running"
    })
    .await;
    let r = client
        .delete(b.url(&format!("/train/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["cancel_requested"], true);
    let job = poll_job(&client, &b.base, &id, Duration::from_secs(30), finished).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    // Cancelling it again is a conflict, from either replica.
    let r = client
        .delete(b.url(&format!("/train/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_active_version_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut a = replica(dir.path(), "replica-a").await;
    let v2 = train_version(&client, &a, "always").await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    std::fs::remove_dir_all(dir.path().join("versions").join(&v2)).unwrap();
    // Every replica used to refuse to start; now it serves the previous version.
    let b = replica(dir.path(), "replica-b").await;
    assert_eq!(serving(&client, &b).await, "v1");
    assert_eq!(active_record(&Backing::at(dir.path()))["version"], "v1");
    let r = client
        .post(b.url("/predict"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

on_both_backends!(feedback_on_one_replica_joins_predictions_logged_by_another);
async fn feedback_on_one_replica_joins_predictions_logged_by_another(store: Backing) {
    let logging = [
        ("KILN_MONITORING__SAMPLE_RATE", "1"),
        ("KILN_MONITORING__FLUSH_INTERVAL_MS", "50"),
    ];
    let a = store
        .serve(&[&[("HOSTNAME", "a")][..], &logging].concat())
        .await;
    let b = store
        .serve(&[&[("HOSTNAME", "b")][..], &logging].concat())
        .await;
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(a.url("/predict"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids = answer["prediction_ids"].as_array().unwrap().clone();
    let items = json!({"items": [
        {"prediction_id": ids[0], "target": "setosa"},
        {"prediction_id": ids[1], "target": "virginica"},
    ]});
    // Replica a writes its segment within its flush interval; b finds it in the
    // store.
    let started = Instant::now();
    loop {
        let r = client
            .post(b.url("/feedback"))
            .json(&items)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        if status == 200 {
            assert_eq!(body, json!({"accepted": 2, "joined": 2, "remembered": 0}));
            break;
        }
        assert_eq!(status, 422, "{body}");
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = get_json(&client, &b.url("/monitoring")).await;
    assert_eq!(report["versions"][0]["labelled"], 2, "{report}");
}

on_both_backends!(replicas_started_together_on_an_empty_store_make_one_default_model);
async fn replicas_started_together_on_an_empty_store_make_one_default_model(store: Backing) {
    let client = reqwest::Client::new();
    // Each replica finds the store empty and trains the default model; one writes
    // it, and the other serves that one.
    let (a, b) = tokio::join!(
        replica_on(&store, "replica-a"),
        replica_on(&store, "replica-b")
    );
    assert_eq!(store.store().list().unwrap(), ["v1"], "one default model");
    for p in [&a, &b] {
        assert_eq!(serving(&client, p).await, "v1");
        let models = get_json(&client, &p.url("/models")).await;
        assert_eq!(models["versions"].as_array().unwrap().len(), 1, "{models}");
        let r = client
            .post(p.url("/predict"))
            .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// Polls `p`'s `GET /monitoring` until its `kind` route is `want` (`null`: none).
async fn wait_route(client: &reqwest::Client, p: &Process, kind: &str, want: Value) {
    let started = Instant::now();
    loop {
        let report = get_json(client, &p.url("/monitoring")).await;
        if report[kind] == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} never had {kind} {want}: {report}",
            p.base
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_backends!(canary_and_shadow_routes_follow_the_store_on_every_replica);
async fn canary_and_shadow_routes_follow_the_store_on_every_replica(store: Backing) {
    let client = reqwest::Client::new();
    let poll = POLL_MS.to_string();
    let env = [("KILN_STORE__POLL_INTERVAL_MS", poll.as_str())];
    let a = store.serve(&env).await;
    let b = store.serve(&env).await;
    let v2 = train_version(&client, &a, "never").await;
    let set = |p: &Process, kind: &str, percent: u32| {
        client
            .post(p.url(&format!("/models/{v2}/{kind}")))
            .json(&json!({ "percent": percent }))
            .send()
    };
    // A canary set on one replica reaches the other.
    let r = set(&a, "canary", 50).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_route(
        &client,
        &b,
        "canary",
        json!({"version": v2, "percent": 50.0}),
    )
    .await;
    // And the other way: a shadow set on b, then the canary removed on b.
    let r = set(&b, "shadow", 100).await.unwrap();
    assert_eq!(r.status(), 200);
    wait_route(
        &client,
        &a,
        "shadow",
        json!({"version": v2, "percent": 100.0}),
    )
    .await;
    let r = set(&b, "canary", 0).await.unwrap();
    assert_eq!(r.status(), 200);
    wait_route(&client, &a, "canary", Value::Null).await;
    wait_route(
        &client,
        &a,
        "shadow",
        json!({"version": v2, "percent": 100.0}),
    )
    .await;
    // Deleting the version on one replica drops its routes on both.
    let r = client
        .delete(a.url(&format!("/models/{v2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_route(&client, &b, "shadow", Value::Null).await;
    wait_route(&client, &a, "shadow", Value::Null).await;
}

/// Uploads PyTorch's `linear.pt` fixture as a version of the named model `name`
/// on `p`; the status and the version.
async fn upload_linear(client: &reqwest::Client, p: &Process, name: &str) -> (u16, Value) {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(data("pytorch/reference.json")).unwrap()).unwrap();
    let r = &reference["linear.pt"];
    let config = json!({"task": "regression", "architecture": {
        "kind": "sequential", "input_shape": r["input_shape"], "layers": r["layers"]}});
    let form = common::import_form(
        &data("pytorch/linear.pt"),
        serde_json::to_vec(&config).unwrap(),
        "model.json",
    );
    let r = client
        .post(p.url(&format!("/models/{name}/versions")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

on_both_backends!(a_named_model_made_on_one_replica_serves_on_every_replica);
async fn a_named_model_made_on_one_replica_serves_on_every_replica(store: Backing) {
    let client = reqwest::Client::new();
    let poll = POLL_MS.to_string();
    let env = [("KILN_STORE__POLL_INTERVAL_MS", poll.as_str())];
    let a = store.serve(&env).await;
    let b = store.serve(&env).await;
    let (status, body) = upload_linear(&client, &a, "fraud").await;
    assert_eq!(status, 201, "{body}");
    // b lists the model, loads it and answers with its version, within a few polls.
    let version_on_b = || async {
        let r = client
            .post(b.url("/models/fraud/predict"))
            .json(&json!({"instances": [[0.5, -1.0]]}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let started = Instant::now();
    loop {
        let (code, body) = version_on_b().await;
        if code == 200 {
            assert_eq!(body["model_version"], "v1", "{body}");
            break;
        }
        assert_eq!(code, 404, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "b never served fraud"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A promotion on a reaches b's copy of the model.
    let (status, body) = upload_linear(&client, &a, "fraud").await;
    assert_eq!((status, &body["version"]), (201, &json!("v2")), "{body}");
    let r = client
        .post(a.url("/models/fraud/versions/v2/promote"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    while version_on_b().await.1["model_version"] != "v2" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "b never followed v2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let index: Value = client
        .post(b.url("/v2/repository/index"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        index
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "fraud" && e["version"] == "v2"),
        "{index}"
    );
    // Deleted on a (unloaded there first): b stops serving it.
    let r = client
        .post(a.url("/v2/repository/models/fraud/unload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client.delete(a.url("/models/fraud")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let started = Instant::now();
    while version_on_b().await.0 != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "b still serves fraud"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
