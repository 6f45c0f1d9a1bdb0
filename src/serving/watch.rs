//! Keeps a replica on the store's active version and routes: the active
//! record's tag is checked every `store.poll_interval_ms`, and when it changed, a
//! version promoted by another replica (or by `kiln train` writing to the same
//! store) is loaded and swapped in here too. The routes record (canary and
//! shadow) is followed the same way.
//!
//! Polling works on every shared filesystem (NFS does not deliver inotify events
//! for other clients' writes) and on buckets, where the check is one HEAD request
//! (the ETag); on a directory it is one small file read.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Models;
use crate::executor::ActiveModel;
use crate::registry::Store;

/// Starts the watch on `tracker`; it ends when `stop` is cancelled.
pub fn spawn(
    store: Store,
    models: Models,
    active: ActiveModel,
    interval: Duration,
    stop: CancellationToken,
    tracker: &TaskTracker,
) {
    if interval.is_zero() {
        return;
    }
    tracker.spawn(async move {
        // The tag this replica last caught up with; until then every tick reads.
        let mut seen: Option<crate::registry::Tag> = None;
        let mut routes_seen: Option<crate::registry::Tag> = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if active.current().is_some() {
                follow_routes(&store, &models, &mut routes_seen).await;
            }
            let (reader, last) = (store.clone(), seen.clone());
            let read = tokio::task::spawn_blocking(move || {
                let tag = reader.active_tag()?;
                if tag.is_some() && tag == last {
                    return Ok(None); // unchanged
                }
                Ok::<_, crate::registry::StoreError>(Some((tag, reader.active()?)))
            });
            let (tag, record) = match read.await {
                Ok(Ok(Some((tag, Some(record))))) => (tag, record),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the active-version record");
                    continue;
                }
                _ => continue,
            };
            let Some(current) = active.current() else {
                continue; // the initial load reads the record itself
            };
            if current.version() == record.version {
                seen = tag;
                continue;
            }
            match models.sync().await {
                Ok(_) => seen = tag,
                Err(e) => {
                    tracing::warn!(version = record.version, error = %e, "cannot serve the store's active version; the current one keeps serving");
                }
            }
        }
    });
}

/// Applies the routes record when its tag changed since `seen` (first: always).
async fn follow_routes(store: &Store, models: &Models, seen: &mut Option<crate::registry::Tag>) {
    let reader = store.clone();
    let tag = match tokio::task::spawn_blocking(move || reader.routes_tag()).await {
        Ok(Ok(tag)) => tag,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the routes record");
            return;
        }
        Err(_) => return,
    };
    if tag.is_none() || tag == *seen {
        return;
    }
    match models.sync_routes().await {
        Ok(_) => *seen = tag,
        Err(e) => tracing::warn!(error = %e, "cannot follow the store's routes"),
    }
}
