//! The explainer: a dedicated OS thread that computes `/explain` attributions, off
//! the batch executor and never on a tokio worker.
//!
//! [`Explainer`] is a cheap `Clone` handle over a bounded channel (full: 429). The
//! thread runs one request at a time inside its own one-thread rayon pool, so its
//! tensor work cannot spread over the cores serving uses, and before every forward-
//! and-backward pass it lets in-flight `/predict` rows finish first (up to
//! [`MAX_YIELD`]): a prediction waits for at most one explain pass. A panic inside
//! Burn fails that request (500) and the thread carries on. The process lifecycle
//! owns the thread ([`ExplainerThread`]) and stops and joins it at shutdown.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::batching::Batcher;
use crate::model::LoadedModel;
use crate::model::explain::{self, ExplainError, Explanation, Request};

/// Longest one pass waits for serving to go quiet (then it runs anyway).
const MAX_YIELD: Duration = Duration::from_millis(5);
const YIELD_STEP: Duration = Duration::from_micros(100);

/// Why an explanation was not computed.
#[derive(Debug, thiserror::Error)]
pub enum ExplainFailure {
    /// The request does not fit the model (a 422).
    #[error(transparent)]
    Invalid(#[from] ExplainError),
    #[error("too many explanations are waiting; retry later")]
    QueueFull,
    #[error("the explainer has stopped")]
    Stopped,
    #[error("computing the explanation failed")]
    Compute,
}

struct Job {
    model: Arc<LoadedModel>,
    request: Request,
    reply: oneshot::Sender<Result<Vec<Explanation>, ExplainFailure>>,
}

enum Message {
    Explain(Job),
    /// Answer what is queued before it, then end.
    Stop,
}

/// Handle to the explainer thread.
#[derive(Clone)]
pub struct Explainer {
    tx: mpsc::Sender<Message>,
}

/// The explainer thread, owned by the process lifecycle.
pub struct ExplainerThread {
    tx: mpsc::Sender<Message>,
    thread: std::thread::JoinHandle<()>,
}

impl ExplainerThread {
    /// Lets the thread answer what is queued, then joins it. Blocks: call it off
    /// the async runtime.
    pub fn stop(self) {
        let _ = self.tx.blocking_send(Message::Stop);
        if self.thread.join().is_err() {
            tracing::error!("the explainer thread panicked");
        }
    }
}

impl Explainer {
    /// Starts the thread; it ends at [`ExplainerThread::stop`] (or when every
    /// handle is dropped).
    pub fn spawn(capacity: usize, serving: Batcher) -> std::io::Result<(Self, ExplainerThread)> {
        let (tx, mut rx) = mpsc::channel::<Message>(capacity.max(1));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "kiln-explain-pool".into())
            .build()
            .map_err(std::io::Error::other)?;
        let thread = std::thread::Builder::new()
            .name("kiln-explain".into())
            .spawn(move || {
                while let Some(Message::Explain(job)) = rx.blocking_recv() {
                    if job.reply.is_closed() {
                        continue; // the client has gone
                    }
                    let mut pace = || {
                        let mut waited = Duration::ZERO;
                        while waited < MAX_YIELD && serving.rows_in_flight() > 0 {
                            std::thread::sleep(YIELD_STEP);
                            waited += YIELD_STEP;
                        }
                    };
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        pool.install(|| explain::explain(&job.model, &job.request, &mut pace))
                    }));
                    let answer = match result {
                        Ok(r) => r.map_err(ExplainFailure::Invalid),
                        Err(_) => {
                            tracing::error!(version = job.model.version(), "explanation panicked");
                            Err(ExplainFailure::Compute)
                        }
                    };
                    let _ = job.reply.send(answer);
                }
            })?;
        let owner = ExplainerThread {
            tx: tx.clone(),
            thread,
        };
        Ok((Self { tx }, owner))
    }

    /// Queues an explanation of `request` by `model`; waits for the answer.
    pub async fn explain(
        &self,
        model: Arc<LoadedModel>,
        request: Request,
    ) -> Result<Vec<Explanation>, ExplainFailure> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Message::Explain(Job {
                model,
                request,
                reply,
            }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ExplainFailure::QueueFull,
                mpsc::error::TrySendError::Closed(_) => ExplainFailure::Stopped,
            })?;
        rx.await.map_err(|_| ExplainFailure::Stopped)?
    }
}
