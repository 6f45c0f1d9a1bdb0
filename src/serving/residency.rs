//! Which named models hold their weights in memory, within `serving.max_loaded_mb`.
//!
//! A named model is unloaded by hand (Triton's `POST
//! /v2/repository/models/{name}/unload`) or to make room; it loads again on its
//! next request (which waits at most its deadline: a 503 with Retry-After past
//! it, while the load goes on off the request path) or on `load`. After every
//! load, while the weights held by every model (each one's warm versions) pass
//! the budget, the least recently used named model is unloaded first. Never
//! unloaded for room: the default model, the model just loaded, one being
//! loaded, one answering requests, and one with a canary or shadow route (its
//! versions are in use). At most `PARALLEL_LOADS` (2) loads on demand run at once.
//!
//! Each bundle's [`Residency`] says when it was last used (a process-wide
//! counter, one atomic add per request), holds it for every request it is
//! answering ([`InFlight`]: a model answering is not unloaded for room), and
//! makes its loads single-flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::ManageError;
use super::bundle::Bundle;
use super::routing::RouteKind;

/// One model's use and loading.
#[derive(Default)]
pub struct Residency {
    last_used: AtomicU64,
    /// Read by every request being answered, written by an unload for room: a
    /// model answering is never unloaded for room, and a request never starts on
    /// a model being unloaded.
    serving: Arc<tokio::sync::RwLock<()>>,
    loading: tokio::sync::Mutex<()>,
}

/// A request being answered by a model, from its check that the model is loaded
/// until its answer: the model is not unloaded for room meanwhile.
pub struct InFlight {
    _hold: tokio::sync::OwnedRwLockReadGuard<()>,
}

impl Residency {
    /// Holds off loads of this model until dropped (a deletion checks and acts
    /// meanwhile).
    pub async fn hold_loads(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.loading.lock().await
    }

    /// A request's hold on its model; `None` while the model is being unloaded.
    pub fn enter(&self) -> Option<InFlight> {
        let hold = self.serving.clone().try_read_owned().ok()?;
        Some(InFlight { _hold: hold })
    }
}

/// The budget and the order of use, shared by every bundle of a catalog.
pub struct Budget {
    /// Bytes of weights every model together may hold.
    pub max_bytes: u64,
    clock: AtomicU64,
    /// Loads under way at once: each holds its file and warm-up passes beside the
    /// weights, so memory past the budget is bounded by this many of them.
    loads: tokio::sync::Semaphore,
    /// Unloads so far (the allocator is trimmed after them: `crate::memory`).
    unloads: AtomicU64,
}

/// Loads on demand that run at once, across every model.
const PARALLEL_LOADS: usize = 2;

impl Budget {
    pub fn new(max_mb: u64) -> Self {
        Self {
            max_bytes: max_mb.saturating_mul(1 << 20),
            clock: AtomicU64::new(1),
            loads: tokio::sync::Semaphore::new(PARALLEL_LOADS),
            unloads: AtomicU64::new(0),
        }
    }

    /// Models unloaded so far, for room or by hand.
    pub fn unloads(&self) -> u64 {
        self.unloads.load(Ordering::Relaxed)
    }

    /// Marks `bundle` used now.
    pub fn touch(&self, bundle: &Bundle) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        bundle.residency.last_used.store(now, Ordering::Relaxed);
    }

    /// Makes sure `bundle` serves a version: loads its active one when it holds
    /// none (one load at a time per model; a caller that waited for another's
    /// load finds it done). Whether this call loaded it.
    pub async fn ensure(&self, bundle: &Bundle) -> Result<bool, ManageError> {
        self.touch(bundle);
        if bundle.model.current().is_some() {
            return Ok(false);
        }
        let _one = bundle.residency.loading.lock().await;
        if bundle.model.current().is_some() {
            return Ok(false);
        }
        let _turn = self
            .loads
            .acquire()
            .await
            .map_err(|_| ManageError::Stopped)?;
        bundle.models.load_initial().await?;
        tracing::info!(model = bundle.name, "loaded on demand");
        Ok(true)
    }

    /// Unloads the least recently used of `named` until everything loaded (with
    /// `default`'s weights) fits the budget; `keep` stays. Returns the models
    /// unloaded.
    pub async fn fit(&self, default: &Bundle, named: &[Arc<Bundle>], keep: &Bundle) -> Vec<String> {
        let held = |b: &Bundle| b.models.held_bytes();
        let mut total: u64 = held(default) + named.iter().map(|b| held(b)).sum::<u64>();
        let mut candidates: Vec<&Arc<Bundle>> = named
            .iter()
            .filter(|b| {
                !std::ptr::eq(b.as_ref(), keep)
                    && b.model.current().is_some()
                    && [RouteKind::Canary, RouteKind::Shadow]
                        .iter()
                        .all(|k| b.models.routes().get(*k).is_none())
            })
            .collect();
        candidates.sort_by_key(|b| b.residency.last_used.load(Ordering::Relaxed));
        let mut unloaded = Vec::new();
        for b in candidates {
            if total <= self.max_bytes {
                break;
            }
            // A model whose load is under way, or that is answering, is left alone
            // (and one another caller unloaded meanwhile).
            let Ok(_one) = b.residency.loading.try_lock() else {
                continue;
            };
            let Ok(_idle) = b.residency.serving.clone().try_write_owned() else {
                continue;
            };
            if b.model.current().is_none() {
                continue;
            }
            let bytes = held(b);
            match b.models.unload().await {
                Ok(()) => {
                    self.unloads.fetch_add(1, Ordering::Relaxed);
                    total = total.saturating_sub(bytes);
                    tracing::info!(
                        model = b.name,
                        bytes,
                        "unloaded to stay within serving.max_loaded_mb"
                    );
                    unloaded.push(b.name.clone());
                }
                Err(e) => tracing::warn!(model = b.name, error = %e, "could not unload"),
            }
        }
        if total > self.max_bytes {
            tracing::warn!(
                held = total,
                budget = self.max_bytes,
                "the loaded models pass serving.max_loaded_mb and none can be unloaded"
            );
        }
        unloaded
    }

    /// Unloads `bundle` by hand; waits for a load under way, and the requests
    /// being answered, to end first.
    pub async fn unload(&self, bundle: &Bundle) -> Result<(), ManageError> {
        let _one = bundle.residency.loading.lock().await;
        let _idle = bundle.residency.serving.clone().write_owned().await;
        bundle.models.unload().await?;
        self.unloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
