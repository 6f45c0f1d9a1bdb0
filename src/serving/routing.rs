//! Canary and shadow routes: another version answering a share of the unpinned
//! traffic (canary), or computing it beside the serving version without its
//! answer being used (shadow). Shares are exact and decided per request: with
//! `percent = p`, request `k` is routed when `floor((k+1)p/100) > floor(kp/100)`,
//! so every run of 100 requests routes `p` of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use serde::Serialize;

use crate::model::LoadedModel;

/// Whether request `k` of a stream is picked at `rate` (0 to 1): exactly
/// `rate * n` of any `n` consecutive requests, rounded, spread evenly.
pub fn spread(k: u64, rate: f64) -> bool {
    let k = k as f64;
    ((k + 1.0) * rate).floor() > (k * rate).floor()
}

/// One route: a version and its share of requests.
pub struct Route {
    pub model: Arc<LoadedModel>,
    pub percent: f64,
    seen: AtomicU64,
}

impl Route {
    pub fn new(model: Arc<LoadedModel>, percent: f64) -> Self {
        Self {
            model,
            percent,
            seen: AtomicU64::new(0),
        }
    }

    /// Whether the next request takes this route.
    pub fn take(&self) -> bool {
        spread(
            self.seen.fetch_add(1, Ordering::Relaxed),
            self.percent / 100.0,
        )
    }

    pub fn describe(&self) -> RouteInfo {
        RouteInfo {
            version: self.model.version().to_string(),
            percent: self.percent,
        }
    }
}

/// A route as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RouteInfo {
    pub version: String,
    pub percent: f64,
}

/// This replica's canary and shadow routes.
#[derive(Default)]
pub struct Routing {
    pub canary: ArcSwapOption<Route>,
    pub shadow: ArcSwapOption<Route>,
}

impl Routing {
    /// The canary's model when this request goes to it.
    pub fn canary_for_next(&self) -> Option<Arc<LoadedModel>> {
        let route = self.canary.load_full()?;
        route.take().then(|| route.model.clone())
    }

    /// The shadow's model when this request is mirrored to it.
    pub fn shadow_for_next(&self) -> Option<Arc<LoadedModel>> {
        let route = self.shadow.load_full()?;
        route.take().then(|| route.model.clone())
    }

    /// Drops the routes to `version` (it was promoted or deleted).
    pub fn forget(&self, version: &str) {
        for slot in [&self.canary, &self.shadow] {
            if slot
                .load()
                .as_ref()
                .is_some_and(|r| r.model.version() == version)
            {
                slot.store(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn shares_are_exact_and_spread() {
        let take = |rate: f64, n: u64| (0..n).filter(|k| spread(*k, rate)).count();
        assert_eq!(take(0.1, 5000), 500);
        assert_eq!(take(1.0, 7), 7);
        assert_eq!(take(0.025, 400), 10);
        assert_eq!(take(0.0, 50), 0);
        // Evenly: every run of 10 at 10% holds exactly one.
        for start in 0..50 {
            assert_eq!((start..start + 10).filter(|k| spread(*k, 0.1)).count(), 1);
        }
    }
}
