//! Gives back to the system the heap pages glibc keeps after they are freed.
//!
//! glibc returns freed memory only from the top of each arena, so the weights of
//! an unloaded small model (and the load churn of many models within
//! `serving.max_loaded_mb`) stay resident after they are freed. Measured on the
//! 50-model Zipf run (`benches/evals/zipf_models.py`): 160 MB at the end of the
//! run, 102 MB after one `malloc_trim(0)`, below the 111 MB with every model made.
//! [`spawn_trims`] trims at most once a second, after unloads.
//!
//! The one `unsafe` call in kiln is here: `malloc_trim` takes no pointer and
//! glibc locks each arena while it walks it. Elsewhere than glibc it does nothing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Asks glibc to return its free pages to the system; whether it gave any back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed() -> bool {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim takes no pointer and has no precondition; glibc
    // serialises it with every other allocator call.
    unsafe { malloc_trim(0) != 0 }
}

/// Not glibc: its allocator returns memory itself, or has no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() -> bool {
    false
}

/// Every `every`, when `count()` (unloads so far) moved since the last look,
/// trims on a blocking thread; ends with `stop`.
pub fn spawn_trims(
    count: impl Fn() -> u64 + Send + 'static,
    every: Duration,
    stop: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let mut seen = count();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let now = count();
            if now != seen {
                seen = now;
                let _ = tokio::task::spawn_blocking(release_freed).await;
            }
        }
    });
}
