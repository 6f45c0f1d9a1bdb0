//! HTTP load bench: requests/s and p50/p99 of `POST /predict` on the seed MLP
//! (1000-500-100-1, one instance per request) at concurrency 1, 16 and 64, with
//! batching on and off, against two ceilings measured in the same run:
//! - `compute`: in-process forward passes at batch 64 (rows/s);
//! - `http`: a bench-only axum server (a child process) that parses the same body
//!   with plain `serde_json` into `Vec<Vec<f32>>` and answers a constant (no kiln
//!   code: a ceiling that shares kiln's parser cannot see it slow down).
//!
//! The target (issue 9): at c=64, served >= 0.85 x 1 / (1/http + 1/compute), p99 <=
//! 5 ms. `KILN_BENCH_BASELINE_BIN=path/to/kiln` also serves another build at c=64
//! (e.g. the previous commit's) for a before/after from the same run.
//!
//! It then serves the other architectures the same way (one instance per request,
//! c=1 and c=64, batching on and off): the digits CNN, the ab_order LSTM and
//! Transformer encoder of `config/models/`, next to the seed MLP, with the
//! mean batch size formed; the target (issue 8) is a CNN batched at c=64 serving at
//! least 2x its unbatched throughput.
//!
//! `cargo bench --bench load` (env: `KILN_BENCH_SECS`, default 5 per scenario;
//! `KILN_BENCH_ONLY=training`, `=protocol`, `=architectures`, `=monitoring` (the
//! prediction log's cost) or `=serving` (only the c=64 ratio to the limit) runs
//! only that part).
//! kiln runs as the real release binary in its own process, with its peak RSS
//! (VmHWM) reported; the load generator shares the machine's cores, as it would on a
//! 2-core box.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use burn::prelude::Device;
use kiln::model::{LoadedModel, NetConfig, import};

const ROLE: &str = "KILN_BENCH_ROLE";

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("http-ceiling") {
        return http_ceiling_server();
    }
    let secs: u64 = std::env::var("KILN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(Duration::from_secs(secs)));
}

/// One measured scenario.
struct Row {
    target: String,
    concurrency: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    mean_batch: Option<f64>,
}

async fn run(duration: Duration) {
    // The servers inherit this process's environment.
    println!(
        "access log: {} (telemetry.access_log; set KILN_TELEMETRY__ACCESS_LOG=false to measure without it)",
        std::env::var("KILN_TELEMETRY__ACCESS_LOG").unwrap_or_else(|_| "on, the default".into())
    );
    let body = Arc::new(
        serde_json::to_vec(&serde_json::json!({
            "instances": [(0..1000).map(|i| ((i % 97) as f32) / 97.0).collect::<Vec<f32>>()]
        }))
        .unwrap(),
    );
    if std::env::var("KILN_BENCH_ONLY").as_deref() == Ok("protocol") {
        let dir = tempfile::tempdir().unwrap();
        common::import_seed_mlp(dir.path());
        let p = protocol_overhead(dir.path(), duration, &mut Vec::new()).await;
        println!(
            "c=16 OIP v2 / predict: {:.2} ({:.0} vs {:.0} req/s)",
            p.v2 / p.predict,
            p.v2,
            p.predict
        );
        return;
    }
    if std::env::var("KILN_BENCH_ONLY").as_deref() == Ok("serving") {
        return serving_limit(&body, duration).await;
    }
    if std::env::var("KILN_BENCH_ONLY").as_deref() == Ok("architectures") {
        let rows = architectures(duration).await;
        print_rows(&rows);
        report_architectures(&rows);
        return;
    }
    if std::env::var("KILN_BENCH_ONLY").as_deref() == Ok("monitoring") {
        monitoring_cost(&body, duration).await;
        return;
    }
    if std::env::var("KILN_BENCH_ONLY").as_deref() == Ok("training") {
        let dir = tempfile::tempdir().unwrap();
        common::import_seed_mlp(dir.path());
        let t = training_isolation(dir.path(), &body, duration, &mut Vec::new()).await;
        println!(
            "training {:.0} samples/s; c=16 p99 with / without: {:.2} ({:.2} / {:.2} ms)",
            t.samples_per_second,
            t.p99_with / t.p99_without,
            t.p99_with,
            t.p99_without
        );
        report_out_of_memory(&t);
        return;
    }
    let compute = compute_ceiling(64, Duration::from_secs(3));
    println!("compute ceiling (in-process forward, batch 64): {compute:.0} rows/s");

    let mut rows = Vec::new();
    // HTTP ceiling.
    {
        let (mut child, base) = spawn_http_ceiling();
        for c in [1, 16, 64] {
            rows.push(
                load(
                    &format!("{}/predict", base),
                    "http-ceiling",
                    c,
                    &body,
                    duration,
                    None,
                )
                .await,
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    // kiln, batching on and off.
    let dir = tempfile::tempdir().unwrap();
    common::import_seed_mlp(dir.path());
    let mut rss = Vec::new();
    for (name, env) in [
        ("kiln batching on", vec![]),
        (
            "kiln batching off",
            vec![("KILN_BATCHING__MAX_BATCH_SIZE", "1")],
        ),
    ] {
        let mut env = env;
        env.push(("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info"));
        let proc = common::Process::serve(dir.path(), &env).await;
        for c in [1, 16, 64] {
            rows.push(
                load(
                    &format!("{}/predict", proc.base),
                    name,
                    c,
                    &body,
                    duration,
                    Some(&proc.base),
                )
                .await,
            );
        }
        rss.push((name, peak_rss_kib(proc.child.id())));
    }
    // The same at c=64 with a baseline build (e.g. the previous commit), for a
    // before/after from one run.
    let baseline = std::env::var("KILN_BENCH_BASELINE_BIN").ok();
    if let Some(bin) = &baseline {
        let env = [("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info")];
        let proc = common::Process::serve_bin(Path::new(bin), dir.path(), &env).await;
        rows.push(
            load(
                &format!("{}/predict", proc.base),
                "baseline batching on",
                64,
                &body,
                duration,
                Some(&proc.base),
            )
            .await,
        );
    }
    let protocol = protocol_overhead(dir.path(), duration, &mut rows).await;
    let training = training_isolation(dir.path(), &body, duration, &mut rows).await;
    let architecture_rows = architectures(duration).await;
    rows.extend(architecture_rows);

    print_rows(&rows);
    report_architectures(&rows);
    for (name, kib) in rss {
        println!("peak RSS {name}: {:.1} MiB", kib as f64 / 1024.0);
    }
    println!(
        "seed recipe training (1000-500-100-1, Adam, MSE, batch 32, synthetic 2000 x 1000): {:.0} samples/s while serving",
        training.samples_per_second
    );
    println!(
        "c=16 p99 with training / without: {:.2} ({:.2} ms / {:.2} ms; target <= 2)",
        training.p99_with / training.p99_without,
        training.p99_with,
        training.p99_without
    );
    report_out_of_memory(&training);
    println!(
        "c=16 throughput, OIP v2 /infer vs /predict on one server: {:.2} ({:.0} vs {:.0} req/s; target >= 0.9)",
        protocol.v2 / protocol.predict,
        protocol.v2,
        protocol.predict
    );
    let http64 = rows
        .iter()
        .find(|r| r.target == "http-ceiling" && r.concurrency == 64)
        .unwrap()
        .rps;
    let served = rows
        .iter()
        .find(|r| r.target == "kiln batching on" && r.concurrency == 64)
        .unwrap();
    let limit = 1.0 / (1.0 / http64 + 1.0 / compute);
    println!();
    println!(
        "c=64: served {:.0} req/s; limit 1/(1/{http64:.0} + 1/{compute:.0}) = {limit:.0}; ratio {:.2} (target >= 0.6)",
        served.rps,
        served.rps / limit
    );
    if let Some(before) = rows
        .iter()
        .find(|r| r.target == "baseline batching on" && r.concurrency == 64)
    {
        println!(
            "c=64 before (baseline build): {:.0} req/s, ratio {:.2}, p99 {:.2} ms; after: {:.0} req/s, ratio {:.2}, p99 {:.2} ms (target >= 0.85, p99 <= 5 ms)",
            before.rps,
            before.rps / limit,
            before.p99_ms,
            served.rps,
            served.rps / limit,
            served.p99_ms
        );
    }
    if let Some(b) = served.mean_batch {
        let at_formed = compute_ceiling(b.round().max(1.0) as usize, Duration::from_secs(2));
        println!(
            "served / compute ceiling at the batch size formed ({b:.1} rows): {:.2} ({at_formed:.0} rows/s in-process)",
            served.rps / at_formed
        );
    }
}

/// Only the c=64 figures against the limit: compute ceiling, HTTP ceiling, kiln, and
/// the baseline build when `KILN_BENCH_BASELINE_BIN` names one, interleaved.
async fn serving_limit(body: &Arc<Vec<u8>>, duration: Duration) {
    let compute = compute_ceiling(64, Duration::from_secs(3));
    let (mut child, base) = spawn_http_ceiling();
    let http = load(
        &format!("{base}/predict"),
        "http-ceiling",
        64,
        body,
        duration,
        None,
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let limit = 1.0 / (1.0 / http.rps + 1.0 / compute);
    println!(
        "c=64 limit 1/(1/{:.0} + 1/{compute:.0}) = {limit:.0} req/s",
        http.rps
    );
    let dir = tempfile::tempdir().unwrap();
    common::import_seed_mlp(dir.path());
    let mut bins = vec![(
        "after (this build)",
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_kiln")),
    )];
    if let Ok(bin) = std::env::var("KILN_BENCH_BASELINE_BIN") {
        bins.insert(0, ("before (baseline build)", bin.into()));
    }
    // A baseline build reads its own config file (`KILN_BENCH_BASELINE_CONFIG`): an
    // older kiln refuses keys it does not know.
    let baseline_config = std::env::var("KILN_BENCH_BASELINE_CONFIG").unwrap_or_default();
    for (name, bin) in bins {
        let mut env = vec![("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info")];
        if name.starts_with("before") && !baseline_config.is_empty() {
            env.push(("KILN_CONFIG", baseline_config.as_str()));
        }
        let proc = common::Process::serve_bin(&bin, dir.path(), &env).await;
        let r = load(
            &format!("{}/predict", proc.base),
            name,
            64,
            body,
            duration,
            Some(&proc.base),
        )
        .await;
        println!(
            "{name}: {:.0} req/s, ratio to the limit {:.2}, p50 {:.2} ms, p99 {:.2} ms, {:.1} rows/batch, peak RSS {:.1} MiB",
            r.rps,
            r.rps / limit,
            r.p50_ms,
            r.p99_ms,
            r.mean_batch.unwrap_or(0.0),
            peak_rss_kib(proc.child.id()) as f64 / 1024.0
        );
    }
}

fn print_rows(rows: &[Row]) {
    println!();
    println!("| target | concurrency | requests/s | p50 ms | p99 ms | errors | rows/batch |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.target,
            r.concurrency,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.mean_batch.map_or("-".into(), |b| format!("{b:.1}"))
        );
    }
}

/// The model configs served by [`architectures`], with one instance's width.
const ARCHITECTURES: [(&str, &str); 4] = [
    ("seed MLP", "seed-mlp"),
    ("digits CNN", "digits-cnn"),
    ("ab_order LSTM", "ab-order-lstm"),
    ("ab_order Transformer", "ab-order-transformer"),
];

/// Each architecture of `config/models/` (random weights: the cost is the same)
/// served with batching on and off at c=1 and c=64, one instance per request.
async fn architectures(duration: Duration) -> Vec<Row> {
    let mut rows = Vec::new();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/models");
    for (name, file) in ARCHITECTURES {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NetConfig::named(&models, file).unwrap();
        let device = Device::flex();
        let net = cfg.init_default(&device);
        let store = kiln::registry::Store::open(dir.path()).unwrap();
        let version = store
            .create_version(&kiln::model::Manifest::new(cfg.clone(), "bench"), &net)
            .unwrap();
        store.set_active(&version).unwrap();
        let instance: Vec<f32> = (0..cfg.input_width()).map(|i| (i % 2) as f32).collect();
        let body =
            Arc::new(serde_json::to_vec(&serde_json::json!({"instances": [instance]})).unwrap());
        for (mode, env) in [
            ("batched", vec![]),
            ("unbatched", vec![("KILN_BATCHING__MAX_BATCH_SIZE", "1")]),
        ] {
            let mut env = env;
            env.push(("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info"));
            let proc = common::Process::serve(dir.path(), &env).await;
            for c in [1, 64] {
                rows.push(
                    load(
                        &format!("{}/predict", proc.base),
                        &format!("{name} {mode}"),
                        c,
                        &body,
                        duration,
                        Some(&proc.base),
                    )
                    .await,
                );
            }
            eprintln!(
                "peak RSS {name} {mode}: {:.1} MiB",
                peak_rss_kib(proc.child.id()) as f64 / 1024.0
            );
        }
    }
    rows
}

fn report_architectures(rows: &[Row]) {
    let rps = |target: String, c: usize| {
        rows.iter()
            .find(|r| r.target == target && r.concurrency == c)
            .map(|r| r.rps)
    };
    println!();
    for (name, _) in ARCHITECTURES {
        if let (Some(on), Some(off)) = (
            rps(format!("{name} batched"), 64),
            rps(format!("{name} unbatched"), 64),
        ) {
            println!(
                "{name}: c=64 batched / unbatched {:.2} ({on:.0} vs {off:.0} req/s){}",
                on / off,
                if name == "digits CNN" {
                    "; target >= 2"
                } else {
                    ""
                }
            );
        }
    }
}

struct Protocol {
    predict: f64,
    v2: f64,
}

/// The same rows through `/predict` and `/v2/models/kiln/infer` at c=16, on one
/// server, alternating (predict, v2, predict, v2) to spread the machine's noise.
async fn protocol_overhead(store: &Path, duration: Duration, rows: &mut Vec<Row>) -> Protocol {
    let proc =
        common::Process::serve(store, &[("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info")]).await;
    let features: Vec<f32> = (0..1000).map(|i| ((i % 97) as f32) / 97.0).collect();
    let predict_body =
        Arc::new(serde_json::to_vec(&serde_json::json!({"instances": [features]})).unwrap());
    let v2_body = Arc::new(
        serde_json::to_vec(&serde_json::json!({
            "inputs": [{"name": "input", "shape": [1, 1000], "datatype": "FP32", "data": features}]
        }))
        .unwrap(),
    );
    let (mut predict, mut v2) = (0.0, 0.0);
    for _ in 0..2 {
        let p = load(
            &format!("{}/predict", proc.base),
            "kiln /predict",
            16,
            &predict_body,
            duration,
            Some(&proc.base),
        )
        .await;
        let o = load(
            &format!("{}/v2/models/kiln/infer", proc.base),
            "kiln OIP v2 infer",
            16,
            &v2_body,
            duration,
            Some(&proc.base),
        )
        .await;
        predict += p.rps / 2.0;
        v2 += o.rps / 2.0;
        rows.push(p);
        rows.push(o);
    }
    Protocol { predict, v2 }
}

fn report_out_of_memory(t: &TrainingRun) {
    println!(
        "c=16 p99 with out-of-memory jobs / without: {:.2} ({:.2} ms / {:.2} ms; {} jobs, each failed \"out of memory\"; target <= 2)",
        t.p99_out_of_memory / t.p99_without,
        t.p99_out_of_memory,
        t.p99_without,
        t.out_of_memory_jobs
    );
}

struct TrainingRun {
    samples_per_second: f64,
    p99_without: f64,
    p99_with: f64,
    /// p99 while jobs that allocate past `training.max_memory_mb` run back to back.
    p99_out_of_memory: f64,
    /// How many of those jobs ran (each failed "out of memory").
    out_of_memory_jobs: usize,
}

/// `/predict` at c=16 without, then with, a seed-recipe training job running on
/// synthetic data in the same process; the job's own samples/s.
async fn training_isolation(
    store: &Path,
    body: &Arc<Vec<u8>>,
    duration: Duration,
    rows: &mut Vec<Row>,
) -> TrainingRun {
    let data_dir = tempfile::tempdir().unwrap();
    let mut rng = kiln::training::data::SplitMix64(3);
    let mut csv = (0..1000).map(|i| format!("x{i},")).collect::<String>() + "target\n";
    for _ in 0..2000 {
        let x: Vec<f32> = (0..1000)
            .map(|_| (rng.next_u64() % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let y: f32 = x.iter().take(50).sum::<f32>() / 10.0;
        csv += &x.iter().map(|v| format!("{v},")).collect::<String>();
        csv += &format!("{y}\n");
    }
    std::fs::write(data_dir.path().join("synthetic.csv"), csv).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/iris.csv"),
        data_dir.path().join("iris.csv"),
    )
    .unwrap();
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let models_dir = config_dir.join("models");
    let env = [
        ("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info"),
        ("KILN_TRAINING__DATA_DIR", data_dir.path().to_str().unwrap()),
        ("KILN_TRAINING__CONFIG_DIR", models_dir.to_str().unwrap()),
        // Room for the seed recipe, not for the out-of-memory jobs below (the
        // budget lets those through; the worker's address-space cap stops them).
        ("KILN_TRAINING__MAX_MEMORY_MB", "1024"),
        ("KILN_TRAINING__MAX_MODEL_MB", "100000"),
    ];
    let proc = common::Process::serve(store, &env).await;
    let without = load(
        &format!("{}/predict", proc.base),
        "kiln c=16, no training",
        16,
        body,
        duration,
        Some(&proc.base),
    )
    .await;
    let client = reqwest::Client::new();
    let recipe = std::fs::read_to_string(config_dir.join("seed-train.toml")).unwrap();
    let mut job: serde_json::Value =
        serde_json::to_value(toml::from_str::<toml::Value>(&recipe).unwrap()).unwrap();
    job["dataset"] = serde_json::json!({"path": "synthetic.csv"});
    job["promote"] = "never".into();
    let r = client
        .post(format!("{}/train", proc.base))
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job_url = format!("{}/train/{id}", proc.base);
    let j = common::poll_job(&client, &proc.base, &id, Duration::from_secs(60), |j| {
        j["epoch"].as_u64().unwrap_or(0) >= 1 || common::finished(j)
    })
    .await;
    assert_eq!(j["state"], "running", "{j}");
    let with = load(
        &format!("{}/predict", proc.base),
        "kiln c=16, training running",
        16,
        body,
        duration,
        Some(&proc.base),
    )
    .await;
    let j = common::get_json(&client, &job_url).await;
    assert_eq!(
        j["state"], "running",
        "the job must outlast the measurement"
    );
    let samples_per_second = j["samples_per_second"].as_f64().unwrap();
    client.delete(&job_url).send().await.unwrap();
    // Measure without training again: this machine's noise moves p99 between runs,
    // so the baseline is the mean of one run before and one after.
    let after = load(
        &format!("{}/predict", proc.base),
        "kiln c=16, no training (after)",
        16,
        body,
        duration,
        Some(&proc.base),
    )
    .await;
    let (out_of_memory, out_of_memory_jobs) =
        under_out_of_memory_jobs(&proc.base, body, duration).await;
    let run = TrainingRun {
        samples_per_second,
        p99_without: (without.p99_ms + after.p99_ms) / 2.0,
        p99_with: with.p99_ms,
        p99_out_of_memory: out_of_memory.p99_ms,
        out_of_memory_jobs,
    };
    rows.push(without);
    rows.push(with);
    rows.push(after);
    rows.push(out_of_memory);
    run
}

/// `/predict` at c=16 while jobs that allocate past the worker's memory cap (67M
/// parameters: 268 MB of weights, over 1 GB with gradients and Adam's state) run
/// one after another; each must fail "out of memory". Returns the load's row and
/// how many such jobs ran.
async fn under_out_of_memory_jobs(
    base: &str,
    body: &Arc<Vec<u8>>,
    duration: Duration,
) -> (Row, usize) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let submitter = tokio::spawn({
        let (base, stop) = (base.to_string(), stop.clone());
        async move {
            let client = reqwest::Client::new();
            let job = serde_json::json!({
                "dataset": {"path": "iris.csv"},
                "model": {"hidden": [8192, 8192]},
                "epochs": 2,
                "promote": "never",
            });
            let mut failed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client
                    .post(format!("{base}/train"))
                    .json(&job)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
                let id = r.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let j = common::poll_job(
                    &client,
                    &base,
                    &id,
                    Duration::from_secs(120),
                    common::finished,
                )
                .await;
                assert_eq!(j["state"], "failed", "{j}");
                let error = j["error"].as_str().unwrap_or_default();
                assert!(error.contains("out of memory"), "{j}");
                failed += 1;
            }
            failed
        }
    });
    let row = load(
        &format!("{base}/predict"),
        "kiln c=16, out-of-memory jobs",
        16,
        body,
        duration,
        Some(base),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (row, submitter.await.unwrap())
}

/// Rows/s of in-process forward passes at `batch`.
fn compute_ceiling(batch: usize, duration: Duration) -> f64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = NetConfig::from_file(&root.join("config/models/seed-mlp.toml")).unwrap();
    let device = Device::flex();
    let (manifest, net) = import::import(
        &common::data("seed_mlp.safetensors"),
        &cfg,
        "bench",
        &device,
    )
    .unwrap();
    let model = LoadedModel::new("bench", manifest, net, device);
    let input: Vec<f32> = (0..batch * 1000)
        .map(|i| ((i % 97) as f32) / 97.0)
        .collect();
    model.warm_up(batch);
    let started = Instant::now();
    let mut passes = 0u64;
    while started.elapsed() < duration {
        std::hint::black_box(model.forward(input.clone(), batch));
        passes += 1;
    }
    (passes * batch as u64) as f64 / started.elapsed().as_secs_f64()
}

/// Closed-loop load: `concurrency` clients, each on its own keep-alive connection.
async fn load(
    url: &str,
    target: &str,
    concurrency: usize,
    body: &Arc<Vec<u8>>,
    duration: Duration,
    metrics_of: Option<&str>,
) -> Row {
    let before = match metrics_of {
        Some(b) => Some(batch_stats(b).await),
        None => None,
    };
    let url = url.to_string();
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                while started.elapsed() < duration {
                    let t = Instant::now();
                    let ok = match client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_ref().clone())
                        .send()
                        .await
                    {
                        Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        lat.push(t.elapsed().as_micros() as u32);
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let mean_batch = match (before, metrics_of) {
        (Some((s0, c0)), Some(b)) => {
            let (s1, c1) = batch_stats(b).await;
            Some((s1 - s0) / (c1 - c0).max(1.0))
        }
        _ => None,
    };
    let row = Row {
        target: target.into(),
        concurrency,
        rps: lat.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        mean_batch,
    };
    eprintln!(
        "{target} c={concurrency}: {:.0} req/s p50 {:.2} ms p99 {:.2} ms",
        row.rps, row.p50_ms, row.p99_ms
    );
    row
}

async fn batch_stats(base: &str) -> (f64, f64) {
    let m = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (
        common::sample(&m, "kiln_batch_size_sum"),
        common::sample(&m, "kiln_batch_size_count"),
    )
}

/// Peak resident set (VmHWM, KiB) of a process.
fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` figure in KiB (`VmHWM:`, `VmRSS:`).
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Starts the HTTP ceiling as a child process; returns it and its base URL.
fn spawn_http_ceiling() -> (std::process::Child, String) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "http-ceiling")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (child, format!("http://{}", line.trim()))
}

/// The HTTP ceiling: a bare axum server that parses the same body with plain
/// `serde_json` into `Vec<Vec<f32>>` and answers a constant. It shares no code with
/// kiln's request path (the ceiling that once parsed through kiln's own parser could
/// not see that parser's slowdown).
fn http_ceiling_server() {
    #[derive(serde::Deserialize)]
    struct Body {
        instances: Vec<Vec<f32>>,
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/predict",
            axum::routing::post(|axum::Json(body): axum::Json<Body>| async move {
                let n: usize = body.instances.iter().map(Vec::len).sum();
                axum::Json(serde_json::json!({
                    "predictions": [n as f32 * 0.0],
                    "model_version": "ceiling"
                }))
                .into_response()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

/// The prediction log's cost (issue 11): `/predict` at c=64 with the log off and
/// with every request logged, on the default iris model (4 values per request)
/// and the seed MLP (1000), plus the seed MLP's throughput at lower sample rates;
/// then a long run logging `KILN_BENCH_LOG_ENTRIES` requests (default a million),
/// with the resident set after each quarter and the log's disk use against its
/// bound. `KILN_BENCH_ONLY=monitoring cargo bench --bench load`.
async fn monitoring_cost(seed_body: &Arc<Vec<u8>>, duration: Duration) {
    let iris_body = Arc::new(
        serde_json::to_vec(&serde_json::json!({"instances": [[5.1, 3.5, 1.4, 0.2]]})).unwrap(),
    );
    let serve = |seed: bool, rate: f64, max_log: u64| async move {
        let dir = tempfile::tempdir().unwrap();
        if seed {
            common::import_seed_mlp(dir.path());
        }
        let rate = rate.to_string();
        let max_log = max_log.to_string();
        let env = [
            ("KILN_TELEMETRY__LEVEL", "warn,kiln::app=info"),
            ("KILN_MONITORING__SAMPLE_RATE", rate.as_str()),
            ("KILN_MONITORING__MAX_LOG_BYTES", max_log.as_str()),
        ];
        let proc = common::Process::serve(dir.path(), &env).await;
        (proc, dir)
    };
    const MAX_LOG: u64 = 64 * 1024 * 1024;
    for (name, body, seed, rates) in [
        ("iris", &iris_body, false, &[0.0, 1.0][..]),
        ("seed MLP", seed_body, true, &[0.0, 1.0, 0.5, 0.25, 0.1][..]),
    ] {
        let mut off = 0.0;
        for rate in rates {
            let (proc, _dir) = serve(seed, *rate, MAX_LOG).await;
            let row = load(
                &format!("{}/predict", proc.base),
                &format!("{name} sample_rate={rate}"),
                64,
                body,
                duration,
                None,
            )
            .await;
            if *rate == 0.0 {
                off = row.rps;
            }
            println!(
                "{name} c=64 sample_rate={rate}: {:.0} req/s, {:.2} x logging off, p99 {:.2} ms, peak RSS {:.1} MiB",
                row.rps,
                row.rps / off.max(1e-9),
                row.p99_ms,
                peak_rss_kib(proc.child.id()) as f64 / 1024.0
            );
        }
    }
    let entries: f64 = std::env::var("KILN_BENCH_LOG_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1e6);
    let (proc, dir) = serve(false, 1.0, MAX_LOG).await;
    let pid = proc.child.id();
    let written = |base: String| async move {
        let m = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        common::sample(
            &m,
            "kiln_prediction_log_entries_total{model=\"kiln\",outcome=\"written\"}",
        ) + common::sample(
            &m,
            "kiln_prediction_log_entries_total{model=\"kiln\",outcome=\"dropped\"}",
        )
    };
    let mut quarter = 1;
    let started = Instant::now();
    while quarter <= 4 {
        load(
            &format!("{}/predict", proc.base),
            "iris c=64, every request logged",
            64,
            &iris_body,
            Duration::from_secs(5),
            None,
        )
        .await;
        let logged = written(proc.base.clone()).await;
        while quarter <= 4 && logged >= entries * quarter as f64 / 4.0 {
            let disk: u64 = std::fs::read_dir(dir.path().join("predictions"))
                .map(|d| {
                    d.filter_map(|e| e.ok()?.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            println!(
                "after {logged:.0} logged requests ({:.0} s): RSS {:.1} MiB (peak {:.1}), log on disk {:.1} MiB of its {:.0} MiB bound",
                started.elapsed().as_secs_f64(),
                status_kib(pid, "VmRSS:") as f64 / 1024.0,
                peak_rss_kib(pid) as f64 / 1024.0,
                disk as f64 / 1048576.0,
                MAX_LOG as f64 / 1048576.0
            );
            quarter += 1;
        }
    }
}
