//! NVIDIA's `perf_analyzer` against two named models (`-m <name>`): it reads each
//! model's Triton configuration and metadata, drives `/v2/models/{name}/infer`
//! at a fixed concurrency, and reports a throughput; every inference is
//! answered 200.
//!
//! The binary comes in the `tritonclient` 2.41 wheel (later wheels left it out).
//! It links `libcudart.so.12` (PyPI's `nvidia-cuda-runtime-cu12`; no GPU is used)
//! and `libb64.so.0d` (Debian's `libb64-0d`, unpacked with `apt-get download`
//! when the system lacks it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, Server, python_env, seed_small_model, test_config};

/// A directory holding `libb64.so.0d`, from Debian's package, unpacked under
/// `venv` (no root needed); `None` when the system already has it.
fn libb64(venv: &Path) -> Option<PathBuf> {
    let system = Command::new("sh")
        .args(["-c", "ldconfig -p | grep -q 'libb64.so.0d '"])
        .status()
        .is_ok_and(|s| s.success());
    if system {
        return None;
    }
    let dir = venv.join("libb64");
    let lib = dir.join("usr/lib/x86_64-linux-gnu");
    if lib.join("libb64.so.0d").exists() {
        return Some(lib);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let got = Command::new("apt-get")
        .args(["download", "libb64-0d"])
        .current_dir(&dir)
        .output()
        .expect("apt-get runs (perf_analyzer needs Debian's libb64-0d)");
    assert!(got.status.success(), "apt-get download libb64-0d: {got:?}");
    let deb = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("the package file");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    Some(lib)
}

/// Runs `perf_analyzer -m name` for about three seconds at concurrency 4; its
/// throughput (inferences a second) and full output.
fn measure(bin: &Path, libs: &str, addr: &str, name: &str) -> (f64, String) {
    let out = Command::new(bin)
        .env("LD_LIBRARY_PATH", libs)
        .args(["-m", name, "-u", addr, "-i", "http"])
        // Zeros: random bit patterns include NaN, which kiln refuses (400).
        .args(["--input-data", "zero", "--concurrency-range", "4"])
        .args(["--measurement-interval", "1000", "--max-trials", "3"])
        .args(["--stability-percentage", "100"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "perf_analyzer -m {name}:\n{text}");
    let throughput = text
        .lines()
        .find_map(|l| {
            let rest = l.split("Throughput: ").nth(1)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no throughput in:\n{text}"));
    (throughput, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_analyzer_measures_two_named_models() {
    let python = tokio::task::spawn_blocking(|| {
        python_env(
            "perf-analyzer",
            &[
                "tritonclient[http]==2.41.0",
                "nvidia-cuda-runtime-cu12==12.4.127",
            ],
        )
    })
    .await
    .unwrap();
    let venv = python.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = venv.join("bin/perf_analyzer");
    let cudart = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .join("site-packages/nvidia/cuda_runtime/lib")
        })
        .find(|p| p.exists())
        .expect("nvidia-cuda-runtime-cu12's lib directory");
    let mut libs = vec![cudart.display().to_string()];
    if let Some(b64) = tokio::task::spawn_blocking({
        let venv = venv.clone();
        move || libb64(&venv)
    })
    .await
    .unwrap()
    {
        libs.push(b64.display().to_string());
    }
    let libs = libs.join(":");

    let dir = tempfile::tempdir().unwrap();
    seed_small_model(dir.path(), 3);
    let server = Server::start(test_config(dir.path())).await;
    for name in ["fraud", "churn"] {
        super::upload_seed(&server, name).await;
    }
    let addr = server.base.trim_start_matches("http://").to_string();
    for name in ["fraud", "churn"] {
        let (bin, libs, addr, model) = (bin.clone(), libs.clone(), addr.clone(), name.to_string());
        let (throughput, text) =
            tokio::task::spawn_blocking(move || measure(&bin, &libs, &addr, &model))
                .await
                .unwrap();
        eprintln!("perf_analyzer -m {name}: {throughput} infer/sec");
        assert!(throughput > 10.0, "{text}");
    }
    // Every inference was answered 200: none refused, none failed.
    let metrics = server.metrics().await;
    let infer = |ok: bool| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("kiln_requests_total{") && l.contains("/infer"))
            .filter(|l| l.contains("code=\"200\"") == ok)
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(infer(true) > 20.0, "{metrics}");
    assert_eq!(infer(false), 0.0, "{metrics}");
    common::get(&server, "/health/ready").await;
    server.stop().await.unwrap();
}
