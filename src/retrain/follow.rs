//! Following a change through: the quality floor (absolute, or relative to the
//! serving version's validation score), and the follow-up jobs that retrain
//! again, as labels since the change double, while live quality stays short of
//! the score before it.

use super::{Decision, Observed, Policy};
use crate::monitoring::quality::Score;

/// After a drift or quality job: the score to get back to, where the change
/// began (labelled rows kept then), when the next follow-up may start, and how
/// many are left.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Recovery {
    pub(super) target: f64,
    pub(super) onset_labels: u64,
    pub(super) next_at: u64,
    pub(super) left: u32,
}

/// Live quality this close to the score before the change counts as recovered.
const RECOVERED_WITHIN: f64 = 0.02;

impl Policy {
    /// The score to get back to after a change: the serving version's reference
    /// (else the absolute floor).
    pub(super) fn target(&self, seen: &Observed<'_>) -> Option<f64> {
        let absolute = match seen.serving_score.as_ref() {
            Some(s) if s.r2.is_some() && s.accuracy.is_none() => self.config.min_r2,
            _ => self.config.min_accuracy,
        };
        seen.reference.or(absolute)
    }

    /// The quality floor of the serving version and how it was set: the
    /// configured absolute floor, else its reference less
    /// `retrain.quality_drop`.
    pub(super) fn floor(&self, seen: &Observed<'_>) -> Option<(f64, String)> {
        let score = seen.serving_score.as_ref()?;
        let (absolute, key) = if score.accuracy.is_some() {
            (self.config.min_accuracy, "retrain.min_accuracy")
        } else {
            (self.config.min_r2, "retrain.min_r2")
        };
        if let Some(floor) = absolute {
            return Some((floor, format!("{key} {floor}")));
        }
        let reference = seen.reference?;
        let drop = self.config.quality_drop;
        Some((
            reference - drop,
            format!(
                "{:.3} (its validation score {reference:.3} less retrain.quality_drop {drop})",
                reference - drop
            ),
        ))
    }

    /// After a drift or quality job: while the serving version's live quality
    /// stays short of the score before the change, retrain again each time the
    /// labels since the change have doubled, up to `retrain.follow_ups` times.
    pub(super) fn follow_up(&mut self, seen: &Observed<'_>) -> Option<Decision> {
        let recovery = self.recovery.as_mut()?;
        let score = seen
            .serving_score
            .as_ref()
            .filter(|s| s.labelled >= self.config.min_labelled)?;
        let now = live(score)?;
        if now >= recovery.target - RECOVERED_WITHIN || recovery.left == 0 {
            self.recovery = None;
            return None;
        }
        if seen.labelled_total < recovery.next_at {
            return None;
        }
        recovery.left -= 1;
        let since = seen.labelled_total.saturating_sub(recovery.onset_labels);
        recovery.next_at = seen.labelled_total + since.max(1);
        Some(Decision::Retrain {
            trigger: "follow_up",
            why: format!(
                "live score {now:.3} of {} is still short of {:.3} before the change; {since} labelled rows since it began ({} follow-ups left, retrain.follow_ups)",
                seen.serving, recovery.target, recovery.left
            ),
            since: Some(since),
        })
    }
}

/// A score's accuracy, else its R².
pub(super) fn live(score: &Score) -> Option<f64> {
    score.accuracy.or(score.r2)
}
