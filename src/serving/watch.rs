//! Keeps a replica on the store's active version: the active record is re-read
//! every `store.poll_interval_ms`, and a version promoted by another replica (or by
//! `kiln train` writing to the same store) is loaded and swapped in here too.
//!
//! Polling works on every shared filesystem (NFS does not deliver inotify events
//! for other clients' writes), and its cost is one small file read per interval.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ActiveModel, Models};
use crate::registry::Store;

/// Starts the watch; it ends when `stop` is cancelled.
pub fn spawn(
    store: Store,
    models: Models,
    active: ActiveModel,
    interval: Duration,
    stop: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let store = store.clone();
            let record = match tokio::task::spawn_blocking(move || store.active()).await {
                Ok(Ok(Some(record))) => record,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the active-version record");
                    continue;
                }
                _ => continue,
            };
            if active
                .current()
                .is_none_or(|m| m.version() == record.version)
            {
                continue;
            }
            if let Err(e) = models.sync().await {
                tracing::warn!(version = record.version, error = %e, "cannot serve the store's active version; the current one keeps serving");
            }
        }
    });
}
