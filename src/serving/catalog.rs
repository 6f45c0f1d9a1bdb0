//! The named models this process serves beside the default one: one [`Bundle`]
//! each, found by name without a lock (an `ArcSwap` of the map), added by a first
//! import under a new name, and opened for every model the store records: at
//! start, then every `store.poll_interval_ms` for the ones other replicas make
//! (and dropped for the ones they delete). Deleted here once unloaded.
//!
//! Named models share the process's batcher, executor, compute threads and
//! explainer, and `serving.max_loaded_mb` (`residency`: loaded on demand, the
//! least recently used unloaded past it). Each has its own store (`models/<name>/`), versions, model manager,
//! routes, prediction log, feedback and live quality, and jobs that train it
//! (`POST /models/{name}/train`). Not yet per model: automatic retraining.
//! Each reports to a `Metrics` of its own, exported under its `model` label
//! (`metrics::models`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::ManageError;
use super::bundle::{self, Bundle, BundleThreads, Shared};
use super::residency::Budget;
use super::swap::Bootstrap;
use crate::executor::ActiveModel;
use crate::metrics::Metrics;
use crate::registry::{ModelName, Store};

/// Cheap `Clone` handle over the named models.
#[derive(Clone)]
pub struct Catalog(Arc<Inner>);

struct Inner {
    shared: Shared,
    /// The default model (its weights count against the budget; never unloaded).
    default: Arc<Bundle>,
    /// `serving.max_loaded_mb`, and the order of use.
    budget: Budget,
    root: Store,
    bootstrap: Bootstrap,
    bundles: ArcSwap<BTreeMap<ModelName, Arc<Bundle>>>,
    /// Every started bundle's threads, by model, for shutdown and deletion.
    threads: Mutex<Vec<(ModelName, BundleThreads)>>,
    /// Held while the store's names are listed and opened, and while a model is
    /// recorded and listed.
    listing: Mutex<()>,
    /// Set at shutdown: no model is opened from the store after.
    closed: std::sync::atomic::AtomicBool,
}

impl Catalog {
    /// An empty catalog over the store `root` (the default model's, served by
    /// `default`).
    pub fn new(shared: Shared, root: Store, bootstrap: Bootstrap, default: Arc<Bundle>) -> Self {
        let budget = Budget::new(shared.config.serving.max_loaded_mb);
        Self(Arc::new(Inner {
            default,
            budget,
            shared,
            root,
            bootstrap,
            bundles: ArcSwap::from_pointee(BTreeMap::new()),
            threads: Mutex::new(Vec::new()),
            listing: Mutex::new(()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The named model `name`, if this process serves it.
    pub fn get(&self, name: &ModelName) -> Option<Arc<Bundle>> {
        self.0.bundles.load().get(name).cloned()
    }

    /// Every named model, in name order.
    pub fn all(&self) -> Vec<Arc<Bundle>> {
        self.0.bundles.load().values().cloned().collect()
    }

    /// Starts a bundle for every named model the store records that this process
    /// does not serve yet (at start, and as another replica makes them), and loads
    /// each one's active version within the budget (blocking: call it off the
    /// async workers). A model that fails to open is logged and left out; the
    /// others serve. Past `model.max_models`, the rest are logged and left out.
    pub fn open_recorded(&self) -> Result<usize, crate::registry::StoreError> {
        let _listing = self.0.listing.lock().unwrap_or_else(|e| e.into_inner());
        let names = self.0.root.model_names()?;
        // Deleted by another replica: no longer served here.
        for gone in self.all().iter().filter_map(|b| {
            let name = ModelName::parse(&b.name).ok()?;
            (!names.contains(&name)).then_some(name)
        }) {
            tracing::info!(model = %gone, "a named model was deleted; no longer serving it");
            self.drop_model(&gone);
        }
        let max = self.0.shared.config.model.max_models;
        let mut opened = 0;
        for name in names {
            if self.get(&name).is_some() || self.0.closed.load(std::sync::atomic::Ordering::Acquire)
            {
                continue;
            }
            if self.all().len() >= max {
                tracing::warn!(model = %name, max, "not served: model.max_models reached");
                continue;
            }
            match self.start(&name) {
                Ok(bundle) => {
                    let has_versions = bundle.store.list().map(|v| !v.is_empty());
                    if has_versions.unwrap_or(false) {
                        let (catalog, loaded) = (self.clone(), bundle.clone());
                        let shown = name.clone();
                        tokio::spawn(async move {
                            if let Err(e) = catalog.ready(&loaded).await {
                                tracing::error!(model = %shown, error = %e, "a named model did not load");
                            }
                        });
                    }
                    self.insert(name, bundle);
                    opened += 1;
                }
                Err(e) => tracing::error!(model = %name, error = %e, "cannot open a named model"),
            }
        }
        Ok(opened)
    }

    /// Every `interval`, opens the named models another replica made
    /// ([`open_recorded`](Self::open_recorded)), until `stop`.
    pub fn follow(
        &self,
        interval: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) {
        if interval.is_zero() {
            return;
        }
        let catalog = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let catalog = catalog.clone();
                match tokio::task::spawn_blocking(move || catalog.open_recorded()).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(models = n, "serving named models another replica made")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot list the named models"),
                    _ => {}
                }
            }
        });
    }

    /// A bundle for the named model `name`, started but not yet listed: `create`
    /// lists it once its first version is in.
    pub fn start(&self, name: &ModelName) -> Result<Arc<Bundle>, crate::registry::StoreError> {
        let store = self.0.root.model(name)?;
        let (bundle, threads) = bundle::start(
            &self.0.shared,
            name.to_string(),
            store,
            self.0.bootstrap,
            // Its own series: `/metrics` labels them with its name, and they never
            // move the default model's readiness or version.
            ActiveModel::new(Metrics::new()),
        )
        .map_err(|source| crate::registry::StoreError::Io {
            path: name.as_str().into(),
            source,
        })?;
        self.0
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.clone(), threads));
        Ok(bundle)
    }

    /// Writes the first version of the new named model `name` from `weights`
    /// (the file a client named `file_name`) and `config`, before anything of the
    /// model is started: weights that do not fit their config start nothing.
    /// Blocking.
    pub fn first_version(
        &self,
        name: &ModelName,
        weights: &std::path::Path,
        file_name: &str,
        config: &crate::model::NetConfig,
    ) -> Result<String, super::ManageError> {
        let (manifest, net) = crate::model::import::import_as(
            weights,
            file_name,
            config,
            "upload",
            &self.0.shared.device,
        )?;
        Ok(self.0.root.model(name)?.create_version(&manifest, &net)?)
    }

    /// Whether one more named model fits under `model.max_models` (409 if not).
    pub fn room(&self) -> Result<(), ManageError> {
        let max = self.0.shared.config.model.max_models;
        if self.all().len() >= max {
            return Err(ManageError::InUse(format!(
                "this server already serves {max} named models (model.max_models)"
            )));
        }
        Ok(())
    }

    /// The store a new named model `name` would keep its versions in (nothing is
    /// written).
    pub fn store_of(&self, name: &ModelName) -> Result<Store, crate::registry::StoreError> {
        self.0.root.model(name)
    }

    /// Opens the new named model `name`, whose first version is already in its
    /// store: starts its bundle, makes that version active, records and lists
    /// the model, and counts its weights against `serving.max_loaded_mb`.
    pub async fn open_created(&self, name: &ModelName) -> Result<Arc<Bundle>, ManageError> {
        let catalog = self.clone();
        let started = name.clone();
        let bundle = tokio::task::spawn_blocking(move || catalog.start(&started))
            .await
            .map_err(|e| ManageError::Crashed(e.to_string()))??;
        // A store with one version and no active record activates it.
        bundle.models.load_initial().await?;
        let catalog = self.clone();
        let (created, listed) = (name.clone(), bundle.clone());
        tokio::task::spawn_blocking(move || catalog.create(&created, listed))
            .await
            .map_err(|e| ManageError::Crashed(e.to_string()))??;
        // The new model's weights count against serving.max_loaded_mb from now on.
        self.touch(&bundle);
        self.fit(&bundle).await;
        Ok(bundle)
    }

    /// Records the named model `name` in the store and lists `bundle` under it
    /// (one step for [`open_recorded`](Self::open_recorded): it never opens a
    /// second bundle for a model being created).
    pub fn create(
        &self,
        name: &ModelName,
        bundle: Arc<Bundle>,
    ) -> Result<(), crate::registry::StoreError> {
        let _listing = self.0.listing.lock().unwrap_or_else(|e| e.into_inner());
        self.0.root.add_model(name)?;
        self.insert(name.clone(), bundle);
        Ok(())
    }

    fn insert(&self, name: ModelName, bundle: Arc<Bundle>) {
        self.0.bundles.rcu(|map| {
            let mut map = BTreeMap::clone(map);
            map.insert(name.clone(), bundle.clone());
            map
        });
    }

    /// Makes sure `bundle` serves a version, loading its active one if it holds
    /// none (`residency`), then unloads the least recently used named models
    /// while the loaded weights pass `serving.max_loaded_mb`. Marks it used.
    pub async fn ready(&self, bundle: &Arc<Bundle>) -> Result<(), ManageError> {
        if self.0.budget.ensure(bundle).await? {
            self.fit(bundle).await;
        }
        Ok(())
    }

    /// Models unloaded so far (for room or by hand).
    pub fn unloads(&self) -> u64 {
        self.0.budget.unloads()
    }

    /// Marks `bundle` used now (the order `serving.max_loaded_mb` unloads in).
    pub fn touch(&self, bundle: &Bundle) {
        self.0.budget.touch(bundle);
    }

    /// Unloads the named model `bundle` (the default model always serves).
    pub async fn unload(&self, bundle: &Arc<Bundle>) -> Result<(), ManageError> {
        if Arc::ptr_eq(bundle, &self.0.default) {
            return Err(ManageError::InUse(
                "the default model always serves; only named models unload".into(),
            ));
        }
        self.0.budget.unload(bundle).await
    }

    /// [`delete`](Self::delete) from async code, with the model's loads held off
    /// while it runs.
    pub async fn delete_async(
        &self,
        name: &ModelName,
        bundle: Arc<Bundle>,
    ) -> Result<(), ManageError> {
        let _no_loads = bundle.residency.hold_loads().await;
        let (catalog, name, deleting) = (self.clone(), name.clone(), bundle.clone());
        tokio::task::spawn_blocking(move || catalog.delete(&name, &deleting))
            .await
            .map_err(|e| ManageError::Crashed(format!("a model deletion stopped: {e}")))?
    }

    /// Unloads the least recently used named models but `keep` while the loaded
    /// weights pass the budget.
    pub async fn fit(&self, keep: &Bundle) -> Vec<String> {
        self.0.budget.fit(&self.0.default, &self.all(), keep).await
    }

    /// Every bundle's threads, for shutdown (none are opened after).
    pub fn take_threads(&self) -> Vec<BundleThreads> {
        let _listing = self.0.listing.lock().unwrap_or_else(|e| e.into_inner());
        self.0
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        std::mem::take(&mut *self.0.threads.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .map(|(_, threads)| threads)
            .collect()
    }

    /// Stops serving the named model `name` here: unlisted, its threads ended
    /// (blocking). The store is left as it is.
    fn drop_model(&self, name: &ModelName) {
        self.0.bundles.rcu(|map| {
            let mut map = BTreeMap::clone(map);
            map.remove(name);
            map
        });
        let mut threads = self.0.threads.lock().unwrap_or_else(|e| e.into_inner());
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *threads)
            .into_iter()
            .partition(|(n, _)| n == name);
        *threads = kept;
        drop(threads);
        for (_, t) in gone {
            t.stop();
        }
    }

    /// Deletes the named model `bundle` serves: refused while it holds weights
    /// (unload it first) or has a route. Unlisted and stopped here, then its
    /// record and every file removed from the store; other replicas drop it at
    /// their next listing. Blocking.
    pub fn delete(&self, name: &ModelName, bundle: &Bundle) -> Result<(), ManageError> {
        let _listing = self.0.listing.lock().unwrap_or_else(|e| e.into_inner());
        if bundle.model.current().is_some() {
            return Err(ManageError::InUse(format!(
                "model {name} is loaded; unload it first (POST /v2/repository/models/{name}/unload)"
            )));
        }
        if [
            super::routing::RouteKind::Canary,
            super::routing::RouteKind::Shadow,
        ]
        .iter()
        .any(|k| bundle.models.routes().get(*k).is_some())
        {
            return Err(ManageError::InUse(format!(
                "model {name} has a canary or shadow route; remove it first"
            )));
        }
        self.drop_model(name);
        self.0.root.remove_model(name)?;
        tracing::info!(model = %name, "deleted a named model");
        Ok(())
    }
}
