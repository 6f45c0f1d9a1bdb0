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
//! An import ([`Models::import`]) reads and checks the weights off the async
//! runtime, writes the new version, and promotes it through the same queue when
//! asked.
//!
//! The manager also owns the canary and shadow routes ([`Routing`]): they are set
//! and removed through the handle, and a promotion, rollback or deletion drops
//! (or checks again) the routes it touches before it publishes, in the same step,
//! so no request is ever routed to a deleted or active version, or to one that
//! cannot take the new active version's requests. The replica that changes a
//! route writes both routes to the store's routes record; every replica follows
//! that record ([`Models::sync_routes`], polled like the active version).

use std::collections::HashMap;
use std::sync::Arc;

use burn::prelude::Device;
use tokio::sync::{mpsc, oneshot};

pub use super::error::ManageError;

use super::routing::{RouteInfo, RouteKind, Routing};
use super::swap::{self, WarmUp};
use crate::executor::ActiveModel;
use crate::model::{LoadedModel, NetConfig, import};
use crate::registry::{ActiveRecord, RouteEntry, RoutesRecord, Store, Tag};

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
    SyncRoutes(Reply<bool>),
    Unload(Reply<()>),
}

/// Handle to the model manager thread.
#[derive(Clone)]
pub struct Models {
    tx: mpsc::Sender<Command>,
    routing: Arc<Routing>,
    /// Bytes of the weights the manager holds loaded (every warm version).
    held: Arc<std::sync::atomic::AtomicU64>,
    /// For imports: where versions are written, and the device they are checked on.
    store: Store,
    device: Device,
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
        let held = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handle = Self {
            tx: tx.clone(),
            routing,
            held: held.clone(),
            store: store.clone(),
            device: device.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("kiln-models".into())
            .spawn(move || {
                Manager::new(store, device, warm, bootstrap, active, routes, held).run(rx)
            })?;
        let owner = ManagerThread { tx, thread };
        Ok((handle, owner))
    }

    /// A new version from PyTorch weights (a `torch.save` file or safetensors at
    /// `weights`, called `name` in messages) for the network `config`; promoted
    /// too when `activate`. Reading and checking the file runs off the async
    /// runtime; the version is written only once the weights pass every check.
    pub async fn import<P>(
        &self,
        weights: P,
        name: String,
        config: NetConfig,
        activate: bool,
    ) -> Result<String, ManageError>
    where
        P: AsRef<std::path::Path> + Send + 'static,
    {
        let (store, device) = (self.store.clone(), self.device.clone());
        let version = tokio::task::spawn_blocking(move || -> Result<String, ManageError> {
            let (manifest, net) =
                import::import_as(weights.as_ref(), &name, &config, "upload", &device)?;
            Ok(store.create_version(&manifest, &net)?)
        })
        .await
        .map_err(|e| ManageError::Crashed(format!("the import stopped: {e}")))??;
        if activate {
            self.promote(&version).await?;
        }
        Ok(version)
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

    /// Applies the store's routes record (set by any replica); whether a route
    /// changed here.
    pub async fn sync_routes(&self) -> Result<bool, ManageError> {
        self.call(Command::SyncRoutes).await
    }

    /// Drops every loaded version: the model serves nothing until the next
    /// [`load_initial`](Self::load_initial). Refused while a canary or shadow
    /// route is set (its version is in use).
    pub async fn unload(&self) -> Result<(), ManageError> {
        self.call(Command::Unload).await
    }

    /// Bytes of the weights loaded now (every version kept warm).
    pub fn held_bytes(&self) -> u64 {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
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

mod state;
use state::Manager;
