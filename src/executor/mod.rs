//! The batch executor: a dedicated OS thread that runs forward passes, never a tokio
//! worker.
//!
//! For each batch it takes the active model version exactly once
//! ([`ActiveModel::current`]), so every row of the batch, and every pass of an
//! oversized request, is computed by the same version; a swap published meanwhile
//! applies from the next batch on. Requests pinned to a specific version run in
//! passes of their own. Requests whose client has gone, or whose deadline has
//! passed, are skipped before compute; each pass's duration feeds the batcher's
//! [`CostModel`]. Passes run on the executor's own [`ComputePool`]
//! (`batching.compute_threads`), cut into one part per thread on the CPU. A panic inside Burn fails that batch (500) and the
//! thread carries on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant as StdInstant;

use tokio::sync::mpsc;

use crate::batching::cost::CostModel;
use crate::batching::{Answer, Batch, PredictError, Request};
use crate::compute::ComputePool;
use crate::metrics::{Metrics, RejectReason};
use crate::model::LoadedModel;

mod active;
pub use active::ActiveModel;

/// Starts the executor thread; it ends when every batch sender is dropped.
pub fn spawn(
    rx: mpsc::Receiver<Batch>,
    model: ActiveModel,
    cost: Arc<CostModel>,
    metrics: Metrics,
    max_batch_size: usize,
    threads: usize,
) -> std::io::Result<JoinHandle<()>> {
    // Forward passes run in pools of their own: the CPU backend's matmuls use the
    // current rayon pool, and the global one would have idle workers spinning
    // against the HTTP runtime. The loop runs on the first compute thread.
    let pool = ComputePool::new(threads)?;
    std::thread::Builder::new()
        .name("kiln-executor".into())
        .spawn(move || pool.install(|| run(rx, &pool, model, cost, metrics, max_batch_size)))
}

fn run(
    mut rx: mpsc::Receiver<Batch>,
    pool: &ComputePool,
    active: ActiveModel,
    cost: Arc<CostModel>,
    metrics: Metrics,
    max_batch_size: usize,
) {
    while let Some(batch) = rx.blocking_recv() {
        // The active version, taken once for the whole batch.
        let active = active.current();
        // Requests pinned to another version (OIP v2 `/versions/{v}/infer`) run in
        // passes of their own: a forward pass never mixes two versions.
        let mut groups: Vec<(Arc<LoadedModel>, Vec<Request>)> = Vec::new();
        for r in batch.requests {
            let Some(model) = r.work.model.clone().or_else(|| active.clone()) else {
                let _ = r.reply.send(Err(PredictError::NoModel));
                continue;
            };
            match groups.iter_mut().find(|(m, _)| Arc::ptr_eq(m, &model)) {
                Some((_, requests)) => requests.push(r),
                None => groups.push((model, vec![r])),
            }
        }
        for (model, requests) in groups {
            execute(requests, &model, pool, &cost, &metrics, max_batch_size);
        }
        // Dropping `batch` (its busy permit) lets the batcher form the next one.
    }
}

/// Runs requests with one model version and answers every one of them.
fn execute(
    requests: Vec<Request>,
    model: &Arc<LoadedModel>,
    pool: &ComputePool,
    cost: &CostModel,
    metrics: &Metrics,
    max_batch_size: usize,
) {
    let version: Arc<str> = model.version().into();
    let width = model.input_width();
    let now = tokio::time::Instant::now();
    let mut live: Vec<Request> = Vec::with_capacity(requests.len());
    for r in requests {
        if r.reply.is_closed() {
            if r.work.deadline > now {
                metrics.reject(RejectReason::ClientGone, r.work.n_rows as u64);
            }
        } else if r.work.deadline <= now {
            // Counted as `deadline` by the handler that answers 504.
            let _ = r.reply.send(Err(PredictError::DeadlineExceeded));
        } else if r.work.width != width {
            let _ = r.reply.send(Err(PredictError::WidthMismatch {
                version: version.clone(),
                expected: width,
                got: r.work.width,
            }));
        } else {
            metrics
                .queue_duration
                .observe(now.duration_since(r.enqueued_at).as_secs_f64());
            live.push(r);
        }
    }
    if live.is_empty() {
        return;
    }

    let total_rows: usize = live.iter().map(|r| r.work.n_rows).sum();
    let mut input = Vec::with_capacity(total_rows * width);
    for r in &mut live {
        input.append(&mut r.work.rows);
    }
    let out_width = model.output_width();
    let outputs = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut outputs = Vec::with_capacity(total_rows * out_width);
        let mut rest = input;
        while !rest.is_empty() {
            // Passes of at most `max_batch_size` rows (fewer for a model whose widest
            // activation would not fit); a batch that fits is not copied.
            let pass = max_batch_size.min(model.max_pass_rows());
            let tail = rest.split_off(rest.len().min(pass * width));
            let chunk = std::mem::replace(&mut rest, tail);
            let n = chunk.len() / width;
            let started = StdInstant::now();
            outputs.extend(pool.forward(model, chunk, n));
            let took = started.elapsed();
            cost.record(n, took);
            metrics.batch_compute.observe(took.as_secs_f64());
            metrics.batch_size.observe(n as f64);
        }
        outputs
    }));
    let outputs = match outputs {
        Ok(o) if o.len() == total_rows * out_width => o,
        Ok(o) => {
            tracing::error!(version = %version, got = o.len(), want = total_rows * out_width, "forward returned the wrong number of values");
            return fail_all(live, PredictError::Compute);
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            tracing::error!(version = %version, rows = total_rows, "forward pass panicked: {msg}");
            return fail_all(live, PredictError::Compute);
        }
    };

    let mut rows = outputs.chunks_exact(out_width);
    for r in live {
        let mine: Vec<&[f32]> = rows.by_ref().take(r.work.n_rows).collect();
        // Finite inputs far outside the training range can overflow inside the
        // network: that is the client's input, answered as such, never a null.
        if let Some(instance) = mine.iter().position(|o| o.iter().any(|v| !v.is_finite())) {
            let _ = r.reply.send(Err(PredictError::NotFinite {
                version: version.clone(),
                instance,
            }));
            continue;
        }
        let predictions = mine
            .into_iter()
            .map(|o| model.interpret(o, r.work.top_k))
            .collect();
        let _ = r.reply.send(Ok(Answer {
            version: version.clone(),
            model: model.clone(),
            predictions,
        }));
    }
}

fn fail_all(requests: Vec<Request>, error: PredictError) {
    for r in requests {
        let _ = r.reply.send(Err(error.clone()));
    }
}
