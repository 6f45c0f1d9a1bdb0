//! Canary and shadow routes: another version answering a share of the unpinned
//! traffic (canary), or computing it beside the serving version without its
//! answer being used (shadow). Shares are exact and decided per request: with
//! `percent = p`, request `k` is routed when `floor((k+1)p/100) > floor(kp/100)`,
//! so every run of 100 requests routes `p` of them.
//!
//! [`Routing`] is read by every request (one atomic load per route) and written
//! only by the model manager's thread ([`Models::route`](super::Models::route)),
//! in the same step as the promotion, rollback or deletion that changes which
//! versions a route may name.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use serde::Serialize;

use super::ManageError;
use crate::model::{LoadedModel, NetConfig};
use crate::monitoring::spread::spread;

/// Which route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Its answers are served.
    Canary,
    /// It computes a copy of the request after the answer; never served.
    Shadow,
}

impl RouteKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::Shadow => "shadow",
        }
    }
}

impl std::fmt::Display for RouteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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

/// This replica's canary and shadow routes. Readers load; only the model
/// manager stores.
#[derive(Default)]
pub struct Routing {
    canary: ArcSwapOption<Route>,
    shadow: ArcSwapOption<Route>,
}

impl Routing {
    fn slot(&self, kind: RouteKind) -> &ArcSwapOption<Route> {
        match kind {
            RouteKind::Canary => &self.canary,
            RouteKind::Shadow => &self.shadow,
        }
    }

    /// The canary's model when this request goes to it.
    pub fn canary_for_next(&self) -> Option<Arc<LoadedModel>> {
        let route = self.canary.load();
        let route = route.as_ref()?;
        route.take().then(|| route.model.clone())
    }

    /// The shadow's model when this request is mirrored to it.
    pub fn shadow_for_next(&self) -> Option<Arc<LoadedModel>> {
        let route = self.shadow.load();
        let route = route.as_ref()?;
        route.take().then(|| route.model.clone())
    }

    /// The route of `kind` now in place.
    pub fn get(&self, kind: RouteKind) -> Option<Arc<Route>> {
        self.slot(kind).load_full()
    }

    /// The route of `kind`, as the API shows it.
    pub fn describe(&self, kind: RouteKind) -> Option<RouteInfo> {
        self.slot(kind).load().as_ref().map(|r| r.describe())
    }

    pub(super) fn set(&self, kind: RouteKind, route: Option<Route>) {
        self.slot(kind).store(route.map(Arc::new));
    }

    /// Drops every route whose version `keep` refuses; returns what was dropped.
    pub(super) fn retain(&self, mut keep: impl FnMut(&Route) -> bool) -> Vec<(RouteKind, String)> {
        let mut dropped = Vec::new();
        for kind in [RouteKind::Canary, RouteKind::Shadow] {
            let slot = self.slot(kind);
            if let Some(route) = slot.load_full()
                && !keep(&route)
            {
                slot.store(None);
                dropped.push((kind, route.model.version().to_owned()));
            }
        }
        dropped
    }
}

impl Routing {
    /// Sets, replaces or removes the route of `kind`: `percent` 0 removes the
    /// route if it names `version` (none there is not an error); otherwise
    /// `version` (loaded by `load`) must not be the `active` one and must take its
    /// inputs. Runs on the model manager's thread.
    pub(super) fn change(
        &self,
        kind: RouteKind,
        version: &str,
        percent: f64,
        active: Option<&LoadedModel>,
        load: impl FnOnce() -> Result<Arc<LoadedModel>, ManageError>,
    ) -> Result<RouteInfo, ManageError> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(ManageError::BadPercent(percent));
        }
        let info = RouteInfo {
            version: version.to_owned(),
            percent,
        };
        if percent == 0.0 {
            // By the version it names, whatever that version's state now.
            return match self.get(kind) {
                Some(route) if route.model.version() != version => {
                    Err(ManageError::RoutedElsewhere {
                        kind,
                        routed: route.model.version().to_owned(),
                        asked: version.to_owned(),
                    })
                }
                Some(_) => {
                    self.set(kind, None);
                    tracing::info!(version, route = %kind, "route removed");
                    Ok(info)
                }
                None => Ok(info),
            };
        }
        if active.is_some_and(|m| m.version() == version) {
            return Err(ManageError::RouteToActive(version.to_owned()));
        }
        let model = load()?;
        if let Some(active) = active
            && let Some(reason) = mismatch(&active.manifest().net, &model.manifest().net)
        {
            return Err(ManageError::Incompatible {
                version: version.to_owned(),
                reason,
            });
        }
        self.set(kind, Some(Route::new(model, percent)));
        tracing::info!(version, percent, route = %kind, "route set");
        Ok(info)
    }

    /// Before `active` is published: drops the routes to it (it answers every
    /// request now) and the routes that cannot take its requests; whether any
    /// was dropped.
    pub(super) fn recheck(&self, active: &LoadedModel) -> bool {
        let net = &active.manifest().net;
        let dropped = self.retain(|r| {
            r.model.version() != active.version()
                && mismatch(net, &r.model.manifest().net).is_none()
        });
        let any = !dropped.is_empty();
        for (kind, version) in dropped {
            tracing::info!(
                version,
                route = %kind,
                active = active.version(),
                "route removed: its version is now active, or cannot take the active version's requests"
            );
        }
        any
    }
}

/// Why `candidate` cannot take requests meant for `active`, if it cannot: a
/// route must answer the same requests as the version it stands beside (the
/// same input shape, the same task).
pub fn mismatch(active: &NetConfig, candidate: &NetConfig) -> Option<String> {
    let (a, c) = (active.input_shape(), candidate.input_shape());
    if a != c || active.task != candidate.task {
        return Some(format!(
            "it takes inputs of shape {c:?} for {}; the active version takes {a:?} for {}: a route must answer the same requests",
            candidate.task, active.task
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Task;
    use crate::model::net::{ActivationKind, Architecture, MlpConfig};

    fn net(task: Task, input: usize) -> NetConfig {
        NetConfig {
            task,
            architecture: Architecture::Mlp(MlpConfig {
                input,
                hidden: vec![],
                output: 3,
                activation: ActivationKind::Relu,
            }),
            preprocess: None,
        }
    }

    #[test]
    fn a_route_must_take_the_active_versions_inputs_for_its_task() {
        let iris = net(Task::Classification, 4);
        assert_eq!(mismatch(&iris, &net(Task::Classification, 4)), None);
        let wide = mismatch(&iris, &net(Task::Classification, 10)).unwrap();
        assert!(wide.contains("[10]") && wide.contains("[4]"), "{wide}");
        assert!(mismatch(&iris, &net(Task::Regression, 4)).is_some());
    }
}
