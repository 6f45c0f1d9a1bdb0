//! The answers this replica gave to its last `monitoring.recent_answers`
//! instances that the prediction log did not sample, held in memory: a label sent
//! soon after, without its instance, still counts toward live quality. Only what
//! a label is judged against is kept (the version, and the predicted class or
//! value), never the features, so such a label is scored but not kept for
//! retraining. Bounded by instances; the oldest go first; lost at restart.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::ids::PredictionId;
use crate::model::Prediction;

/// What a label is judged against.
#[derive(Debug, Clone)]
enum Answered {
    Label(Box<str>),
    Value(f32),
}

/// The ring.
pub struct Recent {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    answers: HashMap<PredictionId, (Arc<str>, Answered)>,
    order: VecDeque<PredictionId>,
}

impl Recent {
    /// Holds up to `capacity` answers (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Remembers `version`'s answers to the instances `ids` (multi-output
    /// regression is not judged by live quality and is skipped).
    pub fn remember(&self, version: &Arc<str>, ids: &[PredictionId], predictions: &[Prediction]) {
        let answered: Vec<(PredictionId, Answered)> = ids
            .iter()
            .zip(predictions)
            .filter_map(|(id, p)| match p {
                Prediction::Class { label, .. } => {
                    Some((*id, Answered::Label(label.as_str().into())))
                }
                Prediction::Value(v) => Some((*id, Answered::Value(*v))),
                Prediction::Values(_) => None,
            })
            .collect();
        let mut inner = self.inner.lock().expect("recent answers lock");
        for (id, answer) in answered {
            if inner
                .answers
                .insert(id, (version.clone(), answer))
                .is_none()
            {
                inner.order.push_back(id);
            }
        }
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.answers.remove(&old);
            }
        }
    }

    /// The version that answered `id` and its answer, as the prediction log holds
    /// it (`{"label": ...}` or the value).
    pub fn get(&self, id: &PredictionId) -> Option<(String, serde_json::Value)> {
        let inner = self.inner.lock().expect("recent answers lock");
        inner.answers.get(id).map(|(version, answer)| {
            let value = match answer {
                Answered::Label(label) => serde_json::json!({ "label": &**label }),
                Answered::Value(v) => serde_json::json!(v),
            };
            (version.to_string(), value)
        })
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("recent answers lock").order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_answers_are_kept_within_the_bound() {
        let recent = Recent::new(3);
        let version: Arc<str> = "v1".into();
        let ids = PredictionId::batch(1, 5);
        let answers: Vec<Prediction> = (0..5).map(|i| Prediction::Value(i as f32)).collect();
        recent.remember(&version, &ids, &answers);
        assert_eq!(recent.len(), 3);
        assert!(recent.get(&ids[1]).is_none(), "the oldest went first");
        let (v, answer) = recent.get(&ids[4]).unwrap();
        assert_eq!((v.as_str(), answer), ("v1", serde_json::json!(4.0)));
    }
}
