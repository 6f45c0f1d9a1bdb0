//! Shared test harness: start a real kiln on `127.0.0.1:0` from a temp model store,
//! in-process (`kiln::app::run`) or as the real binary, and talk HTTP to it.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::prelude::Device;
use kiln::config::Config;
use kiln::model::net::{ActivationKind, Architecture, MlpConfig};
use kiln::model::{LoadedModel, Manifest, NetConfig, Task};
use kiln::registry::Store;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A config for tests: port 0, the given store, quiet logs.
pub fn test_config(store: &Path) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.store.dir = store.to_path_buf();
    c.telemetry.level = "warn".into();
    // Jobs run in worker processes of the real binary (this test binary is not one).
    c.training.worker_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_kiln")));
    c
}

/// Writes a small random regression MLP (`width` -> 8 -> 2) into `store` as the
/// active version; returns the version loaded in-process for direct forward passes.
pub fn seed_small_model(store: &Path, width: usize) -> LoadedModel {
    let cfg = NetConfig {
        task: Task::Regression,
        architecture: Architecture::Mlp(MlpConfig {
            input: width,
            hidden: vec![8],
            output: 2,
            activation: ActivationKind::Tanh,
        }),
        preprocess: None,
    };
    let device = Device::flex();
    // Its own seed per call: two models made at once must differ (the default
    // generator can repeat itself for calls close together).
    static SEEDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    device.seed(SEEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let net = cfg.init_default(&device);
    let store = Store::open(store).unwrap();
    let version = store
        .create_version(&Manifest::new(cfg, "test"), &net)
        .unwrap();
    store.set_active(&version).unwrap();
    store.load(&version, &device).unwrap()
}

/// Imports the seed MLP fixture into `store` with the real binary; returns its version.
pub fn import_seed_mlp(store: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["import", "--weights"])
        .arg(data("seed_mlp.safetensors"))
        .arg("--model-config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/models/seed-mlp.toml"))
        .arg("--store")
        .arg(store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .expect("import names the version")
        .to_string()
}

/// A kiln running inside this test process.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Starts kiln with `config` and waits until it is ready.
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(kiln::app::run(config, listener, async {
            let _ = rx.await;
        }));
        let server = Self {
            base,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task,
        };
        wait_ready(&server.client, &server.base).await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn predict(&self, instances: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/predict"))
            .json(&json!({ "instances": instances }))
            .send()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Scrapes `/metrics` until `done` holds for a scrape and returns that scrape.
    /// Work that runs after the answer (the prediction log, shadow mirrors) lands
    /// a moment later, longer on a loaded machine: panics with the last scrape
    /// after 30 s.
    #[allow(dead_code)]
    pub async fn metrics_until(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let metrics = self.metrics().await;
            if done(&metrics) {
                return metrics;
            }
            assert!(std::time::Instant::now() < deadline, "{metrics}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.take().unwrap().send(());
        (&mut self.task).await.unwrap()
    }
}

/// Polls `/health/ready` until it answers 200 (300 s at most: a GPU backend on a
/// software driver tunes its kernels before it is ready, and with an empty autotune
/// cache on a 2-core machine that alone took over 120 s).
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    // Every 10 ms: the start-up bench measures with it.
    for _ in 0..30_000 {
        if let Ok(r) = client.get(format!("{base}/health/ready")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("kiln at {base} did not become ready");
}

/// The value of an unlabelled sample (e.g. `kiln_batch_size_sum`) in a scrape.
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{metrics}"))
}

/// The real binary, started as a child process.
pub struct Process {
    pub child: Child,
    pub base: String,
}

impl Process {
    /// Runs `kiln serve` on port 0 with `store` and extra env; waits for readiness.
    pub async fn serve(store: &Path, env: &[(&str, &str)]) -> Self {
        Self::serve_bin(Path::new(env!("CARGO_BIN_EXE_kiln")), store, env).await
    }

    /// [`serve`](Self::serve) with another kiln binary (a bench's baseline build).
    pub async fn serve_bin(bin: &Path, store: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(store)
            .env("KILN_TELEMETRY__FORMAT", "json")
            .env("KILN_TELEMETRY__LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        // The "listening" log line carries the bound address; if the process ends
        // without it, its output is the panic message.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut tx = Some(tx);
            let mut seen = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(t) = tx.as_ref() {
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) if v["message"] == "listening" => {
                            let _ = t.send(Ok(v["addr"].as_str().unwrap().to_string()));
                            tx = None;
                        }
                        _ => seen.push_str(&format!("{line}\n")),
                    }
                }
            }
            if let Some(t) = tx {
                let _ = t.send(Err(seen));
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(output)) => panic!("kiln exited before listening:\n{output}"),
            Err(e) => panic!("kiln printed no address: {e}"),
        };
        let base = format!("http://{addr}");
        wait_ready(&reqwest::Client::new(), &base).await;
        Self { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn sigterm(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }

    /// Waits for the process to exit (60 s at most); returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("kiln did not exit");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python virtual environment with `packages` from PyPI, made once under
/// cargo's test temp dir and reused by later runs. Returns its `python`.
pub fn python_env(name: &str, packages: &[&str]) -> PathBuf {
    // Tests of one binary run on parallel threads: one builds, the others wait.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{name}"));
    let python = dir.join("bin/python");
    let marker = dir.join("kiln-installed");
    let wanted = packages.join(" ");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "python3 -m venv failed");
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(packages)
        .output()
        .expect("pip runs");
    assert!(
        out.status.success(),
        "pip install {wanted} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, &wanted).unwrap();
    python
}

/// `GET url` as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls `GET {base}/train/{id}` until `done` holds for the record, which it
/// returns; panics after `limit`.
pub async fn poll_job(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let url = format!("{base}/train/{id}");
    let started = std::time::Instant::now();
    loop {
        let job = get_json(client, &url).await;
        if done(&job) {
            return job;
        }
        assert!(started.elapsed() < limit, "job {id} never got there: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a job record is in a final state.
pub fn finished(job: &Value) -> bool {
    !["queued", "running"].contains(&job["state"].as_str().unwrap_or_default())
}

/// [`test_config`] with the bundled datasets and model configs for `/train`.
pub fn train_config(store: &Path) -> Config {
    let mut c = test_config(store);
    c.training.data_dir = data("");
    c.training.config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/models");
    c
}

/// `POST path` with a JSON body.
pub async fn post(server: &Server, path: &str, body: Value) -> reqwest::Response {
    server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A `POST /models` form: the `weights` file and the model `config` (named
/// `config_name`, whose extension tells TOML from JSON).
pub fn import_form(weights: &Path, config: Vec<u8>, config_name: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part(
            "weights",
            reqwest::multipart::Part::bytes(std::fs::read(weights).unwrap())
                .file_name(weights.file_name().unwrap().to_string_lossy().into_owned()),
        )
        .part(
            "config",
            reqwest::multipart::Part::bytes(config).file_name(config_name.to_string()),
        )
}

/// `GET path` as JSON.
pub async fn get(server: &Server, path: &str) -> Value {
    get_json(&server.client, &server.url(path)).await
}

/// Polls a job until it has finished (60 s at most); returns its record.
pub async fn wait_job(server: &Server, id: &str) -> Value {
    poll_job(
        &server.client,
        &server.base,
        id,
        Duration::from_secs(60),
        finished,
    )
    .await
}

/// Submits a training job (202 expected); returns its id.
pub async fn submit(server: &Server, body: Value) -> String {
    let r = post(server, "/train", body).await;
    let status = r.status();
    let b: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{b}");
    b["id"].as_str().unwrap().to_string()
}

/// `POST /v2/models/kiln/infer` with one FP32 input of `shape` sent as a binary
/// tensor (JSON header, then little-endian data); returns the status and body.
pub async fn infer_binary(server: &Server, shape: &[usize], x: &[f32]) -> (u16, Value) {
    let header = json!({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32",
        "parameters": {"binary_data_size": x.len() * 4}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    let r = server
        .client
        .post(server.url("/v2/models/kiln/infer"))
        .header("inference-header-content-length", header.len().to_string())
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The pids whose parent is `parent` (Linux `/proc`).
pub fn child_pids(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                    s[s.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Whether `pid` is gone or a zombie (dead, waiting to be reaped).
pub fn process_dead(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s[s.rfind(')')? + 2..].chars().next())
        .is_none_or(|state| state == 'Z' || state == 'X')
}

/// Runs a test's Python script (`tests/python/<script>`) with `args`; it must
/// succeed and print one JSON object, which is returned.
pub async fn run_python(python: PathBuf, script: &str, args: Vec<String>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `POST /train` with `body` to the server at `base`; it must be accepted (202).
/// Returns the job id.
pub async fn submit_at(client: &reqwest::Client, base: &str, body: &Value) -> String {
    let r = client
        .post(format!("{base}/train"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The version `p` serves (`/health/ready`).
pub async fn serving(client: &reqwest::Client, p: &Process) -> String {
    get_json(client, &p.url("/health/ready")).await["model_version"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls until `p` serves `version`; returns how long that took.
pub async fn wait_serving(client: &reqwest::Client, p: &Process, version: &str) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if serving(client, p).await == version {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never served {version}", p.base);
}

/// Trains a small iris model on `p`; returns the version it wrote.
pub async fn train_version(client: &reqwest::Client, p: &Process, promote: &str) -> String {
    let id = submit_at(
        client,
        &p.base,
        &json!({"dataset": {"path": "iris.csv"}, "promote": promote, "epochs": 5}),
    )
    .await;
    let job = poll_job(client, &p.base, &id, Duration::from_secs(60), finished).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    job["version"].as_str().unwrap().to_string()
}

/// `promtool check metrics` on a scrape, when promtool is installed (`.ci/run`
/// installs it): it finds nothing to complain about.
pub fn promtool_check_metrics(text: &str) {
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && said.trim().is_empty(),
                "promtool: {said}"
            );
        }
        Err(_) if std::env::var_os("KILN_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool not installed; skipping `promtool check metrics`");
        }
        Err(e) => panic!("KILN_REQUIRE_PROMTOOL is set but promtool cannot run: {e}"),
    }
}
