//! [`Models`]: the one owner of "which version serves". Promote, rollback, delete
//! and the initial load run one at a time on the manager's own thread (they load
//! weights and fsync, so they block), in the order they were asked for.
//!
//! A promotion loads and warms the version up first, off the serving path; only then
//! is the store's active record written and the version published on the serving
//! seam. A version that fails to load changes nothing: the old one keeps serving.
//! The active and the previous versions stay loaded, so a rollback is instant; a
//! version asked for by name (OIP v2) is loaded on demand and kept warm too, up to
//! [`MAX_WARM`] versions.
//!
//! The manager also owns the canary and shadow routes ([`Routing`]): they are set
//! and removed through the handle, and a promotion, rollback or deletion drops
//! (or checks again) the routes it touches before it publishes, in the same step,
//! so no request is ever routed to a deleted or active version, or to one that
//! cannot take the new active version's requests.

use std::collections::HashMap;
use std::sync::Arc;

use burn::prelude::Device;
use tokio::sync::{mpsc, oneshot};

pub use super::error::ManageError;

use super::ActiveModel;
use super::routing::{RouteInfo, RouteKind, Routing};
use super::swap::{self, WarmUp};
use crate::model::LoadedModel;
use crate::registry::{ActiveRecord, Store, Tag};

/// The store-wide lock promotions, deletions and the first version take.
pub(super) const MODELS_LOCK: &str = "models";

/// Versions kept loaded: the active one, the previous one, and on-demand ones.
const MAX_WARM: usize = 4;

type Reply<T> = oneshot::Sender<Result<T, ManageError>>;

enum Command {
    LoadInitial(Reply<String>),
    Promote(String, Reply<ActiveRecord>),
    Rollback(Reply<ActiveRecord>),
    Delete(String, Reply<()>),
    Get(String, Reply<Arc<LoadedModel>>),
    Sync(Reply<bool>),
    /// Finish the commands asked for before, then end (shutdown).
    Stop,
    Route(RouteKind, String, f64, Reply<RouteInfo>),
}

/// Handle to the model manager thread.
#[derive(Clone)]
pub struct Models {
    tx: mpsc::Sender<Command>,
    routing: Arc<Routing>,
}

/// The model manager thread, owned by the process lifecycle.
pub struct ManagerThread {
    tx: mpsc::Sender<Command>,
    thread: std::thread::JoinHandle<()>,
}

impl ManagerThread {
    /// Lets the manager finish what it was asked before, then joins it. Blocks:
    /// call it off the async runtime.
    pub fn stop(self) {
        let _ = self.tx.blocking_send(Command::Stop);
        if self.thread.join().is_err() {
            tracing::error!("the model manager thread panicked");
        }
    }
}

impl Models {
    /// Starts the manager thread; it ends at [`ManagerThread::stop`] (or when
    /// every handle is dropped). Versions are warmed up as `warm` says before they
    /// serve.
    pub fn spawn(
        store: Store,
        device: Device,
        warm: WarmUp,
        bootstrap: swap::Bootstrap,
        active: ActiveModel,
    ) -> std::io::Result<(Self, ManagerThread)> {
        let (tx, rx) = mpsc::channel(16);
        let routing = Arc::new(Routing::default());
        let routes = routing.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-models".into())
            .spawn(move || {
                Manager {
                    store,
                    device,
                    warm_up: warm,
                    bootstrap,
                    active,
                    routing: routes,
                    warm: HashMap::new(),
                    used: HashMap::new(),
                    clock: 0,
                }
                .run(rx)
            })?;
        let owner = ManagerThread {
            tx: tx.clone(),
            thread,
        };
        Ok((Self { tx, routing }, owner))
    }

    /// The canary and shadow routes, for reading (one atomic load per request).
    pub fn routes(&self) -> &Arc<Routing> {
        &self.routing
    }

    /// Sends `percent`% (0 to 100) of unpinned requests to `version` as the route
    /// of `kind`, replacing the route there. Percent 0 removes the route, which
    /// must name `version` (removing none is not an error).
    pub async fn route(
        &self,
        kind: RouteKind,
        version: &str,
        percent: f64,
    ) -> Result<RouteInfo, ManageError> {
        let version = version.to_owned();
        self.call(|r| Command::Route(kind, version, percent, r))
            .await
    }

    /// Loads and publishes the active version (an empty store gets the default model).
    pub async fn load_initial(&self) -> Result<String, ManageError> {
        self.call(Command::LoadInitial).await
    }

    /// Makes `version` the served version.
    pub async fn promote(&self, version: &str) -> Result<ActiveRecord, ManageError> {
        let version = version.to_owned();
        self.call(|r| Command::Promote(version, r)).await
    }

    /// Returns to the previously active version.
    pub async fn rollback(&self) -> Result<ActiveRecord, ManageError> {
        self.call(Command::Rollback).await
    }

    /// Deletes a version that is not active.
    pub async fn delete(&self, version: &str) -> Result<(), ManageError> {
        let version = version.to_owned();
        self.call(|r| Command::Delete(version, r)).await
    }

    /// A version loaded for serving without making it active (loaded on demand,
    /// then kept warm among the last few used).
    pub async fn get(&self, version: &str) -> Result<Arc<LoadedModel>, ManageError> {
        let version = version.to_owned();
        self.call(|r| Command::Get(version, r)).await
    }

    /// Serves whatever the store's active record names (another replica may have
    /// promoted it): load, warm up, publish, without writing the record. The record
    /// is read on the manager thread, after every promotion asked for before, so a
    /// stale read can never undo a newer promotion. Returns whether anything changed.
    pub async fn sync(&self) -> Result<bool, ManageError> {
        self.call(Command::Sync).await
    }

    /// [`promote`](Self::promote) for plain threads (the trainer); never call it
    /// from async code.
    pub fn promote_blocking(&self, version: &str) -> Result<ActiveRecord, ManageError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .blocking_send(Command::Promote(version.to_owned(), reply))
            .map_err(|_| ManageError::Stopped)?;
        rx.blocking_recv().map_err(|_| ManageError::Stopped)?
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, ManageError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(command(reply))
            .await
            .map_err(|_| ManageError::Stopped)?;
        rx.await.map_err(|_| ManageError::Stopped)?
    }
}

/// State owned by the manager thread.
struct Manager {
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
}

impl Manager {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(command) = rx.blocking_recv() {
            match command {
                Command::LoadInitial(reply) => {
                    let _ = reply.send(self.load_initial());
                }
                Command::Promote(version, reply) => {
                    let _ = reply.send(self.promote(&version));
                }
                Command::Rollback(reply) => {
                    let _ = reply.send(self.rollback());
                }
                Command::Delete(version, reply) => {
                    let _ = reply.send(self.delete(&version));
                }
                Command::Get(version, reply) => {
                    let _ = reply.send(self.get(&version));
                }
                Command::Sync(reply) => {
                    let _ = reply.send(self.sync());
                }
                Command::Stop => return,
                Command::Route(kind, version, percent, reply) => {
                    let _ = reply.send(self.route(kind, &version, percent));
                }
            }
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
        self.routing.recheck(&model);
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
        for (kind, version) in self.routing.retain(|r| r.model.version() != version) {
            tracing::info!(version, route = %kind, "route removed: its version was deleted");
        }
        self.warm.remove(version);
        Ok(())
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
