//! The loop closed, against the real binary: kiln serves a classifier, a client
//! streams requests and labels them through `POST /feedback`, halfway through the
//! inputs shift and the labelling rule changes (`examples/data/drift`). Drift is
//! flagged soon after the shift and never before it, an automatic job names its
//! trigger, and live accuracy recovers on a retrained version with the same labels.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use common::{Process, get_json, poll_job, submit_at};
use serde_json::{Value, json};

const SHIFT: usize = 1500;

fn rows(name: &str) -> Vec<([f32; 2], String)> {
    let path = format!("{}/examples/data/drift/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                [f[0].parse().unwrap(), f[1].parse().unwrap()],
                f[2].to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_triggers_a_retrain_and_accuracy_recovers() {
    let metrics = drift_scenario(&[]).await;
    assert_eq!(
        common::sample(
            &metrics,
            "kiln_retrain_trials_total{model=\"kiln\",outcome=\"promoted\"}"
        ),
        0.0,
        "no gate, no trial"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_trial_gates_the_automatic_promotion() {
    let metrics = drift_scenario(&[
        ("KILN_RETRAIN__GATE", "shadow"),
        ("KILN_RETRAIN__GATE_PERCENT", "100"),
        ("KILN_RETRAIN__GATE_MIN_LABELLED", "100"),
    ])
    .await;
    assert!(
        common::sample(
            &metrics,
            "kiln_retrain_trials_total{model=\"kiln\",outcome=\"promoted\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_trial_gates_the_automatic_promotion() {
    let metrics = drift_scenario(&[
        ("KILN_RETRAIN__GATE", "canary"),
        ("KILN_RETRAIN__GATE_PERCENT", "50"),
        ("KILN_RETRAIN__GATE_MIN_LABELLED", "100"),
    ])
    .await;
    assert!(
        common::sample(
            &metrics,
            "kiln_retrain_trials_total{model=\"kiln\",outcome=\"promoted\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

/// Streams the drift example through a server with `extra` settings; checks the
/// drift, the trigger and the recovery; returns the final metrics.
async fn drift_scenario(extra: &[(&str, &str)]) -> String {
    drift_scenario_at("", extra).await
}

/// A named model, trained through its own route, follows the drift on its own
/// `[models.<name>.retrain]` settings (retraining is off for the process): its
/// automatic jobs name it, and the default model keeps its one version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_model_retrains_on_its_own_settings() {
    let settings = [
        ("ENABLED", "true"),
        ("CHECK_INTERVAL_MS", "100"),
        ("MIN_ACCURACY", "0.85"),
        ("MIN_LABELLED", "100"),
        ("COOLDOWN_MS", "1500"),
        ("HOLDOUT_ROWS", "150"),
        ("MAX_ROWS", "600"),
    ];
    let named: Vec<(String, &str)> = settings
        .iter()
        .map(|(k, v)| (format!("KILN_MODELS__FRAUD__RETRAIN__{k}"), *v))
        .chain([("KILN_RETRAIN__ENABLED".to_string(), "false")])
        .collect();
    let extra: Vec<(&str, &str)> = named.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    drift_scenario_at("/models/fraud", &extra).await;
}

/// [`drift_scenario`] against the model whose routes start with `prefix` (""
/// for the default model); `extra` settings come last and win.
async fn drift_scenario_at(prefix: &str, extra: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::serve(
        dir.path(),
        &[
            ("KILN_MONITORING__SAMPLE_RATE", "1"),
            ("KILN_MONITORING__FLUSH_INTERVAL_MS", "50"),
            ("KILN_MONITORING__WINDOW", "200"),
            ("KILN_MONITORING__DRIFT_WINDOW", "200"),
            ("KILN_MONITORING__DRIFT_MIN_SAMPLES", "150"),
            ("KILN_MONITORING__DRIFT_THRESHOLD", "0.25"),
            ("KILN_RETRAIN__ENABLED", "true"),
            ("KILN_RETRAIN__CHECK_INTERVAL_MS", "100"),
            ("KILN_RETRAIN__MIN_ACCURACY", "0.85"),
            ("KILN_RETRAIN__MIN_LABELLED", "100"),
            ("KILN_RETRAIN__COOLDOWN_MS", "1500"),
            ("KILN_RETRAIN__HOLDOUT_ROWS", "150"),
            ("KILN_RETRAIN__MAX_ROWS", "600"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    )
    .await;
    let client = reqwest::Client::new();
    let base = server.base.clone();

    // The first model: trained on the world before the shift, made active.
    let train = std::fs::read_to_string(format!(
        "{}/examples/data/drift/train.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let id = submit_at(
        &client,
        &format!("{base}{prefix}"),
        &json!({"dataset": {"csv": train}, "model": {"hidden": [16]}, "epochs": 60,
                "optimizer": {"kind": "adam", "lr": 0.01}, "promote": "always"}),
    )
    .await;
    let job = poll_job(
        &client,
        &base,
        &id,
        Duration::from_secs(120),
        common::finished,
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let first = job["version"].as_str().unwrap().to_string();
    assert!(
        job.get("trigger").is_none(),
        "a user's job has no trigger: {job}"
    );

    let stream = rows("stream.csv");
    let mut labels_seen: BTreeSet<String> = BTreeSet::new();
    let mut recent: VecDeque<bool> = VecDeque::new();
    let mut pending = Vec::new();
    let mut pre_shift_correct = 0usize;
    let mut drifted_at = None;
    let mut recovered_at = None;
    let mut versions = BTreeSet::new();
    let started = Instant::now();
    // The stream goes on (cycling the shifted rows) until accuracy recovers, or
    // three minutes pass on a slow machine.
    for i in 0.. {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no recovery after {i} requests"
        );
        let k = if i < stream.len() {
            i
        } else {
            SHIFT + (i - SHIFT) % (stream.len() - SHIFT)
        };
        let (x, label) = &stream[k];
        let r = client
            .post(format!(
                "{base}{}",
                if prefix.is_empty() {
                    "/predict".to_string()
                } else {
                    format!("{prefix}/predict")
                }
            ))
            .json(&json!({"instances": [x]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}: {}", r.text().await.unwrap());
        let version = r.headers()["x-model-version"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["model_version"],
            version.as_str(),
            "every answer names its version"
        );
        versions.insert(version.clone());
        let prediction = &body["predictions"][0];
        labels_seen.extend(
            prediction["probabilities"]
                .as_object()
                .unwrap()
                .keys()
                .cloned(),
        );
        let correct = prediction["label"] == label.as_str();
        if i < SHIFT {
            pre_shift_correct += usize::from(correct);
        }
        recent.push_back(correct);
        if recent.len() > 200 {
            recent.pop_front();
        }
        pending.push(json!({"prediction_id": body["prediction_ids"][0], "target": label}));
        if pending.len() == 10 {
            let r = client
                .post(format!("{base}{prefix}/feedback"))
                .json(&json!({"items": std::mem::take(&mut pending)}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            let drift = get_json(&client, &format!("{base}{prefix}/monitoring/drift")).await;
            if drift["drifted"] == true {
                assert!(
                    i >= SHIFT,
                    "a false alarm before the shift, at request {i}: {drift}"
                );
                drifted_at.get_or_insert(i);
            }
        }
        if i >= SHIFT && drifted_at.is_some() && recovered_at.is_none() && version != first {
            let accuracy = recent.iter().filter(|c| **c).count() as f64 / recent.len() as f64;
            let window_is_new = i - SHIFT >= recent.len();
            if window_is_new && accuracy >= pre_shift_correct as f64 / SHIFT as f64 - 0.05 {
                recovered_at = Some(i);
                break;
            }
        }
        // After the shift, leave the retraining job time to run.
        if i >= SHIFT && i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    let pre_accuracy = pre_shift_correct as f64 / SHIFT as f64;
    let drifted_at = drifted_at.expect("the drift score never crossed its threshold");
    eprintln!(
        "pre-shift accuracy {pre_accuracy:.3}; drift flagged {} requests after the shift; \
         recovered {:?} labelled rows after the shift; versions {versions:?}; {:.1} s",
        drifted_at - SHIFT,
        recovered_at.map(|r| r - SHIFT),
        started.elapsed().as_secs_f64()
    );
    assert!(pre_accuracy > 0.9, "{pre_accuracy}");
    assert!(
        drifted_at - SHIFT <= 500,
        "drift flagged {} requests after the shift",
        drifted_at - SHIFT
    );
    assert!(recovered_at.is_some_and(|r| r > SHIFT));

    // Automatic jobs say what started them; the labels stayed the same two.
    let jobs = get_json(&client, &format!("{base}/train")).await;
    let automatic: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j.get("trigger").is_some())
        .collect();
    assert!(!automatic.is_empty(), "{jobs}");
    let model = prefix.strip_prefix("/models/").map(Value::from);
    for j in &automatic {
        assert_eq!(j.get("model"), model.as_ref(), "{j}");
        let trigger = j["trigger"].as_str().unwrap();
        assert!(
            ["drift:", "quality:", "follow_up:"]
                .iter()
                .any(|t| trigger.starts_with(t)),
            "{trigger}"
        );
    }
    // With a gate, the held version's job says how its live trial ended (written
    // just after the promotion the loop above saw).
    if automatic.iter().any(|j| j["held"] == true) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let jobs = get_json(&client, &format!("{base}/train")).await;
            let said: Vec<&str> = jobs["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|j| j["trial"].as_str())
                .collect();
            if said.iter().any(|t| t.starts_with("passed: live")) {
                assert!(said.iter().any(|t| t.ends_with("; promoted")), "{said:?}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{jobs}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        labels_seen,
        BTreeSet::from(["no".to_string(), "yes".to_string()])
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = prefix.strip_prefix("/models/").unwrap_or("kiln");
    let started_jobs: f64 = ["drift", "quality", "labels", "follow_up"]
        .iter()
        .map(|t| {
            common::sample(
                &metrics,
                &format!("kiln_retrain_jobs_total{{model=\"{label}\",trigger=\"{t}\"}}"),
            )
        })
        .sum();
    assert!(started_jobs >= 1.0, "{metrics}");
    if !prefix.is_empty() {
        // The default model was never retrained.
        let default = get_json(&client, &format!("{base}/models")).await;
        assert_eq!(
            default["versions"].as_array().unwrap().len(),
            1,
            "{default}"
        );
    }
    metrics
}

#[path = "retrain/worlds.rs"]
mod worlds;

#[path = "retrain/scenarios.rs"]
mod scenarios;

use worlds::Change;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_switching_unit_recovers_with_the_defaults() {
    let report = scenarios::run(Change::UnitSwitch, 11, 2_500).await;
    scenarios::assert_recovers(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_labelling_rule_recovers_with_the_defaults() {
    let report = scenarios::run(Change::NewRule, 12, 2_500).await;
    scenarios::assert_recovers(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gradual_calibration_drift_recovers_with_the_defaults() {
    let report = scenarios::run(Change::Calibration { ramp: 2_000 }, 13, 2_500).await;
    scenarios::assert_recovers(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seasonal_cycle_raises_no_alarm() {
    let report = scenarios::run(Change::Season { period: 300 }, 14, 2_000).await;
    assert!(report.false_alarm.is_none(), "{report:#?}");
    assert!(report.jobs.is_empty(), "{report:#?}");
    assert!(report.before > 0.8, "{report:#?}");
}
