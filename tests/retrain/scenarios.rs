//! The closed loop on worlds it never saw (`worlds`), with the shipped defaults
//! plus `retrain.enabled`, a short check interval and cooldown. A client streams
//! one-instance requests at a steady pace and labels every answer within 20
//! requests, sending the instance with the label (at the default sample rate
//! most predictions are not logged). Before the change nothing may alarm; after
//! it, live accuracy over the last 200 answers must come back within 5 points of
//! its level before the change within 1,500 labelled rows.
//!
//! The bound is in labels, not seconds: in the field labels come over hours and
//! a job takes seconds, so the client holds back while an automatic job trains
//! (checked every 50 requests); a slow or busy machine then measures the same.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{self, Process, get_json, poll_job, submit_at};
use super::worlds::{Change, World};

/// Requests before the change.
pub const BEFORE: usize = 1_000;
/// Labelled rows after the change (after a ramp's end) within which accuracy
/// must be back.
pub const RECOVERY_BOUND: usize = 1_500;

/// What one scenario showed.
#[derive(Debug)]
pub struct Report {
    pub before: f64,
    /// Labelled rows after the change (a ramp's end) until the last 200 answers
    /// were back within 5 points; `None` if they never were in the run.
    pub recovered_after: Option<usize>,
    /// A drift flag or an automatic job before the change.
    pub false_alarm: Option<String>,
    /// Each automatic job: its trigger, the window it chose, whether promoted.
    pub jobs: Vec<String>,
}

/// Runs `change` from request [`BEFORE`] on; `after` requests follow the change
/// (a ramp's end) at most, fewer once accuracy is back.
pub async fn run(change: Change, seed: u64, after: usize) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::serve(
        dir.path(),
        &[
            ("KILN_RETRAIN__ENABLED", "true"),
            ("KILN_RETRAIN__CHECK_INTERVAL_MS", "200"),
            ("KILN_RETRAIN__COOLDOWN_MS", "3000"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let mut world = World::new(change, BEFORE, seed);

    // The first model: 2,000 rows of the world before the change, the default
    // recipe.
    let id = submit_at(
        &client,
        &base,
        &json!({"dataset": {"csv": world.training_csv(2_000)}, "promote": "always"}),
    )
    .await;
    let job = poll_job(
        &client,
        &base,
        &id,
        Duration::from_secs(300),
        common::finished,
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");

    let ramp = match change {
        Change::Calibration { ramp } => ramp,
        _ => 0,
    };
    let settled = BEFORE + ramp;
    let mut recent: VecDeque<bool> = VecDeque::new();
    let mut pending = Vec::new();
    let (mut before_right, mut report) = (
        0usize,
        Report {
            before: 0.0,
            recovered_after: None,
            false_alarm: None,
            jobs: Vec::new(),
        },
    );
    let started = Instant::now();
    for t in 0..settled + after {
        let (x, class) = world.sample(t);
        let r = client
            .post(format!("{base}/predict"))
            .json(&json!({"instances": [x]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {t}: {}", r.text().await.unwrap());
        let body: Value = r.json().await.unwrap();
        let right = body["predictions"][0]["label"] == class;
        if t < BEFORE {
            before_right += usize::from(right);
        }
        recent.push_back(right);
        if recent.len() > 200 {
            recent.pop_front();
        }
        pending.push(
            json!({"prediction_id": body["prediction_ids"][0], "instance": x,
                            "target": class}),
        );
        if pending.len() == 20 {
            let r = client
                .post(format!("{base}/feedback"))
                .json(&json!({"items": std::mem::take(&mut pending)}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
        if t < BEFORE && t % 100 == 99 && report.false_alarm.is_none() {
            report.false_alarm = alarm(&client, &base).await;
        }
        if t == BEFORE {
            report.before = before_right as f64 / BEFORE as f64;
        }
        // Back: 200 answers all after the change (after a ramp's end), within 5
        // points of the level before it.
        if t >= settled + 200 && report.recovered_after.is_none() {
            let now = recent.iter().filter(|r| **r).count() as f64 / recent.len() as f64;
            if now >= report.before - 0.05 {
                report.recovered_after = Some(t + 1 - settled);
                if change_is_real(change) {
                    break;
                }
            }
        }
        if t % 50 == 49 {
            wait_for_jobs(&client, &base).await;
        }
        // A steady client: about 150 requests a second.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !change_is_real(change) && report.false_alarm.is_none() {
        report.false_alarm = alarm(&client, &base).await;
    }
    let jobs = get_json(&client, &format!("{base}/train")).await;
    for j in jobs["jobs"].as_array().unwrap() {
        let Some(trigger) = j["trigger"].as_str() else {
            continue;
        };
        let chosen = j["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["chosen"] == true)
            .map(|c| {
                format!(
                    "{} ({} rows, {:.3})",
                    c["window"],
                    c["train_rows"],
                    c["val_metric"].as_f64().unwrap_or(f64::NAN)
                )
            })
            .collect::<Vec<_>>()
            .join("");
        report.jobs.push(format!(
            "{} -> window {chosen}, promoted {}",
            trigger.split(':').next().unwrap_or(trigger),
            j["promoted"]
        ));
    }
    eprintln!(
        "{change:?}: before {:.3}, recovered after {:?} labelled rows, false alarm {:?}, {:.0} s; jobs {:#?}",
        report.before,
        report.recovered_after,
        report.false_alarm,
        started.elapsed().as_secs_f64(),
        report.jobs
    );
    report
}

/// Waits (at most two minutes) while an automatic job is queued or running.
async fn wait_for_jobs(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let jobs = get_json(client, &format!("{base}/train")).await;
        let busy = jobs["jobs"].as_array().unwrap().iter().any(|j| {
            j.get("trigger").is_some()
                && ["queued", "running"].contains(&j["state"].as_str().unwrap_or(""))
        });
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the scenario changes the world (a season does not).
fn change_is_real(change: Change) -> bool {
    !matches!(change, Change::Season { .. })
}

/// A drift flag, or an automatic job started, if any.
async fn alarm(client: &reqwest::Client, base: &str) -> Option<String> {
    let drift = get_json(client, &format!("{base}/monitoring/drift")).await;
    if drift["drifted"] == true {
        return Some(format!("drift flagged: {drift}"));
    }
    let jobs = get_json(client, &format!("{base}/train")).await;
    jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j.get("trigger").is_some())
        .map(|j| format!("an automatic job: {}", j["trigger"]))
}

/// The scenario's bars: no alarm before the change, accuracy back in time.
pub fn assert_recovers(report: &Report) {
    assert!(report.false_alarm.is_none(), "{report:#?}");
    assert!(report.before > 0.8, "{report:#?}");
    assert!(
        report.recovered_after.is_some_and(|n| n <= RECOVERY_BOUND),
        "{report:#?}"
    );
    assert!(!report.jobs.is_empty(), "{report:#?}");
}
