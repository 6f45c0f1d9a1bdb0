//! The compute ceiling: in-process forward passes of the seed MLP (1000-500-100-1)
//! through `LoadedModel::forward` (the executor's own call), at several batch sizes.
//!
//! `cargo bench --bench forward`; throughput is reported in rows (elements) per second.

use std::hint::black_box;
use std::path::Path;

use burn::prelude::Device;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln::model::{LoadedModel, NetConfig, import};

fn seed_mlp() -> LoadedModel {
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
    LoadedModel::new("bench", manifest, net, device)
}

fn forward(c: &mut Criterion) {
    let model = seed_mlp();
    model.warm_up(256);
    let mut group = c.benchmark_group("seed_mlp_forward");
    for batch in [1usize, 16, 64, 256] {
        let rows: Vec<f32> = (0..batch * 1000)
            .map(|i| ((i % 97) as f32) / 97.0)
            .collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &n| {
            b.iter(|| black_box(model.forward(rows.clone(), n)))
        });
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
