//! Runs the object store's async requests for the synchronous [`Backend`] trait.
//!
//! The requests run on a small runtime of the store's own ("kiln-store" threads),
//! never with `block_on` on the caller's: a caller on a tokio worker waits inside
//! `block_in_place`, so its runtime moves the worker's other tasks elsewhere, and
//! callers on plain threads (the model manager, the trainer) simply wait.
//!
//! [`Backend`]: crate::registry::Backend

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime, RuntimeFlavor};

/// The store's runtime; dropping it never blocks (it may be dropped in async code).
#[derive(Debug)]
pub struct Bridge {
    runtime: Option<Runtime>,
}

impl Bridge {
    pub fn new() -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-store")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs `request` to completion on the store's runtime; `None` if that runtime
    /// is shutting down.
    pub fn run<F>(&self, request: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(request.await);
        });
        let wait = move || rx.recv().ok();
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_from_plain_threads() {
        let bridge = Bridge::new().unwrap();
        assert_eq!(bridge.run(async { 2 + 2 }), Some(4));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_from_a_tokio_worker_and_a_blocking_thread() {
        let bridge = std::sync::Arc::new(Bridge::new().unwrap());
        assert_eq!(bridge.run(async { 1 }), Some(1));
        let b = bridge.clone();
        let from_pool = tokio::task::spawn_blocking(move || b.run(async { 2 }))
            .await
            .unwrap();
        assert_eq!(from_pool, Some(2));
        // Dropped inside async code: must not panic.
        drop(bridge);
    }

    #[tokio::test]
    async fn runs_from_a_current_thread_runtime() {
        let bridge = Bridge::new().unwrap();
        assert_eq!(bridge.run(async { 3 }), Some(3));
    }
}
