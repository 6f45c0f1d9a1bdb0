//! The compute ceiling: forward passes of the seed MLP (1000-500-100-1) through the
//! executor's own call ([`ComputePool::forward`]), by batch size and compute threads,
//! next to ONNX Runtime on the same weights and the same cores.
//!
//! `cargo bench --bench forward`: criterion's figures (rows per second as elements),
//! then a table from interleaved rounds in one run: kiln and ONNX Runtime
//! (`benches/peers/onnx_forward.py`, in a venv made once under the target dir) at
//! batch 1, 64 and 256 on 1 and 2 threads, and kiln / ONNX Runtime. The goal
//! (issue 18): at batch 64 at least 0.8. `KILN_BENCH_SECS` (default 2) is the time
//! per cell and round.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::Device;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln::compute::ComputePool;
use kiln::model::{LoadedModel, NetConfig, import};

fn seed_mlp() -> Arc<LoadedModel> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = NetConfig::from_file(&root.join("config/models/seed-mlp.toml")).unwrap();
    let device = Device::flex();
    let (manifest, net) = import::import(
        &root.join("tests/data/seed_mlp.safetensors"),
        &cfg,
        "bench",
        &device,
    )
    .unwrap();
    Arc::new(LoadedModel::new("bench", manifest, net, device))
}

fn input(batch: usize) -> Vec<f32> {
    (0..batch * 1000)
        .map(|i| ((i % 97) as f32) / 97.0)
        .collect()
}

fn forward(c: &mut Criterion) {
    let model = seed_mlp();
    model.warm_up(256);
    let mut group = c.benchmark_group("seed_mlp_forward");
    for threads in [1usize, 2] {
        let pool = ComputePool::new(threads).unwrap();
        for batch in [1usize, 16, 64, 256] {
            let rows = input(batch);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{threads}t"), batch),
                &batch,
                // The executor's loop runs on the first compute thread: so does this.
                |b, &n| {
                    pool.install(|| b.iter(|| black_box(pool.forward(&model, rows.clone(), n))))
                },
            );
        }
    }
    group.finish();
    table(&model);
}

/// Rows per second of kiln's forward at `batch` on `pool`, for `secs`.
fn kiln_rate(pool: &ComputePool, model: &Arc<LoadedModel>, batch: usize, secs: Duration) -> f64 {
    let rows = input(batch);
    pool.install(|| {
        for _ in 0..5 {
            black_box(pool.forward(model, rows.clone(), batch));
        }
        let started = Instant::now();
        let mut passes = 0u64;
        while started.elapsed() < secs {
            black_box(pool.forward(model, rows.clone(), batch));
            passes += 1;
        }
        (passes * batch as u64) as f64 / started.elapsed().as_secs_f64()
    })
}

/// ONNX Runtime's rows per second by (threads, batch), or why there are none.
fn onnx_rates(
    batches: &[usize],
    threads: &[usize],
    secs: Duration,
) -> Result<Vec<(usize, usize, f64)>, String> {
    let python = std::panic::catch_unwind(|| {
        common::python_env(
            "onnx-peer",
            &[
                "onnxruntime==1.32.0",
                "onnx==1.23.2",
                "numpy",
                "safetensors",
            ],
        )
    })
    .map_err(|_| "could not install onnxruntime into a venv".to_string())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let join = |v: &[usize]| {
        v.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let out = std::process::Command::new(python)
        .arg(root.join("benches/peers/onnx_forward.py"))
        .arg(root.join("tests/data/seed_mlp.safetensors"))
        .arg(root.join("tests/data/seed_mlp.reference.json"))
        .arg(secs.as_secs_f64().to_string())
        .arg(join(batches))
        .arg(join(threads))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["threads"].as_u64().unwrap() as usize,
                v["batch"].as_u64().unwrap() as usize,
                v["rows_per_s"].as_f64().unwrap(),
            )
        })
        .collect())
}

/// kiln against ONNX Runtime, interleaved rounds, best of each.
fn table(model: &Arc<LoadedModel>) {
    let secs = Duration::from_secs_f64(
        std::env::var("KILN_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    );
    let (batches, threads) = ([1usize, 64, 256], [1usize, 2]);
    let mut kiln = vec![0f64; batches.len() * threads.len()];
    let mut onnx = kiln.clone();
    let mut skipped = None;
    for _round in 0..2 {
        for (ti, &t) in threads.iter().enumerate() {
            let pool = ComputePool::new(t).unwrap();
            for (bi, &b) in batches.iter().enumerate() {
                let cell = &mut kiln[ti * batches.len() + bi];
                *cell = cell.max(kiln_rate(&pool, model, b, secs));
            }
        }
        match onnx_rates(&batches, &threads, secs) {
            Ok(rates) => {
                for (t, b, r) in rates {
                    let ti = threads.iter().position(|&x| x == t).unwrap();
                    let bi = batches.iter().position(|&x| x == b).unwrap();
                    let cell = &mut onnx[ti * batches.len() + bi];
                    *cell = cell.max(r);
                }
            }
            Err(e) => skipped = Some(e),
        }
    }
    println!("\n| threads | batch | kiln rows/s | ONNX Runtime rows/s | kiln / ORT |");
    println!("|---|---|---|---|---|");
    for (ti, t) in threads.iter().enumerate() {
        for (bi, b) in batches.iter().enumerate() {
            let (k, o) = (kiln[ti * batches.len() + bi], onnx[ti * batches.len() + bi]);
            let ratio = if o > 0.0 {
                format!("{:.2}", k / o)
            } else {
                "-".into()
            };
            println!("| {t} | {b} | {k:.0} | {o:.0} | {ratio} |");
        }
    }
    if let Some(e) = skipped {
        println!(
            "ONNX Runtime peer skipped: {}",
            e.lines().last().unwrap_or("")
        );
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);
