//! Gives back to the system the heap pages glibc keeps after they are freed.
//!
//! glibc returns freed memory only from the top of each arena, so the weights of
//! an unloaded small model (and the load churn of many models within
//! `serving.max_loaded_mb`) stay resident after they are freed. Measured on the
//! 50-model Zipf run (`benches/evals/zipf_models.py`): 160 MB at the end of the
//! run, 102 MB after one `malloc_trim(0)`, below the 111 MB with every model made.
//! [`spawn_trims`] trims at most once a second, after unloads.
//!
//! It also caps glibc's arenas at one per core ([`limit_arenas`]): the same run
//! peaked at 124 MB with two arenas against 159 MB with glibc's default.
//!
//! kiln's only `unsafe` calls are here, both to glibc: `malloc_trim` and
//! `mallopt` take no pointer, and glibc serialises them with every other
//! allocator call. Elsewhere than glibc they do nothing.

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

/// Caps glibc's malloc arenas at one per core (glibc's own cap is eight per
/// core). Each model's manager thread loads its versions; with an arena per
/// thread, the freed weights of many models are spread over arenas that each
/// keep their own free pages. Called once, before the runtime starts; whether
/// glibc took it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_arenas(cores: usize) -> bool {
    /// glibc's `M_ARENA_MAX`.
    const M_ARENA_MAX: i32 = -8;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    let cores = i32::try_from(cores.max(1)).unwrap_or(i32::MAX);
    // SAFETY: mallopt takes two integers and no pointer; glibc serialises it
    // with every other allocator call.
    unsafe { mallopt(M_ARENA_MAX, cores) == 1 }
}

/// Not glibc: nothing to cap.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas(_cores: usize) -> bool {
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
