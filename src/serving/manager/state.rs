//! The model manager thread's state and its command handlers: loading, promotion,
//! rollback, deletion, sync and routes, one command at a time.

use super::*;

/// State owned by the manager thread.
pub(super) struct Manager {
    store: Store,
    device: Device,
    warm_up: WarmUp,
    /// Makes the model an empty store starts with.
    bootstrap: swap::Bootstrap,
    active: ActiveModel,
    /// Canary and shadow routes: written here only.
    routing: Arc<Routing>,
    /// Loaded versions kept warm: the active one and the previous one, and up to
    /// [`MAX_WARM`] in all with versions asked for by name.
    warm: HashMap<String, Arc<LoadedModel>>,
    /// When each warm version was last asked for (a counter), for LRU eviction.
    used: HashMap<String, u64>,
    clock: u64,
    /// Bytes of the warm versions' weights, for the handle to read.
    held: Arc<std::sync::atomic::AtomicU64>,
}

impl Manager {
    pub(super) fn new(
        store: Store,
        device: Device,
        warm_up: WarmUp,
        bootstrap: swap::Bootstrap,
        active: ActiveModel,
        routing: Arc<Routing>,
        held: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        Self {
            store,
            device,
            warm_up,
            bootstrap,
            active,
            routing,
            warm: HashMap::new(),
            used: HashMap::new(),
            clock: 0,
            held,
        }
    }

    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(command) = rx.blocking_recv() {
            // The answer goes out after the held bytes are updated: a caller that
            // loaded a version sees its weights counted.
            let answer: Box<dyn FnOnce()> = match command {
                Command::LoadInitial(reply) => answer(reply, self.load_initial()),
                Command::Promote(version, reply) => answer(reply, self.promote(&version)),
                Command::Rollback(reply) => answer(reply, self.rollback()),
                Command::Delete(version, reply) => answer(reply, self.delete(&version)),
                Command::Get(version, reply) => answer(reply, self.get(&version)),
                Command::Sync(reply) => answer(reply, self.sync()),
                Command::Stop => return,
                Command::Route(kind, version, percent, reply) => {
                    let routed = self.route(kind, &version, percent);
                    if routed.is_ok() {
                        self.publish_routes();
                    }
                    answer(reply, routed)
                }
                Command::SyncRoutes(reply) => answer(reply, self.sync_routes()),
                Command::Unload(reply) => answer(reply, self.unload()),
            };
            let held = self.warm.values().map(|m| m.weight_bytes()).sum();
            self.held.store(held, std::sync::atomic::Ordering::Relaxed);
            answer();
        }
    }

    fn load_initial(&mut self) -> Result<String, ManageError> {
        let model = Arc::new(swap::load_active(
            &self.store,
            &self.device,
            self.warm_up,
            self.bootstrap,
        )?);
        let version = model.version().to_owned();
        self.warm.insert(version.clone(), model.clone());
        self.active.publish(model);
        Ok(version)
    }

    fn unload(&mut self) -> Result<(), ManageError> {
        if let Some(kind) = [RouteKind::Canary, RouteKind::Shadow]
            .into_iter()
            .find(|k| self.routing.get(*k).is_some())
        {
            return Err(ManageError::InUse(format!(
                "the model has a {kind} route; remove it before unloading"
            )));
        }
        self.active.withdraw();
        self.warm.clear();
        self.used.clear();
        Ok(())
    }

    fn promote(&mut self, version: &str) -> Result<ActiveRecord, ManageError> {
        self.activate(version, None)
    }

    /// Makes `version` active. With `seen` (a rollback), only over that record: a
    /// promotion by another replica in between is a conflict, not overwritten.
    fn activate(
        &mut self,
        version: &str,
        seen: Option<(ActiveRecord, Tag)>,
    ) -> Result<ActiveRecord, ManageError> {
        // Compared with the store's record, not only what this replica serves: it
        // may not have seen another replica's promotion yet.
        let record = match &seen {
            Some((record, _)) => Some(record.clone()),
            None => self.store.active()?,
        };
        let serving = self.active.current();
        if seen.is_none()
            && let Some(record) = record.filter(|r| r.version == version)
            && serving.as_ref().is_some_and(|m| m.version() == version)
        {
            return Ok(record);
        }
        let model = match self.warm.get(version) {
            Some(m) => m.clone(),
            None => Arc::new(swap::load_warm(
                &self.store,
                version,
                &self.device,
                self.warm_up,
            )?),
        };
        // Under the store-wide lock: no replica deletes it between the check that
        // it exists and the record naming it.
        let store = &self.store;
        let written = store.locked(MODELS_LOCK, || match &seen {
            Some(seen) => store.activate_over(version, Some(seen)),
            None => store.set_active(version),
        });
        let record = match written {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(version, error = %e, "promotion failed; the serving version is unchanged");
                return Err(e.into());
            }
        };
        if self.routing.recheck(&model) {
            self.publish_routes();
        }
        self.active.publish(model.clone());
        self.warm.insert(version.to_owned(), model);
        self.warm
            .retain(|v, _| v == version || record.previous.as_deref() == Some(v.as_str()));
        let verb = if seen.is_some() {
            "rolled back"
        } else {
            "promoted"
        };
        tracing::info!(
            version,
            previous = record.previous.as_deref().unwrap_or("none"),
            generation = record.generation,
            "{verb}"
        );
        Ok(record)
    }

    fn get(&mut self, version: &str) -> Result<Arc<LoadedModel>, ManageError> {
        self.clock += 1;
        self.used.insert(version.to_owned(), self.clock);
        if let Some(m) = self.warm.get(version) {
            return Ok(m.clone());
        }
        let model = Arc::new(swap::load_warm(
            &self.store,
            version,
            &self.device,
            self.warm_up,
        )?);
        // Keep the active and previous versions, and the most recently used others:
        // the least recently used spare makes room.
        if self.warm.len() >= MAX_WARM {
            let keep = self.store.active()?;
            let spare = self
                .warm
                .keys()
                .filter(|v| {
                    keep.as_ref().is_none_or(|r| {
                        r.version != **v && r.previous.as_deref() != Some(v.as_str())
                    })
                })
                .min_by_key(|v| self.used.get(*v).copied().unwrap_or(0))
                .cloned();
            if let Some(spare) = spare {
                self.warm.remove(&spare);
            }
        }
        self.warm.insert(version.to_owned(), model.clone());
        self.used.retain(|v, _| self.warm.contains_key(v));
        Ok(model)
    }

    fn sync(&mut self) -> Result<bool, ManageError> {
        let Some(record) = self.store.active()? else {
            return Ok(false);
        };
        let version = record.version.as_str();
        if self.active.current().is_none_or(|m| m.version() == version) {
            // Not loaded yet (the initial load will read the record), or current.
            return Ok(false);
        }
        let model = self.get(version)?;
        self.routing.recheck(&model);
        self.active.publish(model);
        tracing::info!(
            version,
            "now serving the store's active version (set by another replica or the command line)"
        );
        Ok(true)
    }

    fn rollback(&mut self) -> Result<ActiveRecord, ManageError> {
        let seen = self.store.active_tagged()?;
        let previous = seen
            .as_ref()
            .and_then(|(r, _)| r.previous.clone())
            .ok_or(ManageError::NoPrevious)?;
        match self.activate(&previous, seen) {
            Err(ManageError::NotFound(v)) => Err(ManageError::PreviousGone(v)),
            other => other,
        }
    }

    fn delete(&mut self, version: &str) -> Result<(), ManageError> {
        let store = &self.store;
        store.locked(MODELS_LOCK, || {
            let active = store.active()?.map(|r| r.version);
            if active.as_deref() == Some(version) {
                return Ok(Err(ManageError::IsActive(version.into())));
            }
            store.delete_version(version).map(Ok)
        })??;
        let dropped = self.routing.retain(|r| r.model.version() != version);
        for (kind, version) in &dropped {
            tracing::info!(version, route = %kind, "route removed: its version was deleted");
        }
        if !dropped.is_empty() {
            self.publish_routes();
        }
        self.warm.remove(version);
        Ok(())
    }

    /// Writes this replica's routes as the store's record, for the others. A
    /// store that refuses it leaves the route on this replica alone (said).
    fn publish_routes(&self) {
        let entry = |kind| {
            self.routing.describe(kind).map(|r| RouteEntry {
                version: r.version,
                percent: r.percent,
            })
        };
        let record = RoutesRecord {
            canary: entry(RouteKind::Canary),
            shadow: entry(RouteKind::Shadow),
        };
        if let Err(e) = self.store.set_routes(&record) {
            tracing::warn!(error = %e, "cannot write the routes record; other replicas keep their routes");
        }
    }

    /// Applies the store's routes record: sets, replaces or removes each route
    /// that differs here. A route this replica cannot take (its version is
    /// gone, or active here) is left off, and said.
    fn sync_routes(&mut self) -> Result<bool, ManageError> {
        let record = self.store.routes()?.map(|(r, _)| r).unwrap_or_default();
        let mut changed = false;
        for (kind, want) in [
            (RouteKind::Canary, record.canary),
            (RouteKind::Shadow, record.shadow),
        ] {
            let have = self.routing.describe(kind);
            let (version, percent) = match (&have, &want) {
                (Some(h), Some(w)) if h.version == w.version && h.percent == w.percent => continue,
                (None, None) => continue,
                (_, Some(w)) => (w.version.clone(), w.percent),
                (Some(h), None) => (h.version.clone(), 0.0),
            };
            match self.route(kind, &version, percent) {
                Ok(_) => changed = true,
                Err(e) => {
                    tracing::warn!(version, route = %kind, error = %e, "cannot follow the store's route")
                }
            }
        }
        Ok(changed)
    }

    /// Sets, replaces or removes the route of `kind` (see [`Models::route`]).
    fn route(
        &mut self,
        kind: RouteKind,
        version: &str,
        percent: f64,
    ) -> Result<RouteInfo, ManageError> {
        let routing = self.routing.clone();
        let active = self.active.current();
        routing.change(kind, version, percent, active.as_deref(), || {
            self.get(version)
        })
    }
}

/// Sends `result` to `reply` when called (a caller that went away is no error).
fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T, ManageError>) -> Box<dyn FnOnce()> {
    Box::new(move || {
        let _ = reply.send(result);
    })
}
