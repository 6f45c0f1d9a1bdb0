//! Replica start time: `kiln serve` from spawn to `/health/ready` answering 200,
//! on a directory store and on a bucket (moto's S3 server on loopback) holding the
//! seed MLP, with the weight cache warm and cold. The bar (issue 12): a start from
//! a bucket with the cache warm takes under 2x the start from a directory.
//!
//! `cargo bench --bench startup` (env: `KILN_BENCH_STARTS`, default 7 per case;
//! the median is reported, with the peak RSS of the last start).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::s3::Backing;

fn main() {
    let starts: usize = std::env::var("KILN_BENCH_STARTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(starts));
}

/// Median start time and the last start's peak RSS (KiB), over `n` starts.
async fn measure(backing: &Backing, n: usize, before_each: impl Fn()) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..n {
        before_each();
        let started = Instant::now();
        let p = backing
            .serve(&[("KILN_STORE__POLL_INTERVAL_MS", "0")])
            .await;
        times.push(started.elapsed());
        rss = peak_rss_kib(p.child.id());
    }
    times.sort();
    (times[n / 2], rss)
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run(n: usize) {
    let dir = Backing::dir();
    let version = common::import_seed_mlp(&dir.location);
    let bucket = Backing::s3().await;
    let out = bucket
        .kiln(&["store", "migrate", "--from"])
        .arg(&dir.location)
        .arg("--to")
        .arg(&bucket.location)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("replica start, spawn to ready, seed MLP {version} ({n} starts each, median):");
    let (fs, fs_rss) = measure(&dir, n, || {}).await;
    let cache = bucket.cache_dir();
    let clear = || {
        let _ = std::fs::remove_dir_all(&cache);
    };
    let (cold, cold_rss) = measure(&bucket, n, clear).await;
    bucket.serve(&[]).await; // fills the cache
    let (warm, warm_rss) = measure(&bucket, n, || {}).await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| store | start (ms) | vs directory | peak RSS (MiB) |");
    println!("|---|---|---|---|");
    for (name, t, rss) in [
        ("directory", fs, fs_rss),
        ("bucket, cache cold", cold, cold_rss),
        ("bucket, cache warm", warm, warm_rss),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.1} |",
            ms(t),
            ms(t) / ms(fs),
            rss as f64 / 1024.0
        );
    }
    println!(
        "target: bucket with a warm cache under 2x the directory: {}",
        if ms(warm) < 2.0 * ms(fs) {
            "met"
        } else {
            "NOT met"
        }
    );
}
