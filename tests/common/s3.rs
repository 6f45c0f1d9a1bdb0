//! A real S3-compatible server on loopback for the store's tests: moto's server
//! mode (`moto[server]` from PyPI, which honours `If-None-Match: *` and `If-Match`
//! on PutObject), started per test with its own port and bucket.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kiln::config::StoreConfig;
use kiln::registry::Store;

use super::{Process, python_env};

pub const MOTO: &str = "moto[server]==5.2.5";

/// A running moto server.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub async fn start() -> Self {
        let python = python_env("moto", &[MOTO]);
        let port = free_port();
        let child = Command::new(python.parent().unwrap().join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Self { child, port };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client.get(moto.endpoint()).send().await.is_ok() {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto did not answer on port {port}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (moto takes unsigned requests).
    pub async fn bucket(&self, bucket: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "creating {bucket}: {}", r.status());
    }

    /// The keys under `prefix` in `bucket`, from a ListObjectsV2 answer.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let xml = reqwest::Client::new()
            .get(format!(
                "{}/{bucket}?list-type=2&prefix={prefix}&max-keys=1000",
                self.endpoint()
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where a test's model store lives: a temp directory, or a bucket on moto.
pub struct Backing {
    /// `store.dir`: the directory, or `s3://bucket/prefix`.
    pub location: PathBuf,
    /// What a kiln process needs to reach it (credentials, endpoint, cache).
    pub env: Vec<(String, String)>,
    pub moto: Option<Moto>,
    endpoint: Option<String>,
    cache: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Backing {
    /// A store in a fresh temp directory.
    pub fn dir() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            location: dir.path().to_path_buf(),
            env: Vec::new(),
            moto: None,
            endpoint: None,
            cache: tempfile::tempdir().unwrap(),
            _dir: dir,
        }
    }

    /// A directory store the caller owns.
    pub fn at(dir: &std::path::Path) -> Self {
        Self {
            location: dir.to_path_buf(),
            ..Self::dir()
        }
    }

    /// A store in a fresh bucket on a fresh moto server.
    pub async fn s3() -> Self {
        let moto = Moto::start().await;
        let endpoint = moto.endpoint();
        Self::s3_at(moto, &endpoint).await
    }

    /// A bucket on `moto`, reached through `endpoint` (moto's, or a proxy's).
    pub async fn s3_at(moto: Moto, endpoint: &str) -> Self {
        moto.bucket("kiln-test").await;
        let cache = tempfile::tempdir().unwrap();
        let env = [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("KILN_STORE__ENDPOINT", endpoint),
            ("KILN_STORE__CACHE_DIR", cache.path().to_str().unwrap()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        Self {
            location: PathBuf::from("s3://kiln-test/models"),
            env,
            moto: Some(moto),
            endpoint: Some(endpoint.to_string()),
            cache,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn is_bucket(&self) -> bool {
        self.moto.is_some()
    }

    /// The weight cache's directory (object stores).
    pub fn cache_dir(&self) -> PathBuf {
        self.cache.path().to_path_buf()
    }

    /// The store config a kiln process would use.
    pub fn config(&self) -> StoreConfig {
        let mut config = StoreConfig {
            dir: self.location.clone(),
            endpoint: self.endpoint.clone(),
            cache_dir: self.cache.path().to_path_buf(),
            ..StoreConfig::default()
        };
        if self.is_bucket() {
            for (k, v) in [
                ("aws_access_key_id", "test"),
                ("aws_secret_access_key", "test"),
                ("aws_region", "us-east-1"),
            ] {
                config.options.insert(k.into(), v.into());
            }
        }
        config
    }

    /// The store, opened in this process.
    pub fn store(&self) -> Store {
        self.config().open().unwrap()
    }

    /// `kiln serve` on this store, with `extra` env.
    pub async fn serve(&self, extra: &[(&str, &str)]) -> Process {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra);
        Process::serve(&self.location, &env).await
    }

    /// A kiln subcommand with this store's environment.
    pub fn kiln(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}
