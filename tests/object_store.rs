//! The model store on a bucket (moto's S3 server on loopback): two replicas on one
//! bucket, the object server failing and coming back, `kill -9` during uploads,
//! `kiln store migrate`, and the weight cache's bound. Promote, rollback, delete
//! and feedback run on both backends in `replicas.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use burn::prelude::Device;
use common::s3::{Backing, Moto};
use common::{data, finished, get_json, poll_job, serving, train_version, wait_serving};
use kiln::model::net::{ActivationKind, Architecture, MlpConfig};
use kiln::model::{Manifest, NetConfig, Task};
use kiln::registry::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLL_MS: u64 = 200;

fn data_dir() -> String {
    data("").to_str().unwrap().to_string()
}

/// An MLP of `input` -> `hidden` -> 10 with random weights (4 bytes a parameter).
fn mlp(input: usize, hidden: Vec<usize>) -> (Manifest, kiln::model::Net) {
    let cfg = NetConfig {
        task: Task::Regression,
        architecture: Architecture::Mlp(MlpConfig {
            input,
            hidden,
            output: 10,
            activation: ActivationKind::Relu,
        }),
        preprocess: None,
    };
    let net = cfg.init_default(&Device::flex());
    (Manifest::new(cfg, "test"), net)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_bucket_follow_claim_unique_ids_and_lose_no_update() {
    let store = Backing::s3().await;
    let client = reqwest::Client::new();
    let (poll, data) = (POLL_MS.to_string(), data_dir());
    let env = |host: &'static str| {
        [
            ("HOSTNAME", host),
            ("KILN_STORE__POLL_INTERVAL_MS", poll.as_str()),
            ("KILN_TRAINING__DATA_DIR", data.as_str()),
            ("KILN_TRAINING__MAX_QUEUED_JOBS", "16"),
        ]
    };
    let a = store.serve(&env("replica-a")).await;
    let b = store.serve(&env("replica-b")).await;
    assert_eq!(serving(&client, &a).await, "v1");
    assert_eq!(serving(&client, &b).await, "v1");

    // 20 trainings at once, 10 on each replica: 20 distinct ids.
    let body = json!({"dataset": {"path": "iris.csv"}, "epochs": 2, "promote": "never"});
    let submits = (0..20).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        submit_retrying(&client, base, &body)
    });
    let jobs = futures::future::join_all(submits).await;
    let mut versions = Vec::new();
    for (i, id) in jobs.iter().enumerate() {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let job = poll_job(&client, base, id, Duration::from_secs(120), finished).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        versions.push(job["version"].as_str().unwrap().to_string());
    }
    let mut unique = versions.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "{versions:?}");
    assert_eq!(store.store().list().unwrap().len(), 21);

    // A promotion on one replica reaches the other within its polling bound.
    let mut follow = Vec::new();
    for v in &versions[..3] {
        let r = client
            .post(a.url(&format!("/models/{v}/promote")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        follow.push(wait_serving(&client, &b, v).await);
    }
    eprintln!("replica b followed a's promotions after {follow:?} (poll {POLL_MS} ms)");
    assert!(
        follow
            .iter()
            .all(|t| *t < Duration::from_millis(POLL_MS * 5))
    );

    // A race: a promotes 10 versions while b promotes 10 others and rolls back
    // after each. Every write that succeeded has its own generation: none lost.
    let before = store.store().active().unwrap().unwrap().generation;
    let (first, second) = (&versions[..10], &versions[10..]);
    let on_a = async {
        let mut out = Vec::new();
        for v in first {
            out.push(
                client
                    .post(a.url(&format!("/models/{v}/promote")))
                    .send()
                    .await
                    .unwrap(),
            );
        }
        out
    };
    let on_b = async {
        let mut out = Vec::new();
        for v in second {
            out.push(
                client
                    .post(b.url(&format!("/models/{v}/promote")))
                    .send()
                    .await
                    .unwrap(),
            );
            out.push(client.post(b.url("/models/rollback")).send().await.unwrap());
        }
        out
    };
    let (ra, rb) = tokio::join!(on_a, on_b);
    let mut generations = Vec::new();
    let mut conflicts = 0;
    for r in ra.into_iter().chain(rb) {
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        match status.as_u16() {
            200 => generations.push(body["generation"].as_u64().unwrap()),
            409 => conflicts += 1,
            other => panic!("{other}: {body}"),
        }
    }
    generations.sort_unstable();
    let n = generations.len() as u64;
    let expected: Vec<u64> = (before + 1..=before + n).collect();
    assert_eq!(generations, expected, "a write was lost or doubled");
    let record = store.store().active().unwrap().unwrap();
    assert_eq!(record.generation, before + n);
    eprintln!("race: {n} writes succeeded, {conflicts} refused with 409, none lost");
}

/// `POST /train`, again after each 429 (a replica reads two bodies at a time), as
/// a client honouring `Retry-After` would; returns the job id.
async fn submit_retrying(client: &reqwest::Client, base: &str, body: &Value) -> String {
    loop {
        let r = client
            .post(format!("{base}/train"))
            .json(body)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            202 => {
                return r.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .into();
            }
            429 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("{other}: {}", r.text().await.unwrap()),
        }
    }
}

/// A TCP proxy in front of moto that can pass, answer 500, or drop connections.
struct Faulty {
    port: u16,
    mode: Arc<AtomicU8>,
    cut: tokio::sync::watch::Sender<u64>,
}

const PASS: u8 = 0;
const ANSWER_500: u8 = 1;
const DOWN: u8 = 2;

impl Faulty {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (m, cuts) = (mode.clone(), cut.subscribe());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                // Cut by later mode switches only.
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                match m.load(Ordering::SeqCst) {
                    DOWN => drop(client),
                    ANSWER_500 => {
                        tokio::spawn(async move {
                            let mut head = Vec::new();
                            let mut buf = [0u8; 4096];
                            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                                match client.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => head.extend_from_slice(&buf[..n]),
                                }
                            }
                            let _ = client
                                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                        });
                    }
                    _ => {
                        tokio::spawn(async move {
                            let Ok(mut server) =
                                tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                            else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = cuts.changed() => {}
                            }
                        });
                    }
                }
            }
        });
        Self { port, mode, cut }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Switches mode and cuts every connection passed through so far.
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_object_store_stops_promotions_not_serving() {
    let moto = Moto::start().await;
    let proxy = Faulty::start(moto.port).await;
    let store = Backing::s3_at(moto, &proxy.endpoint()).await;
    let client = reqwest::Client::new();
    let data = data_dir();
    let p = store
        .serve(&[
            ("KILN_STORE__TIMEOUT_MS", "1500"),
            ("KILN_STORE__POLL_INTERVAL_MS", "200"),
            ("KILN_TRAINING__DATA_DIR", &data),
            ("KILN_MONITORING__SAMPLE_RATE", "1"),
        ])
        .await;
    let v2 = train_version(&client, &p, "never").await;
    let iris = json!({"instances": [[5.1, 3.5, 1.4, 0.2]]});
    for (mode, what) in [
        (ANSWER_500, "answering 500"),
        (DOWN, "dropping connections"),
    ] {
        proxy.set(mode);
        let mut id = String::new();
        for _ in 0..20 {
            let r = client
                .post(p.url("/predict"))
                .json(&iris)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{what}: serving must go on");
            id = r.json::<Value>().await.unwrap()["prediction_ids"][0]
                .as_str()
                .unwrap()
                .to_string();
        }
        // Feedback and training need the store: a 503 that names it, within
        // about one store timeout (before, a 500 after two and a 202 for a job
        // that then failed).
        for (path, body) in [
            (
                "/feedback",
                json!({"items": [{"prediction_id": id, "target": "setosa"}]}),
            ),
            (
                "/train",
                json!({"dataset": {"path": "iris.csv"}, "epochs": 1}),
            ),
        ] {
            let started = Instant::now();
            let r = client.post(p.url(path)).json(&body).send().await.unwrap();
            let (status, took) = (r.status(), started.elapsed());
            let error = r.json::<Value>().await.unwrap()["error"].to_string();
            eprintln!("{what}: {path} answered {status} after {took:?}: {error}");
            assert_eq!(status, 503, "{what}: {path}: {error}");
            assert!(
                error.contains("model store s3://kiln-test/models is unavailable"),
                "{what}: {path}: {error}"
            );
            assert!(
                took < Duration::from_millis(4500),
                "{what}: {path}: {took:?}"
            );
        }
        let started = Instant::now();
        let r = client
            .post(p.url(&format!("/models/{v2}/promote")))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let error = r.json::<Value>().await.unwrap()["error"].to_string();
        eprintln!(
            "{what}: promote answered {status} after {:?}: {error}",
            started.elapsed()
        );
        assert_eq!(status, 503, "{what}: {error}");
        assert!(
            error.contains("model store s3://kiln-test/models is unavailable"),
            "{what}: {error}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        let r = client.get(p.url("/models")).send().await.unwrap();
        assert_eq!(r.status(), 503, "{what}");
        assert_eq!(serving(&client, &p).await, "v1");
        let r = client
            .post(p.url("/predict"))
            .json(&iris)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = client
        .get(p.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("kiln_store_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(errors > 0.0, "no store errors counted");

    // The server is back: promotion, training and listing work again.
    proxy.set(PASS);
    let r = client
        .post(p.url(&format!("/models/{v2}/promote")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(serving(&client, &p).await, v2);
    let v3 = train_version(&client, &p, "never").await;
    let models = get_json(&client, &p.url("/models")).await;
    assert_eq!(models["versions"].as_array().unwrap().len(), 3, "{models}");
    assert_eq!(v3, "v3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_a_store_and_kill_9_never_leaves_a_loadable_partial_version() {
    // A directory store with three 25 MB versions, records and an active version.
    let src = tempfile::tempdir().unwrap();
    let source = Store::open(src.path()).unwrap();
    for _ in 0..3 {
        let (manifest, net) = mlp(1000, vec![2048, 2048]);
        source.create_version(&manifest, &net).unwrap();
    }
    source.set_active("v2").unwrap();
    source
        .write_job("job-1", &json!({"id": "job-1", "state": "succeeded"}))
        .unwrap();
    source
        .write_record("datasets/v2", b"x,target\n1,2\n")
        .unwrap();

    let dest = Backing::s3().await;
    let moto = dest.moto.as_ref().unwrap();
    let migrate = |to: &std::path::Path| {
        let mut cmd = dest.kiln(&["store", "migrate", "--from"]);
        cmd.arg(src.path()).arg("--to").arg(to);
        cmd
    };
    let device = Device::flex();
    // Each round copies into a fresh prefix, so every round uploads, and is
    // killed somewhere in it. Versions claimed (`ids/`) but without a manifest
    // are the uploads a kill cut short.
    let mut cut_short = 0;
    for round in 0..8u64 {
        let prefix = format!("round{round}");
        let to = std::path::PathBuf::from(format!("s3://kiln-test/{prefix}"));
        let mut child = migrate(&to)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100 + (round * 173) % 500)).await;
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever was cut, every version a reader can see loads whole.
        let store = kiln::config::StoreConfig {
            dir: to.clone(),
            ..dest.config()
        }
        .open()
        .unwrap();
        let listed = store.list().unwrap();
        for v in &listed {
            store
                .load(v, &device)
                .unwrap_or_else(|e| panic!("round {round}: {v}: {e}"));
        }
        let claimed = moto
            .keys("kiln-test", &format!("{prefix}/ids/"))
            .await
            .len();
        cut_short += claimed - listed.len();
        eprintln!("round {round}: {claimed} claimed, {} whole", listed.len());
        if cut_short >= 2 {
            break;
        }
    }
    eprintln!("uploads cut short by kill -9: {cut_short}");
    assert!(cut_short > 0, "no kill landed during an upload");

    // Run again, to the end: the copy is complete and identical.
    let out = migrate(&dest.location).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("active version: v2"), "{stdout}");
    let copy = dest.store();
    assert_eq!(copy.list().unwrap(), source.list().unwrap());
    for v in source.list().unwrap() {
        assert!(
            copy.version_files(&v).unwrap() == source.version_files(&v).unwrap(),
            "{v}"
        );
    }
    assert_eq!(copy.active().unwrap().unwrap().version, "v2");
    assert_eq!(
        copy.read_job("job-1").unwrap().unwrap()["state"],
        "succeeded"
    );
    assert!(copy.read_record("datasets/v2").unwrap().is_some());
    // And a server on the bucket serves it.
    let client = reqwest::Client::new();
    let p = dest.serve(&[]).await;
    assert_eq!(serving(&client, &p).await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weight_cache_stays_within_its_bound() {
    let store = Backing::s3().await;
    let bucket = store.store();
    // Five versions of about 2 MB each; the cache holds 5 MiB.
    for _ in 0..5 {
        let (manifest, net) = mlp(1000, vec![500]);
        bucket.create_version(&manifest, &net).unwrap();
    }
    bucket.set_active("v1").unwrap();
    let client = reqwest::Client::new();
    let p = store.serve(&[("KILN_STORE__CACHE_MAX_MB", "5")]).await;
    let size = || -> u64 { walk(&store.cache_dir()) };
    assert!(
        size() > 2_000_000,
        "the active version's weights are cached"
    );
    for v in 2..=5 {
        let r = client
            .get(p.url(&format!("/v2/models/kiln/versions/v{v}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "v{v}");
        let held = size();
        eprintln!("after loading v{v}: cache holds {held} bytes");
        assert!(held <= 5 << 20, "{held} bytes over the 5 MiB bound");
        assert!(held >= 2_000_000);
    }
}

/// Bytes of the files under `dir`.
fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                walk(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
