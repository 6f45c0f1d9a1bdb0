//! The policy on paused time: triggers, cooldowns, waiting on a job, trials.

use super::*;
use crate::monitoring::drift::FeaturePsi;

fn config() -> RetrainConfig {
    RetrainConfig {
        enabled: true,
        min_new_labels: 50,
        min_accuracy: Some(0.8),
        min_labelled: 20,
        cooldown_ms: 10_000,
        gate_min_labelled: 30,
        ..RetrainConfig::default()
    }
}

fn accuracy(labelled: usize, a: f64) -> Option<Score> {
    Some(Score {
        labelled,
        accuracy: Some(a),
        mae: None,
        r2: None,
    })
}

fn drift(drifted: bool) -> Option<DriftReport> {
    Some(DriftReport {
        version: Some("v1".into()),
        window: 500,
        enough: true,
        score: if drifted { 0.9 } else { 0.01 },
        drifted,
        threshold: 0.25,
        prediction_psi: 0.1,
        features: vec![FeaturePsi {
            feature: "temp".into(),
            psi: 0.9,
        }],
    })
}

/// Nothing new: 10 labels, no drift, the serving version good.
fn quiet() -> Observed<'static> {
    Observed {
        now: Instant::now(),
        serving: "v1",
        labelled_total: 10,
        drift: drift(false),
        serving_score: accuracy(100, 0.95),
        reference: None,
        fell_since: None,
        job: None,
        candidate_score: None,
    }
}

fn trigger(d: &Decision) -> Option<&'static str> {
    match d {
        Decision::Retrain { trigger, .. } => Some(trigger),
        _ => None,
    }
}

#[path = "follow_tests.rs"]
mod follow;

#[tokio::test(start_paused = true)]
async fn a_quiet_world_never_retrains() {
    let mut policy = Policy::new(config());
    for _ in 0..100 {
        assert_eq!(policy.decide(quiet()), Decision::Wait);
        tokio::time::advance(Duration::from_secs(60)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn each_trigger_fires_and_says_why() {
    let mut policy = Policy::new(config());
    let d = policy.decide(Observed {
        labelled_total: 60,
        ..quiet()
    });
    let Decision::Retrain { trigger, why, .. } = d else {
        panic!("{d:?}")
    };
    assert_eq!(trigger, "labels");
    assert!(why.contains("60 new labelled rows"), "{why}");

    // Drift waits for labels of the new world: its onset is noted first.
    let mut policy = Policy::new(RetrainConfig {
        min_new_labels: 0,
        ..config()
    });
    let drifted = |labelled_total| Observed {
        drift: drift(true),
        labelled_total,
        ..quiet()
    };
    assert_eq!(policy.decide(drifted(10)), Decision::Wait);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(policy.decide(drifted(209)), Decision::Wait);
    let d = policy.decide(drifted(210));
    let Decision::Retrain { trigger, why, .. } = d else {
        panic!("{d:?}")
    };
    assert_eq!(trigger, "drift");
    assert!(why.contains("feature \"temp\""), "{why}");
    assert!(
        why.contains("since 30 s ago") && why.contains("waited for 200 labelled rows"),
        "{why}"
    );

    let mut policy = Policy::new(config());
    let d = policy.decide(Observed {
        serving_score: accuracy(100, 0.5),
        ..quiet()
    });
    let Decision::Retrain { trigger, why, .. } = d else {
        panic!("{d:?}")
    };
    assert_eq!(trigger, "quality");
    assert!(
        why.contains("live accuracy 0.500") && why.contains("of v1"),
        "{why}"
    );
}

#[tokio::test(start_paused = true)]
async fn quality_needs_enough_labels_and_drift_can_be_off() {
    let mut policy = Policy::new(config());
    let few = Observed {
        serving_score: accuracy(19, 0.1),
        ..quiet()
    };
    assert_eq!(policy.decide(few), Decision::Wait);
    let mut policy = Policy::new(RetrainConfig {
        on_drift: false,
        ..config()
    });
    let drifted = Observed {
        drift: drift(true),
        ..quiet()
    };
    assert_eq!(policy.decide(drifted), Decision::Wait);
}

#[tokio::test(start_paused = true)]
async fn a_trigger_waits_out_its_cooldown_even_when_no_job_started() {
    let mut policy = Policy::new(config());
    let low = || Observed {
        serving_score: accuracy(100, 0.5),
        ..quiet()
    };
    assert_eq!(trigger(&policy.decide(low())), Some("quality"));
    // No job started (no labelled rows yet, say): the cooldown still holds.
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(policy.decide(low()), Decision::Wait);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(trigger(&policy.decide(low())), Some("quality"));
}

#[tokio::test(start_paused = true)]
async fn labels_count_from_the_last_job() {
    let mut policy = Policy::new(RetrainConfig {
        cooldown_ms: 0,
        ..config()
    });
    let labels = |n| Observed {
        labelled_total: n,
        ..quiet()
    };
    assert_eq!(trigger(&policy.decide(labels(60))), Some("labels"));
    policy.started("job-1".into(), 60);
    let done = |n| Observed {
        job: Some(JobSeen::Done),
        ..labels(n)
    };
    assert_eq!(policy.decide(done(100)), Decision::Wait, "40 new rows");
    assert_eq!(trigger(&policy.decide(labels(110))), Some("labels"));
}

#[tokio::test(start_paused = true)]
async fn no_second_job_while_one_runs() {
    let mut policy = Policy::new(RetrainConfig {
        cooldown_ms: 0,
        ..config()
    });
    let low = |job| Observed {
        serving_score: accuracy(100, 0.5),
        job,
        ..quiet()
    };
    assert_eq!(trigger(&policy.decide(low(None))), Some("quality"));
    policy.started("job-1".into(), 10);
    assert_eq!(policy.job(), Some("job-1"));
    for _ in 0..10 {
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(policy.decide(low(Some(JobSeen::Running))), Decision::Wait);
    }
    assert_eq!(
        trigger(&policy.decide(low(Some(JobSeen::Done)))),
        Some("quality")
    );
    assert_eq!(policy.job(), None);
}

#[tokio::test(start_paused = true)]
async fn a_held_version_goes_on_trial_and_is_judged_on_live_quality() {
    let mut policy = Policy::new(config());
    policy.started("job-1".into(), 10);
    let held = Observed {
        job: Some(JobSeen::Held(Some("v2".into()))),
        ..quiet()
    };
    assert_eq!(
        policy.decide(held),
        Decision::StartTrial {
            version: "v2".into()
        }
    );
    policy.trial_started("v2".into(), Instant::now());
    // No trigger fires during a trial, and it waits for enough labels.
    let trial = |candidate, serving| Observed {
        labelled_total: 1_000,
        drift: drift(true),
        serving_score: serving,
        candidate_score: candidate,
        ..quiet()
    };
    assert_eq!(
        policy.decide(trial(None, accuracy(100, 0.5))),
        Decision::Wait
    );
    assert_eq!(
        policy.decide(trial(accuracy(29, 0.9), accuracy(100, 0.5))),
        Decision::Wait
    );
    assert_eq!(
        policy.decide(trial(accuracy(30, 0.9), accuracy(100, 0.5))),
        Decision::EndTrial {
            version: "v2".into(),
            job: Some("job-1".into()),
            verdict: Verdict::Passed {
                live: 0.9,
                serving: 0.5
            }
        }
    );
    assert_eq!(policy.trial(), None);

    // A worse candidate fails.
    policy.trial_started("v3".into(), Instant::now());
    let d = policy.decide(trial(accuracy(30, 0.4), accuracy(100, 0.5)));
    assert!(
        matches!(
            d,
            Decision::EndTrial {
                verdict: Verdict::Failed { .. },
                ..
            }
        ),
        "{d:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_trial_needs_a_score_on_both_sides_and_times_out_without() {
    let mut policy = Policy::new(RetrainConfig {
        gate_timeout_ms: 60_000,
        ..config()
    });
    policy.trial_started("v2".into(), Instant::now());
    // Before, a candidate with labels passed whenever the serving version had
    // none.
    let one_sided = || Observed {
        serving_score: None,
        candidate_score: accuracy(500, 0.99),
        ..quiet()
    };
    tokio::time::advance(Duration::from_millis(59_999)).await;
    assert_eq!(policy.decide(one_sided()), Decision::Wait);
    let thin = Observed {
        serving_score: accuracy(29, 0.5),
        ..one_sided()
    };
    assert_eq!(policy.decide(thin), Decision::Wait);
    assert_eq!(policy.trial(), Some("v2"));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        policy.decide(one_sided()),
        Decision::EndTrial {
            version: "v2".into(),
            job: None,
            verdict: Verdict::TimedOut
        }
    );
    assert_eq!(policy.trial(), None);
    assert!(!Verdict::TimedOut.passed());
}

#[tokio::test(start_paused = true)]
async fn a_held_job_without_a_version_ends_the_wait() {
    let mut policy = Policy::new(config());
    policy.started("job-1".into(), 10);
    let held = Observed {
        job: Some(JobSeen::Held(None)),
        ..quiet()
    };
    assert_eq!(policy.decide(held), Decision::Wait);
    assert_eq!(policy.job(), None);
}

#[tokio::test(start_paused = true)]
async fn rejected_versions_are_kept_up_to_the_bound() {
    let mut policy = Policy::new(RetrainConfig {
        keep_rejected: 2,
        ..config()
    });
    assert!(policy.rejected("v2".into()).is_empty());
    assert!(policy.rejected("v3".into()).is_empty());
    assert!(policy.rejected("v3".into()).is_empty(), "counted once");
    assert_eq!(policy.rejected("v4".into()), vec!["v2".to_string()]);
    assert_eq!(policy.rejected("v5".into()), vec!["v3".to_string()]);
    let mut none_kept = Policy::new(RetrainConfig {
        keep_rejected: 0,
        ..config()
    });
    assert_eq!(none_kept.rejected("v9".into()), vec!["v9".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_news_once_until_a_job_starts() {
    let mut policy = Policy::new(config());
    assert!(policy.refused("no labelled rows yet"));
    assert!(!policy.refused("no labelled rows yet"));
    assert!(policy.refused("the feedback holds 2 of its 3 classes"));
    policy.started("job-1".into(), 10);
    assert!(policy.refused("the feedback holds 2 of its 3 classes"));
}

#[tokio::test(start_paused = true)]
async fn drift_without_new_labels_never_starts_a_job() {
    // The audit's flood: drifting traffic (anyone may send it) and no labels
    // started a job at every check.
    let mut policy = Policy::new(RetrainConfig {
        cooldown_ms: 0,
        min_new_labels: 0,
        ..config()
    });
    for _ in 0..1_000 {
        let seen = Observed {
            drift: drift(true),
            labelled_total: 60,
            ..quiet()
        };
        assert_eq!(policy.decide(seen), Decision::Wait);
        tokio::time::advance(Duration::from_millis(500)).await;
    }
    // A job resets the onset: the next drift job waits for labels again.
    let seen = Observed {
        drift: drift(true),
        labelled_total: 260,
        ..quiet()
    };
    assert_eq!(trigger(&policy.decide(seen)), Some("drift"));
    policy.started("job-1".into(), 260);
    let seen = Observed {
        drift: drift(true),
        labelled_total: 300,
        job: Some(JobSeen::Done),
        ..quiet()
    };
    assert_eq!(policy.decide(seen), Decision::Wait);
}
