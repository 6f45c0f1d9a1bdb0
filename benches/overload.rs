//! Request deadlines under overload, and shape buckets on a GPU backend.
//!
//! `deadline` (default): the ab_order LSTM served with batching off (a model slow
//! enough that one load generator on the same 2 cores can overload it). Capacity is
//! measured closed-loop at c=64; then an open-loop load offers 4x that rate for
//! `KILN_BENCH_SECS` (default 10) with `x-kiln-timeout-ms: 50`, and again with no
//! deadline of its own (the 30 s default). Reports 200/504/429 counts and the p50/p99
//! of the 200s. The target (issue 9): the p99 of the 200s under the 50 ms deadline.
//!
//! `KILN_BENCH_ONLY=autotune` (a `--features wgpu` build with a Vulkan adapter):
//! a fresh wgpu server (empty autotune cache) under c=64 load for its first 10 s,
//! with shape buckets off (passes at their exact size, tuned on first use) and on
//! (padded to powers of two, every bucket tuned before ready); p99 and the slowest
//! answer of each, and the time to ready of a restart that finds the cache.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::Device;
use kiln::model::NetConfig;
use tokio::sync::Semaphore;

fn main() {
    let secs: u64 = std::env::var("KILN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match std::env::var("KILN_BENCH_ONLY").as_deref() {
        Ok("autotune") => runtime.block_on(autotune(Duration::from_secs(secs))),
        _ => runtime.block_on(deadline(Duration::from_secs(secs))),
    }
}

/// A store whose active version is `config/models/{name}` with random weights;
/// returns the directory and one instance's JSON body.
fn store_with(name: &str) -> (tempfile::TempDir, Arc<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/models");
    let cfg = NetConfig::named(&models, name).unwrap();
    let net = cfg.init_default(&Device::flex());
    let store = kiln::registry::Store::open(dir.path()).unwrap();
    let version = store
        .create_version(&kiln::model::Manifest::new(cfg.clone(), "bench"), &net)
        .unwrap();
    store.set_active(&version).unwrap();
    let instance: Vec<f32> = (0..cfg.input_width()).map(|i| (i % 2) as f32).collect();
    let body = serde_json::to_vec(&serde_json::json!({"instances": [instance]})).unwrap();
    (dir, Arc::new(body))
}

/// Outcome counts and latencies (ms) of the 200s.
#[derive(Default)]
struct Tally {
    ok: Vec<f64>,
    timeout: usize,
    full: usize,
    other: usize,
}

impl Tally {
    fn pct(&mut self, p: f64) -> f64 {
        self.ok.sort_by(f64::total_cmp);
        let i = ((self.ok.len() as f64 * p) as usize).min(self.ok.len().saturating_sub(1));
        self.ok.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// Closed loop: `c` clients back to back for `duration`.
async fn closed(url: &str, body: &Arc<Vec<u8>>, c: usize, duration: Duration) -> Tally {
    let started = Instant::now();
    let tasks: Vec<_> = (0..c)
        .map(|_| {
            let (url, body) = (url.to_string(), body.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut t = Tally::default();
                while started.elapsed() < duration {
                    let sent = Instant::now();
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_ref().clone())
                        .send()
                        .await;
                    count(&mut t, r, sent).await;
                }
                t
            })
        })
        .collect();
    merge(tasks).await
}

/// Open loop: `rate` requests/s for `duration` whatever the answers do (at most
/// 4096 in flight), each with `timeout_ms` if given.
async fn open(
    url: &str,
    body: &Arc<Vec<u8>>,
    rate: f64,
    timeout_ms: Option<u64>,
    duration: Duration,
) -> Tally {
    let client = reqwest::Client::new();
    let inflight = Arc::new(Semaphore::new(4096));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    while started.elapsed() < duration {
        tick.tick().await;
        let Ok(permit) = inflight.clone().try_acquire_owned() else {
            continue;
        };
        let (client, url, body) = (client.clone(), url.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut req = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.as_ref().clone());
            if let Some(ms) = timeout_ms {
                req = req.header("x-kiln-timeout-ms", ms.to_string());
            }
            let mut t = Tally::default();
            let sent = Instant::now();
            count(&mut t, req.send().await, sent).await;
            drop(permit);
            t
        }));
    }
    merge(tasks).await
}

async fn count(t: &mut Tally, r: reqwest::Result<reqwest::Response>, sent: Instant) {
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let whole = r.bytes().await.is_ok();
            match status {
                200 if whole => t.ok.push(sent.elapsed().as_secs_f64() * 1000.0),
                504 => t.timeout += 1,
                429 => t.full += 1,
                _ => t.other += 1,
            }
        }
        Err(_) => t.other += 1,
    }
}

async fn merge(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.unwrap();
        all.ok.extend(t.ok);
        all.timeout += t.timeout;
        all.full += t.full;
        all.other += t.other;
    }
    all
}

async fn deadline(duration: Duration) {
    let (dir, body) = store_with("ab-order-lstm");
    let proc = common::Process::serve(
        dir.path(),
        &[
            ("KILN_BATCHING__MAX_BATCH_SIZE", "1"),
            ("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info"),
        ],
    )
    .await;
    let url = proc.url("/predict");
    let secs = duration.as_secs_f64();
    let capacity = closed(&url, &body, 64, Duration::from_secs(3))
        .await
        .ok
        .len() as f64
        / 3.0;
    println!("capacity (closed loop, c=64, batching off): {capacity:.0} req/s");
    println!("| offered | deadline | 200 | 504 | 429 | other | 200s p50 ms | 200s p99 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, timeout) in [("50 ms", Some(50)), ("none (30 s default)", None)] {
        let mut t = open(&url, &body, 4.0 * capacity, timeout, duration).await;
        let (p50, p99) = (t.pct(0.5), t.pct(0.99));
        println!(
            "| {:.0} req/s (4x) | {name} | {} | {} | {} | {} | {:.1} | {:.1} |",
            4.0 * capacity,
            t.ok.len(),
            t.timeout,
            t.full,
            t.other,
            p50,
            p99
        );
        if timeout.is_some() {
            println!(
                "served {:.0} req/s within the deadline; p99 of the 200s {p99:.1} ms (target < 50)",
                t.ok.len() as f64 / secs,
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // let the queue drain
    }
    let m = reqwest::get(proc.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    println!(
        "kiln_rejected_total{{reason=\"deadline\"}} = {}",
        common::sample(&m, "kiln_rejected_total{reason=\"deadline\"}")
    );
}

async fn autotune(duration: Duration) {
    let (dir, body) = store_with("seed-mlp");
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_string();
    for (name, buckets) in [("shape buckets off", "false"), ("shape buckets on", "true")] {
        // A fresh, empty cache for each.
        let _ = std::fs::remove_dir_all(&cache_dir);
        let env = [
            ("KILN_MODEL__BACKEND", "wgpu"),
            ("KILN_MODEL__AUTOTUNE_CACHE_DIR", cache_dir.as_str()),
            ("KILN_BATCHING__SHAPE_BUCKETS", buckets),
            ("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info"),
        ];
        let started = Instant::now();
        let proc = common::Process::serve(dir.path(), &env).await;
        let ready = started.elapsed();
        let mut t = closed(&proc.url("/predict"), &body, 64, duration).await;
        let slowest = t.ok.iter().copied().fold(0.0, f64::max);
        println!(
            "{name}: ready after {:.1} s; first {} s at c=64: {} answers, p50 {:.1} ms, p99 {:.1} ms, slowest {slowest:.0} ms, errors {}",
            ready.as_secs_f64(),
            duration.as_secs(),
            t.ok.len(),
            t.pct(0.5),
            t.pct(0.99),
            t.timeout + t.full + t.other
        );
        drop(proc);
    }
    // A restart that finds the cache of the last run.
    let started = Instant::now();
    let proc = common::Process::serve(
        dir.path(),
        &[
            ("KILN_MODEL__BACKEND", "wgpu"),
            ("KILN_MODEL__AUTOTUNE_CACHE_DIR", cache_dir.as_str()),
            ("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info"),
        ],
    )
    .await;
    println!(
        "restart with the autotune cache: ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(proc);
}
