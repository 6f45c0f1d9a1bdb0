//! The wgpu backend, run for real on whatever Vulkan adapter the machine has (in CI,
//! Mesa's lavapipe, which `.ci/run` installs and requires with
//! `KILN_REQUIRE_VULKAN=1`): predictions equal the CPU backend's for every
//! architecture, a `/train` job, a hot swap under load, the OIP v2 binary path,
//! `model.device`, `training.backend`, the persistent autotune cache, and startup
//! errors instead of panics when the device cannot be had.
#![cfg(feature = "wgpu")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, data, post, submit, test_config, train_config, wait_job};
use kiln::config::{BackendKind, Config};
use serde_json::{Value, json};

/// The autotune cache of this test process: a GPU runtime is configured once per
/// process, so every test shares it (and reuses what the others tuned).
fn cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpu-autotune")
}

/// Whether a wgpu adapter exists; without one the tests fail under
/// `KILN_REQUIRE_VULKAN=1` and are skipped (loudly) otherwise.
fn vulkan() -> bool {
    match kiln::device::device(BackendKind::Wgpu, "default", Some(&cache())) {
        Ok(_) => true,
        Err(e) if std::env::var("KILN_REQUIRE_VULKAN").as_deref() == Ok("1") => {
            panic!("KILN_REQUIRE_VULKAN=1 but no wgpu device: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no wgpu device here ({e})");
            false
        }
    }
}

/// Taken by every test that serves on wgpu: one server tunes its kernels at a time,
/// and the next finds them in the shared autotune cache (three servers tuning the
/// same kernels at once on a 2-core machine each took over 120 s to get ready).
static ONE_GPU_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serves `store` on wgpu, with small shape buckets (lavapipe tunes slowly).
fn on_gpu(mut c: Config) -> Config {
    c.model.backend = BackendKind::Wgpu;
    c.model.autotune_cache_dir = Some(cache());
    c.batching.max_batch_size = 2;
    c
}

fn kiln(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args).env("KILN_TELEMETRY__LEVEL", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn import(store: &Path, weights: &Path, config: &Path) {
    let out = kiln(
        &[
            "import",
            "--weights",
            weights.to_str().unwrap(),
            "--model-config",
            config.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every number of a `/predict` answer, flattened.
async fn outputs(server: &Server, instances: &Value) -> Vec<f64> {
    let r = server.predict(instances).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Number(n) => out.push(n.as_f64().unwrap()),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&body["predictions"], &mut out);
    out
}

fn assert_close(gpu: &[f64], cpu: &[f64], what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}");
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4,
            "{what}: output {i}: wgpu {g}, cpu {c}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_architecture_predicts_on_wgpu_as_on_the_cpu() {
    if !vulkan() {
        return;
    }
    let _one = ONE_GPU_SERVER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let reference: Value =
        serde_json::from_slice(&std::fs::read(data("pytorch/reference.json")).unwrap()).unwrap();
    let mut cases: Vec<(String, PathBuf, PathBuf, Value)> = Vec::new();
    for (file, entry) in reference.as_object().unwrap() {
        let config = dir.path().join(format!("{file}.json"));
        let cfg = json!({"task": "regression", "architecture": {"kind": "sequential",
            "input_shape": entry["input_shape"], "layers": entry["layers"]}});
        std::fs::write(&config, cfg.to_string()).unwrap();
        cases.push((
            file.clone(),
            data("pytorch").join(file),
            config,
            entry["input"].clone(),
        ));
    }
    let seed_input: Vec<Vec<f32>> = (0..3)
        .map(|k| {
            (0..1000)
                .map(|i| ((i * (k + 1)) as f32 * 0.37).sin())
                .collect()
        })
        .collect();
    cases.push((
        "seed MLP".into(),
        data("seed_mlp.safetensors"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/models/seed-mlp.toml"),
        json!(seed_input),
    ));
    assert!(cases.len() >= 10, "the MLP and every fixture architecture");
    for (name, weights, config, input) in &cases {
        let store = dir.path().join(format!("store-{}", name.replace(' ', "-")));
        import(&store, weights, config);
        let cpu = Server::start(test_config(&store)).await;
        let gpu = Server::start(on_gpu(test_config(&store))).await;
        let want = outputs(&cpu, input).await;
        // One instance at a time too: a padded shape bucket changes nothing.
        let got = outputs(&gpu, input).await;
        assert_close(&got, &want, name);
        let first = outputs(&gpu, &json!([input[0]])).await;
        assert_close(&first, &want[..first.len()], name);
        eprintln!(
            "{name}: {} outputs on wgpu equal the CPU's within 1e-4",
            want.len()
        );
        cpu.stop().await.unwrap();
        gpu.stop().await.unwrap();
    }
    let entries = walk_files(&cache());
    assert!(
        entries > 0,
        "the autotune cache was written under {}",
        cache().display()
    );
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk_files(&e.path()),
                    _ => 1,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_hot_swap_and_oip_binary_on_wgpu() {
    if !vulkan() {
        return;
    }
    let _one = ONE_GPU_SERVER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(on_gpu(train_config(dir.path()))).await;
    let first = get_active(&server).await;

    // A training job on wgpu, promoted.
    let id = submit(
        &server,
        // Whole batches (120 training rows): fewer shapes for lavapipe to tune.
        // With a schedule and clipping: both run on the GPU's tensors too.
        json!({"dataset": {"path": "iris.csv"}, "target": "target", "epochs": 4,
               "batch_size": 40, "promote": "always",
               "lr_schedule": {"kind": "cosine", "warmup_epochs": 1}, "grad_clip_norm": 5.0}),
    )
    .await;
    let job = common::poll_job(
        &server.client,
        &server.base,
        &id,
        Duration::from_secs(600),
        common::finished,
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["backend"], "wgpu");
    assert_eq!(job["spec"]["lr_schedule"]["kind"], "cosine", "{job}");
    let trained = job["version"].as_str().unwrap().to_string();
    assert_eq!(get_active(&server).await, trained);

    // Each version's answers, alone.
    let rows = json!([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]);
    let mut expected = std::collections::HashMap::new();
    for v in [&first, &trained] {
        promote(&server, v).await;
        expected.insert(v.clone(), outputs(&server, &rows).await);
    }

    // Swaps under load: every answer is whole and from one version. After each
    // promotion the driver waits until the load has been answered by the new
    // version, however slow the machine.
    let answers = Arc::new(Mutex::new(Vec::<Value>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, rows) = (server.client.clone(), server.url("/predict"), rows.clone());
            let (answers, done) = (answers.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let r = client
                        .post(&url)
                        .json(&json!({"instances": rows}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    let answer = r.json::<Value>().await.unwrap();
                    answers.lock().unwrap().push(answer);
                }
            })
        })
        .collect();
    for v in [&first, &trained, &first, &trained] {
        promote(&server, v).await;
        let seen_from = answers.lock().unwrap().len();
        let until = std::time::Instant::now() + Duration::from_secs(300);
        while !answers.lock().unwrap()[seen_from..]
            .iter()
            .any(|a| a["model_version"] == v.as_str())
        {
            assert!(
                std::time::Instant::now() < until,
                "no answer from {v} under load"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    done.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for answer in answers.lock().unwrap().iter() {
        let version = answer["model_version"].as_str().unwrap().to_string();
        let mut got = Vec::new();
        for p in answer["predictions"].as_array().unwrap() {
            got.extend(
                p["probabilities"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_f64().unwrap()),
            );
            got.push(p["probability"].as_f64().unwrap());
        }
        let want = &expected[&version];
        assert_eq!(got.len(), want.len());
        assert_close(&got, want, &version);
        seen.insert(version);
    }
    assert_eq!(seen.len(), 2, "both versions answered during the swaps");

    // OIP v2 with a binary input tensor.
    let x: Vec<f32> = vec![5.1, 3.5, 1.4, 0.2];
    let (status, b) = common::infer_binary(&server, &[1, 4], &x).await;
    assert_eq!(status, 200, "{b}");
    let probs = b["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "probabilities")
        .unwrap_or_else(|| panic!("{b}"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect::<Vec<_>>();
    assert_close(&probs, &expected[&trained][..probs.len()], "OIP v2 binary");
    server.stop().await.unwrap();
}

async fn get_active(server: &Server) -> String {
    let list = common::get(server, "/models").await;
    list["active"]
        .as_str()
        .unwrap_or_else(|| panic!("{list}"))
        .to_string()
}

async fn promote(server: &Server, version: &str) {
    let r = post(server, &format!("/models/{version}/promote"), json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_device_and_training_backend_are_honoured() {
    if !vulkan() {
        return;
    }
    let _one = ONE_GPU_SERVER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = on_gpu(train_config(dir.path()));
    // lavapipe is a CPU-type adapter; on a machine with only a real GPU, use it.
    if kiln::device::device(BackendKind::Wgpu, "cpu", None).is_ok() {
        config.model.device = "cpu".into();
    }
    config.training.backend = Some(BackendKind::Cpu);
    let server = Server::start(config).await;
    let id = submit(
        &server,
        json!({"dataset": {"path": "iris.csv"}, "target": "target", "epochs": 5}),
    )
    .await;
    let job = wait_job(&server, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["backend"], "cpu",
        "trained on the CPU while serving on wgpu"
    );
    server.stop().await.unwrap();

    // A device that does not exist, and no Vulkan driver at all: startup errors
    // (exit 2) that say what to do, never a panic.
    let store = dir.path().join("other");
    let store = store.to_str().unwrap();
    let listen = "127.0.0.1:0";
    for (env, says) in [
        (
            vec![("KILN_MODEL__DEVICE", "discrete:9")],
            "could not be created",
        ),
        (vec![("KILN_MODEL__DEVICE", "gpu:1")], "unknown device kind"),
        (
            vec![
                ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
                ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
            ],
            "mesa-vulkan-drivers",
        ),
    ] {
        let mut env = env;
        env.push(("KILN_MODEL__BACKEND", "wgpu"));
        let out = kiln(&["serve", "--listen", listen, "--store", store], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{env:?}: {stderr}");
    }
}
