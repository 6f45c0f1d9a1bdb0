//! The relative quality floor, where a change began, and follow-up jobs.

use super::*;

/// The shipped quality settings: no absolute floor.
fn relative() -> RetrainConfig {
    RetrainConfig {
        enabled: true,
        cooldown_ms: 600_000,
        ..RetrainConfig::default()
    }
}

fn serving(labelled: usize, a: f64) -> Observed<'static> {
    Observed {
        serving_score: accuracy(labelled, a),
        reference: Some(0.9),
        labelled_total: 1_000,
        ..quiet()
    }
}

fn since(d: &Decision) -> Option<u64> {
    match d {
        Decision::Retrain { since, .. } => *since,
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn the_default_floor_is_the_validation_score_less_the_drop() {
    let mut policy = Policy::new(relative());
    // 0.85 is within retrain.quality_drop (0.1) of 0.9.
    assert_eq!(policy.decide(serving(1_000, 0.85)), Decision::Wait);
    // Too few labels to judge.
    assert_eq!(policy.decide(serving(99, 0.3)), Decision::Wait);
    let d = policy.decide(serving(1_000, 0.75));
    let Decision::Retrain { trigger, why, .. } = &d else {
        panic!("{d:?}")
    };
    assert_eq!(*trigger, "quality");
    assert!(why.contains("retrain.quality_drop 0.1"), "{why}");
    // Without a validation score (an import) and no absolute floor: no trigger.
    let mut policy = Policy::new(relative());
    let blind = Observed {
        reference: None,
        ..serving(1_000, 0.2)
    };
    assert_eq!(policy.decide(blind), Decision::Wait);
    // An absolute floor of 0 turns it off.
    let mut policy = Policy::new(RetrainConfig {
        min_accuracy: Some(0.0),
        ..relative()
    });
    assert_eq!(policy.decide(serving(1_000, 0.2)), Decision::Wait);
}

#[tokio::test(start_paused = true)]
async fn a_fall_in_quality_dates_the_change_where_the_window_shows_it() {
    let mut policy = Policy::new(relative());
    let seen = Observed {
        fell_since: Some(150),
        ..serving(1_000, 0.7)
    };
    let d = policy.decide(seen);
    assert_eq!(trigger(&d), Some("quality"));
    assert_eq!(since(&d), Some(150));
}

#[tokio::test(start_paused = true)]
async fn follow_ups_retrain_as_labels_double_until_quality_is_back() {
    let mut policy = Policy::new(RetrainConfig {
        follow_ups: 2,
        ..relative()
    });
    // The change began 200 labels ago (at 800).
    let first = policy.decide(Observed {
        fell_since: Some(200),
        ..serving(1_000, 0.6)
    });
    assert_eq!(trigger(&first), Some("quality"));
    policy.started("job-1".into(), 1_000);
    // Its version serves, better but short of 0.9: the next try comes once the
    // labels since the change have doubled (400 at 1,200), within the cooldown.
    let after = |labelled_total, a| Observed {
        serving: "v2",
        labelled_total,
        serving_score: accuracy(150, a),
        reference: Some(0.8),
        job: Some(JobSeen::Done),
        ..quiet()
    };
    assert_eq!(policy.decide(after(1_100, 0.8)), Decision::Wait);
    let d = policy.decide(after(1_200, 0.8));
    assert_eq!(trigger(&d), Some("follow_up"));
    assert_eq!(since(&d), Some(400));
    let Decision::Retrain { why, .. } = &d else {
        unreachable!()
    };
    assert!(why.contains("short of 0.900"), "{why}");
    policy.started("job-2".into(), 1_200);
    // Then at 800 since the change (1,600), the last one allowed.
    assert_eq!(policy.decide(after(1_500, 0.8)), Decision::Wait);
    assert_eq!(
        trigger(&policy.decide(after(1_600, 0.8))),
        Some("follow_up")
    );
    policy.started("job-3".into(), 1_600);
    for total in [2_400, 5_000, 10_000] {
        assert_eq!(policy.decide(after(total, 0.8)), Decision::Wait);
    }

    // Back within 0.02 of the score before the change: no more follow-ups.
    let mut policy = Policy::new(relative());
    let first = policy.decide(Observed {
        fell_since: Some(200),
        ..serving(1_000, 0.6)
    });
    assert_eq!(trigger(&first), Some("quality"));
    policy.started("job-1".into(), 1_000);
    assert_eq!(policy.decide(after(1_200, 0.89)), Decision::Wait);
    assert_eq!(policy.decide(after(5_000, 0.6)), Decision::Wait);
}
