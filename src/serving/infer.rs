//! [`Inference`]: what a prediction is, whichever protocol asked for it.
//!
//! `/predict`, OIP v2 and `/explain` parse their bodies and call this service; it
//! picks the version that computes (the one asked for by name, else the canary's
//! share, else the active version), checks the instances against that very
//! version, submits them to the batcher with that version pinned (a promotion in
//! between cannot hand them to a version that never checked them), waits for the
//! answer within the request's deadline, names each instance with a prediction
//! id, hands the sampled requests to the prediction log and mirrors the shadow's
//! share after the answer. It knows nothing of HTTP: its errors are
//! [`InferError`], which the API maps to statuses in one place.
//!
//! A canary only takes the requests it can compute: instances the canary refuses
//! (an embedding's ids beside a model of measurements, say) are answered by the
//! active version, as if the route had passed them by, so a canary never fails a
//! request the serving version takes.
//!
//! The request path costs what it did before this layer: one load of the canary
//! route, one of the active version, one of the shadow route when the active
//! version answers, and a copy of the rows only for a sampled or mirrored request.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

pub use super::input::{InputError, Rows, check};
pub use super::limits::Limits;

use super::routing::Routing;
use crate::batching::{Answer, Batcher, PredictError, SubmitError, Work};
use crate::executor::ActiveModel;
use crate::explainer::{ExplainFailure, Explainer};
use crate::model::explain::{Explanation, Method, Request};
use crate::model::{LoadedModel, Task};
use crate::monitoring::Monitor;
use crate::monitoring::ids::PredictionId;
use crate::monitoring::log::Logged;

/// How long a mirrored request may wait for the shadow.
const MIRROR_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The service: a cheap `Clone` handle (one reference count).
#[derive(Clone)]
pub struct Inference(Arc<Parts>);

/// What the service calls on.
pub struct Parts {
    pub batcher: Batcher,
    pub active: ActiveModel,
    pub routing: Arc<Routing>,
    pub monitor: Arc<Monitor>,
    pub explainer: Explainer,
    pub limits: Limits,
    /// Shadow mirrors still running after their answer: shutdown waits for them.
    pub mirrors: TaskTracker,
    /// The model's lane in the batcher (one per served model).
    pub lane: u64,
    /// The model's own batch limits (`[models.<name>]`); `None`: the batcher's.
    pub batch_policy: Option<crate::batching::Policy>,
    /// The model's own row permits (`batching.model_queue_capacity`), taken beside
    /// the batcher's shared ones.
    pub admission: Arc<Semaphore>,
    /// Where the model's request bodies wait to be decoded.
    pub door: super::decoding::Door,
}

/// When a request's rows must be computed by, and its answer given by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// Its rows must be computed by then, or they are not computed at all.
    pub compute_by: Instant,
    /// The client gets its answer by then, or a deadline error.
    pub answer_by: Instant,
}

/// A prediction request.
#[derive(Debug)]
pub struct Query {
    pub rows: Rows,
    /// Classifiers also list this many most likely labels per instance.
    pub top_k: Option<usize>,
    /// The version asked for by name: it computes, no route applies.
    pub pinned: Option<Arc<LoadedModel>>,
    pub deadline: Deadline,
}

/// An answered prediction request.
#[derive(Debug)]
pub struct Predicted {
    /// The answer, and the version that computed it.
    pub answer: Answer,
    /// One id per instance, in order.
    pub ids: Vec<PredictionId>,
}

/// An explanation request (by the active version).
#[derive(Debug)]
pub struct ExplainQuery {
    pub rows: Rows,
    pub method: Method,
    pub steps: usize,
    pub baseline: Option<Vec<f32>>,
    pub target: Option<String>,
}

/// Explanations, and the version that computed them.
#[derive(Debug)]
pub struct Explained {
    pub version: String,
    pub explanations: Vec<Explanation>,
}

/// Why a request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("\"instances\" must hold at least one row")]
    NoRows,
    #[error("{rows} instances in one request; the limit is {limit} (batching.max_request_rows)")]
    TooManyRows { rows: usize, limit: usize },
    #[error("{rows} instances in one request; the limit is {limit} (explain.max_rows)")]
    TooManyToExplain { rows: usize, limit: usize },
    #[error("steps must be between 1 and {max} (explain.max_steps), got {got}")]
    Steps { got: usize, max: usize },
    #[error("top_k must be at least 1")]
    ZeroTopK,
    #[error("top_k ranks class labels; version {0} is a regression model (drop top_k)")]
    TopKOnRegression(String),
    /// The instances do not fit the version that would compute them.
    #[error(transparent)]
    Invalid(#[from] InputError),
    #[error("no model is loaded yet")]
    NoModel,
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Explain(#[from] ExplainFailure),
}

/// Which version a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// The version asked for by name.
    Pinned,
    /// The canary route's.
    Canary,
    /// The active version: only its answers feed drift, only they are mirrored.
    Active,
}

impl Inference {
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }

    /// The bounds this model's requests get.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// Whether the model's own admission bound is spent: a request for it would
    /// be turned away (429) whatever its rows, so its body need not be parsed.
    pub fn is_full(&self) -> bool {
        self.0.admission.available_permits() == 0
    }

    /// Where the model's request bodies wait to be decoded.
    pub fn door(&self) -> &super::decoding::Door {
        &self.0.door
    }

    /// Predicts one answer per instance through the batching queue.
    pub async fn predict(&self, query: Query) -> Result<Predicted, InferError> {
        let Query {
            rows,
            top_k,
            pinned,
            deadline,
        } = query;
        let inner = &*self.0;
        if rows.n == 0 {
            return Err(InferError::NoRows);
        }
        let limit = inner.limits.max_request_rows;
        if rows.n > limit {
            return Err(InferError::TooManyRows {
                rows: rows.n,
                limit,
            });
        }
        if top_k == Some(0) {
            return Err(InferError::ZeroTopK);
        }
        let (model, served) = self.choose(&rows, pinned)?;
        if top_k.is_some() && model.manifest().net.task == Task::Regression {
            return Err(InferError::TopKOnRegression(model.version().to_owned()));
        }
        // A shadow never takes queue room live requests may need.
        let shadow = if served == Served::Active {
            inner
                .routing
                .shadow_for_next()
                .filter(|_| inner.batcher.rows_in_flight() * 4 < inner.limits.queue_capacity)
        } else {
            None
        };
        let sampled = inner.monitor.sample();
        // Only a sampled or mirrored request pays for a copy of its rows.
        let copy = (sampled || shadow.is_some()).then(|| rows.values.clone());
        let n = rows.n;
        let work = Work {
            rows: rows.values,
            n_rows: n,
            width: rows.width,
            top_k,
            model: Some(model),
            deadline: deadline.compute_by,
            lane: inner.lane,
            policy: inner.batch_policy,
        };
        // The model's own bound first: a flood of one model's requests is turned
        // away here and leaves the shared queue to the others.
        let _admitted = u32::try_from(n)
            .ok()
            .and_then(|n| inner.admission.clone().try_acquire_many_owned(n).ok())
            .ok_or(SubmitError::QueueFull)?;
        let rx = inner.batcher.submit(work)?;
        let answer = match tokio::time::timeout_at(deadline.answer_by, rx).await {
            Ok(Ok(answer)) => answer?,
            Ok(Err(_)) => return Err(InferError::ShuttingDown),
            Err(_) => return Err(PredictError::DeadlineExceeded.into()),
        };
        let ids = PredictionId::batch(crate::clock::unix_now_ms(), n);
        if !sampled {
            inner
                .monitor
                .remember(&answer.version, &ids, &answer.predictions);
        }
        if let Some(rows) = copy {
            let logged = Logged {
                ids: ids.clone(),
                model: answer.model.clone(),
                rows,
                predictions: answer.predictions.clone(),
                shadow: None,
                serving: served == Served::Active,
            };
            match shadow {
                Some(shadow) => {
                    let mirror = Mirror {
                        service: self.clone(),
                        shadow,
                        logged,
                        sampled,
                    };
                    inner.mirrors.spawn(mirror.run());
                }
                None => inner.monitor.record(logged),
            }
        }
        Ok(Predicted { answer, ids })
    }

    /// The version that computes `rows`, checked against them: the pinned one;
    /// else the canary, on its share, when it takes these instances; else the
    /// active version.
    fn choose(
        &self,
        rows: &Rows,
        pinned: Option<Arc<LoadedModel>>,
    ) -> Result<(Arc<LoadedModel>, Served), InferError> {
        if let Some(model) = pinned {
            rows.check(&model)?;
            return Ok((model, Served::Pinned));
        }
        if let Some(canary) = self.0.routing.canary_for_next() {
            match rows.check(&canary) {
                Ok(()) => return Ok((canary, Served::Canary)),
                Err(e) => tracing::debug!(
                    canary = canary.version(),
                    error = %e,
                    "the canary cannot take these instances; the active version answers"
                ),
            }
        }
        let active = self.0.active.current().ok_or(InferError::NoModel)?;
        rows.check(&active)?;
        Ok((active, Served::Active))
    }

    /// Explains each instance's prediction by the active version (on the
    /// explainer thread).
    pub async fn explain(&self, query: ExplainQuery) -> Result<Explained, InferError> {
        let limits = &self.0.limits;
        let n = query.rows.n;
        if n == 0 {
            return Err(InferError::NoRows);
        }
        if n > limits.explain_max_rows {
            return Err(InferError::TooManyToExplain {
                rows: n,
                limit: limits.explain_max_rows,
            });
        }
        if query.steps == 0 || query.steps > limits.explain_max_steps {
            return Err(InferError::Steps {
                got: query.steps,
                max: limits.explain_max_steps,
            });
        }
        let model = self.0.active.current().ok_or(InferError::NoModel)?;
        query.rows.check(&model)?;
        let version = model.version().to_owned();
        let request = Request {
            rows: query.rows.values,
            n,
            method: query.method,
            steps: query.steps,
            max_steps: limits.explain_max_steps,
            baseline: query.baseline,
            target: query.target,
        };
        let explanations = self.0.explainer.explain(model, request).await?;
        Ok(Explained {
            version,
            explanations,
        })
    }
}

/// A request mirrored to the shadow version after it was answered.
struct Mirror {
    service: Inference,
    shadow: Arc<LoadedModel>,
    /// The request as served (logged with the shadow's answers when sampled).
    logged: Logged,
    sampled: bool,
}

impl Mirror {
    async fn run(mut self) {
        let inner = &*self.service.0;
        let served = &self.logged;
        let n = served.ids.len();
        let width = served.rows.len() / n.max(1);
        // The shadow computes only instances it takes (ids out of its range would
        // fail its pass).
        let shadowed = match check(&self.shadow, &served.rows, width, &[]) {
            Ok(()) => {
                let work = Work {
                    rows: served.rows.clone(),
                    n_rows: n,
                    width,
                    top_k: None,
                    model: Some(self.shadow.clone()),
                    deadline: Instant::now() + MIRROR_DEADLINE,
                    lane: inner.lane,
                    policy: inner.batch_policy,
                };
                match inner.batcher.submit(work) {
                    Ok(rx) => rx.await.ok().and_then(Result::ok),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        };
        let monitor = &inner.monitor;
        if let Some(shadowed) = shadowed {
            monitor.shadow_compared(
                &shadowed.version,
                &served.predictions,
                &shadowed.predictions,
            );
            self.logged.shadow = Some((shadowed.version.to_string(), shadowed.predictions));
        }
        if self.sampled {
            monitor.record(self.logged);
        }
    }
}
