//! [`ComputePool`]: the threads forward passes run on, and how a pass is shared
//! between them.
//!
//! One single-threaded rayon pool per thread (`batching.compute_threads`). On the
//! CPU backend a pass is shared one of two ways:
//! - up to [`MAX_COLUMN_ROWS`] rows, a network with large dense layers shares each
//!   of them by output columns ([`Team`], `model::columns`): each thread reads
//!   only its share of the weights;
//! - otherwise the pass is cut into contiguous parts of rows, one per thread, and
//!   each part runs a whole forward pass on its own thread (rows are independent
//!   at inference, and every matrix multiply runs single-threaded on a full part).
//!
//! Both beat letting `gemm` split each multiply across threads, which scaled 1.3x
//! on two cores. A GPU pass is never shared (one launch computes it whole).
//!
//! The trainer cuts a training batch the same way ([`ComputePool::run_each`]).
//!
//! The pools are owned by the caller's thread (the executor, the training loop);
//! dropping a pool joins its threads (rayon's own drop only signals them).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use burn::prelude::Tensor;

use crate::model::LoadedModel;
use crate::model::columns::Team;

/// Passes of at most this many rows share their dense layers by columns
/// ([`Team`]) rather than being cut by rows: measured on the seed MLP with 2
/// threads, columns ran 1.2x rows at 64 rows and 1.3x at 32, tied at 128, and
/// lost at 256.
pub const MAX_COLUMN_ROWS: usize = 128;

/// Rows below which a part is not worth a thread of its own.
pub const MIN_PART_ROWS: usize = 2;

/// Forward-pass threads.
pub struct ComputePool {
    pools: Vec<rayon::ThreadPool>,
    /// The pools' threads, joined by the drop.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// How the threads after the first stay awake between jobs, when they do.
    warm: Option<Warm>,
}

/// Keeps a pool's later threads spinning for a while after each job, so that the
/// next job starts at once: a sleeping thread takes about 40 us to wake on the
/// machines kiln is measured on, against about 1 us for a spinning one. For a
/// caller that hands many short jobs over back to back (the trainer's shared
/// products, some tens of microseconds each).
struct Warm {
    /// How long a thread spins after a job.
    window: Duration,
    /// Set while a job is being handed over: the spinning threads stop at once.
    incoming: Arc<AtomicBool>,
}

impl ComputePool {
    /// `threads` single-threaded pools, named `kiln-compute-{i}`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        Self::named(threads, "kiln-compute")
    }

    /// `threads` single-threaded pools, named `{name}-{i}`.
    pub fn named(threads: usize, name: &'static str) -> std::io::Result<Self> {
        let spawned = Arc::new(std::sync::Mutex::new(Vec::new()));
        let pools = (0..threads.max(1))
            .map(|i| {
                let spawned = spawned.clone();
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .spawn_handler(move |thread| {
                        let mut b = std::thread::Builder::new().name(format!("{name}-{i}"));
                        if let Some(size) = thread.stack_size() {
                            b = b.stack_size(size);
                        }
                        let handle = b.spawn(|| thread.run())?;
                        spawned.lock().expect("spawned threads").push(handle);
                        Ok(())
                    })
                    .build()
                    .map_err(std::io::Error::other)
            })
            .collect::<Result<_, _>>()?;
        let threads = std::mem::take(&mut *spawned.lock().expect("spawned threads"));
        Ok(Self {
            pools,
            threads,
            warm: None,
        })
    }

    /// The same pool, its threads after the first spinning for `window` after each
    /// job (see `Warm`) rather than going to sleep.
    pub fn warm(mut self, window: Duration) -> Self {
        self.warm = Some(Warm {
            window,
            incoming: Arc::new(AtomicBool::new(false)),
        });
        self
    }

    pub fn threads(&self) -> usize {
        self.pools.len()
    }

    /// Runs `f` on the first thread (a caller that runs its loop there pays no
    /// hand-over per pass).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pools[0].install(f)
    }

    /// Runs `f(i, input)` for the `i`-th of `inputs` on thread `i` (at most one
    /// input per thread), all at once; the results in input order. The caller's
    /// thread waits. A panic in any job is resumed here after every job has ended.
    pub fn run_each<T, R, F>(&self, inputs: Vec<T>, f: F) -> Vec<R>
    where
        T: Send,
        R: Send,
        F: Fn(usize, T) -> R + Sync,
    {
        assert!(
            inputs.len() <= self.threads(),
            "one input per thread at most"
        );
        let mut slots: Vec<Option<R>> = inputs.iter().map(|_| None).collect();
        let f = &f;
        let (later, done) = (inputs.len().saturating_sub(1), &AtomicUsize::new(0));
        let window = self.warm.as_ref().map(|w| w.window);
        let mut jobs: Vec<Box<dyn FnOnce() + Send + '_>> = Vec::with_capacity(inputs.len());
        for ((i, input), slot) in inputs.into_iter().enumerate().zip(slots.iter_mut()) {
            jobs.push(Box::new(move || {
                *slot = Some(f(i, input));
                if i > 0 {
                    done.fetch_add(1, Ordering::Release);
                } else if let Some(window) = window {
                    // The caller waits for the later jobs awake: asleep, each
                    // would have to wake it.
                    spin_until(window, || done.load(Ordering::Acquire) >= later);
                }
            }));
        }
        if let Some(w) = &self.warm {
            w.incoming.store(true, Ordering::Release);
        }
        spread(&self.pools, jobs);
        if let Some(w) = &self.warm {
            w.incoming.store(false, Ordering::Release);
            for pool in &self.pools[1..] {
                let (incoming, window) = (w.incoming.clone(), w.window);
                pool.spawn(move || spin_until(window, || incoming.load(Ordering::Acquire)));
            }
        }
        slots
            .into_iter()
            .map(|r| r.expect("every job ran"))
            .collect()
    }

    /// How many parts a pass of `n` rows of `model` is cut into.
    pub fn parts(&self, model: &LoadedModel, n: usize) -> usize {
        if model.is_gpu() {
            1
        } else {
            self.threads().min(n / MIN_PART_ROWS).max(1)
        }
    }

    /// `model`'s forward pass of `n` rows (row-major `rows`), shared between the
    /// threads; the outputs in row order. A panic in any part is resumed here, after
    /// every part has finished.
    pub fn forward(&self, model: &Arc<LoadedModel>, mut rows: Vec<f32>, n: usize) -> Vec<f32> {
        if self.threads() > 1 && n <= MAX_COLUMN_ROWS && model.splits_columns() {
            return self.install(|| model.forward_with(rows, n, Some(self)));
        }
        let parts = self.parts(model, n);
        if parts <= 1 {
            return self.install(|| model.forward(rows, n));
        }
        let width = model.input_width();
        // Part i gets n / parts rows, the first n % parts parts one more.
        let sizes: Vec<usize> = (0..parts)
            .map(|i| n / parts + usize::from(i < n % parts))
            .collect();
        let mut tails = Vec::with_capacity(parts - 1);
        for &size in sizes[1..].iter().rev() {
            let tail = rows.split_off(rows.len() - size * width);
            tails.push((tail, size));
        }
        tails.reverse();
        let (tx, rx) = mpsc::channel();
        for (i, (chunk, size)) in tails.into_iter().enumerate() {
            let (tx, model) = (tx.clone(), model.clone());
            self.pools[i + 1].spawn(move || {
                let out = catch_unwind(AssertUnwindSafe(|| model.forward(chunk, size)));
                let _ = tx.send((i + 1, out));
            });
        }
        drop(tx);
        let first =
            self.install(|| catch_unwind(AssertUnwindSafe(|| model.forward(rows, sizes[0]))));
        let mut outs: Vec<Option<Vec<f32>>> = vec![None; parts];
        let mut panic = None;
        match first {
            Ok(o) => outs[0] = Some(o),
            Err(p) => panic = Some(p),
        }
        for (i, out) in rx {
            match out {
                Ok(o) => outs[i] = Some(o),
                Err(p) => panic = panic.or(Some(p)),
            }
        }
        if let Some(p) = panic {
            resume_unwind(p);
        }
        let mut all = Vec::with_capacity(n * model.output_width());
        for o in outs.into_iter().flatten() {
            all.extend(o);
        }
        all
    }
}

impl Team for ComputePool {
    fn size(&self) -> usize {
        self.threads()
    }

    fn each(&self, job: &(dyn Fn(usize) -> Tensor<2> + Sync)) -> Vec<Tensor<2>> {
        self.run_each(vec![(); self.threads()], |i, ()| job(i))
    }
}

impl Drop for ComputePool {
    /// Ends the threads and joins each (not one the drop runs on: it ends when
    /// the drop returns).
    fn drop(&mut self) {
        self.pools.clear();
        let me = std::thread::current().id();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != me && thread.join().is_err() {
                tracing::error!("a compute thread panicked");
            }
        }
    }
}

/// Spins until `ready()` or for `window`, whichever comes first, yielding the core
/// now and then (to any other thread that wants it).
fn spin_until(window: Duration, ready: impl Fn() -> bool) {
    let started = Instant::now();
    let mut spins = 0u32;
    while !ready() {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) {
            if started.elapsed() >= window {
                return;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Runs `jobs[i]` on `pools[i]`: the first in place (its pool's thread, the caller
/// waiting), each later one spawned into a scope of its pool that outlives it.
fn spread<'s>(pools: &[rayon::ThreadPool], mut jobs: Vec<Box<dyn FnOnce() + Send + 's>>) {
    if jobs.is_empty() {
        return;
    }
    let first = jobs.remove(0);
    nest(&pools[1..], jobs.into_iter(), || pools[0].install(first));
}

/// Spawns each of `jobs` into a scope of the matching pool, nested, then runs `last`
/// inside the innermost scope; every scope waits for its job (rayon resumes a
/// job's panic when its scope ends).
fn nest<'s>(
    pools: &[rayon::ThreadPool],
    mut jobs: impl Iterator<Item = Box<dyn FnOnce() + Send + 's>>,
    last: impl FnOnce(),
) {
    match (pools.split_first(), jobs.next()) {
        (Some((pool, rest)), Some(job)) => pool.in_place_scope(|scope| {
            scope.spawn(move |_| job());
            nest(rest, jobs, last);
        }),
        _ => last(),
    }
}

#[cfg(test)]
mod tests;
