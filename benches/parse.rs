//! Body parsing by instance shape: values/s of kiln's parsers (`/predict`'s body
//! through [`kiln::api::parse_json`], the path every request takes, and OIP v2's
//! `data`) against plain `serde_json` into nested `Vec`s of `f32` on the same bytes.
//!
//! Shapes: flat (`[1000]`, the seed MLP), 2-D (`[28, 28]`) and 3-D (`[1, 28, 28]`),
//! one and 32 instances per body. The reference for flat bodies is `Vec<Vec<f32>>`;
//! for nested ones, `Vec`s of the same depth (`serde_json` has no other way to read
//! them), and `Vec<Vec<f32>>` on a flat body of the same values.
//!
//! `cargo bench --bench parse`: criterion's figures, then a table of kiln / serde_json
//! from interleaved rounds in one run (the goal: at least 1.0, i.e. no more time per
//! value than serde_json). `KILN_BENCH_SECS` (default 2) is the table's time per cell.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;

#[derive(Deserialize)]
struct Flat {
    #[allow(dead_code)]
    instances: Vec<Vec<f32>>,
}
#[derive(Deserialize)]
struct TwoD {
    #[allow(dead_code)]
    instances: Vec<Vec<Vec<f32>>>,
}
#[derive(Deserialize)]
struct ThreeD {
    #[allow(dead_code)]
    instances: Vec<Vec<Vec<Vec<f32>>>>,
}

/// One JSON number per value, written as clients do (`0.123457`-like, some integers).
fn value(i: usize) -> serde_json::Value {
    if i.is_multiple_of(7) {
        serde_json::json!((i % 13) as i64 - 6)
    } else {
        serde_json::json!((((i * 7919) % 10007) as f64 / 10007.0 * 2.0 - 1.0) as f32)
    }
}

/// `n` instances of `shape`, nested as sent.
fn instances(n: usize, shape: &[usize]) -> serde_json::Value {
    fn nest(shape: &[usize], next: &mut usize) -> serde_json::Value {
        match shape {
            [] => {
                *next += 1;
                value(*next)
            }
            [d, rest @ ..] => (0..*d).map(|_| nest(rest, next)).collect(),
        }
    }
    let mut next = 0;
    (0..n).map(|_| nest(shape, &mut next)).collect()
}

struct Case {
    name: String,
    values: usize,
    /// The `/predict` body.
    body: Vec<u8>,
    /// The same values as a flat `/predict` body (one row per instance).
    flat: Vec<u8>,
    /// serde_json's reading of `body` into nested `Vec`s.
    reference: fn(&[u8]),
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for n in [1usize, 32] {
        for shape in [&[1000][..], &[28, 28], &[1, 28, 28]] {
            let width: usize = shape.iter().product();
            let body =
                serde_json::to_vec(&serde_json::json!({"instances": instances(n, shape)})).unwrap();
            let flat =
                serde_json::to_vec(&serde_json::json!({"instances": instances(n, &[width])}))
                    .unwrap();
            let reference: fn(&[u8]) = match shape.len() {
                1 => |b| {
                    black_box(serde_json::from_slice::<Flat>(b).unwrap());
                },
                2 => |b| {
                    black_box(serde_json::from_slice::<TwoD>(b).unwrap());
                },
                _ => |b| {
                    black_box(serde_json::from_slice::<ThreeD>(b).unwrap());
                },
            };
            out.push(Case {
                name: format!("{n}x{shape:?}"),
                values: n * width,
                body,
                flat,
                reference,
            });
        }
    }
    out
}

fn kiln_predict(b: &[u8]) {
    black_box(kiln::api::parse_json::<kiln::api::PredictRequest>(b).unwrap());
}

/// OIP v2's `data` reader on the same bytes (the field named as in `/predict`).
fn kiln_v2(b: &[u8]) {
    #[derive(Deserialize)]
    struct Input {
        #[allow(dead_code)]
        #[serde(rename = "instances")]
        data: kiln::api::v2::tensor::FlatData,
    }
    black_box(serde_json::from_slice::<Input>(b).unwrap());
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for case in cases() {
        group.throughput(Throughput::Elements(case.values as u64));
        group.bench_with_input(BenchmarkId::new("kiln", &case.name), &case, |b, c| {
            b.iter(|| kiln_predict(&c.body))
        });
        group.bench_with_input(BenchmarkId::new("serde_json", &case.name), &case, |b, c| {
            b.iter(|| (c.reference)(&c.body))
        });
    }
    group.finish();
}

/// Values per second of `f` on `bytes`, for about `secs`.
fn rate(f: &dyn Fn(&[u8]), bytes: &[u8], values: usize, secs: Duration) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < secs {
        f(bytes);
        n += 1;
    }
    (n * values as u64) as f64 / started.elapsed().as_secs_f64()
}

/// Interleaved rounds, best of three per cell: kiln and serde_json side by side.
fn table() {
    let secs: f64 = std::env::var("KILN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let cell = Duration::from_secs_f64(secs / 3.0);
    println!(
        "\n| instances x shape | kiln /predict (Mvalues/s) | serde_json nested Vec | kiln / serde_json | serde_json Vec<Vec<f32>> on the flat body | kiln / that | kiln OIP v2 `data` | v2 / serde_json nested |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for case in cases() {
        let (mut k, mut s, mut f, mut v) = (0f64, 0f64, 0f64, 0f64);
        for _ in 0..3 {
            k = k.max(rate(&kiln_predict, &case.body, case.values, cell));
            s = s.max(rate(&case.reference, &case.body, case.values, cell));
            f = f.max(rate(
                &|b: &[u8]| {
                    black_box(serde_json::from_slice::<Flat>(b).unwrap());
                },
                &case.flat,
                case.values,
                cell,
            ));
            v = v.max(rate(&kiln_v2, &case.body, case.values, cell));
        }
        println!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} |",
            case.name,
            k / 1e6,
            s / 1e6,
            k / s,
            f / 1e6,
            k / f,
            v / 1e6,
            v / s
        );
    }
}

fn all(c: &mut Criterion) {
    parse(c);
    table();
}

criterion_group!(benches, all);
criterion_main!(benches);
