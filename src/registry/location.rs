//! Where `store.dir` points: a directory, or an object-store URL (`s3://bucket/
//! prefix`, `gs://`, `az://`), and how each is opened.
//!
//! Credentials come from each cloud's standard chain (environment variables,
//! instance roles, workload identity), read by `object_store`'s `from_env`
//! builders; `store.endpoint` (or `AWS_ENDPOINT_URL`) points S3 at a compatible
//! service, and `store.options` passes any other `object_store` setting by name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, RetryConfig};

use super::StoreError;
use super::object::{Cache, ObjectBackend};

/// How an object store is reached (the `store.*` settings but `dir`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectSettings {
    /// An S3-compatible service's URL, or Azure's blob endpoint; `http://` is
    /// allowed only when named here.
    pub endpoint: Option<String>,
    /// Each request (with its retries) gives up after this long.
    pub timeout_ms: u64,
    /// The local read cache of immutable files, and its bound (0: none).
    pub cache_dir: PathBuf,
    pub cache_max_mb: u64,
    /// More `object_store` settings by name; they override kiln's.
    pub options: std::collections::BTreeMap<String, String>,
}

/// What `store.dir` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Dir(PathBuf),
    Url(url::Url),
}

impl Location {
    /// A URL if `dir` has a scheme (`s3://...`), else a directory.
    pub fn parse(dir: &Path) -> Result<Self, StoreError> {
        let Some(text) = dir.to_str().filter(|t| t.contains("://")) else {
            return Ok(Self::Dir(dir.to_path_buf()));
        };
        let bad = |reason: String| StoreError::Location {
            store: text.into(),
            reason,
        };
        let url = url::Url::parse(text).map_err(|e| bad(format!("not a URL: {e}")))?;
        match url.scheme() {
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" => {}
            other => {
                return Err(bad(format!(
                    "unsupported scheme `{other}`; use a directory, s3://, gs:// or az://"
                )));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("the URL names no bucket".into()));
        }
        Ok(Self::Url(url))
    }
}

/// Opens the object store `url` names, as `config` says.
pub fn open_object(url: &url::Url, config: &ObjectSettings) -> Result<ObjectBackend, StoreError> {
    let text = url.to_string();
    let bad = |reason: String| StoreError::Location {
        store: text.clone(),
        reason,
    };
    let timeout = Duration::from_millis(config.timeout_ms);
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: timeout,
    };
    let timeout_value = format!("{}ms", config.timeout_ms);
    let allow_http = config
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(text.clone())
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_retry(retry);
            for (key, value) in options(config, &[("timeout", &timeout_value)]) {
                b = b.with_config(
                    key.parse()
                        .map_err(|e| bad(format!("store.options: {e}")))?,
                    value,
                );
            }
            if let Some(endpoint) = &config.endpoint {
                b = b.with_endpoint(endpoint).with_allow_http(allow_http);
            }
            Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(text.clone())
                .with_retry(retry);
            for (key, value) in options(config, &[("timeout", &timeout_value)]) {
                b = b.with_config(
                    key.parse()
                        .map_err(|e| bad(format!("store.options: {e}")))?,
                    value,
                );
            }
            Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
        }
        _ => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(text.clone())
                .with_retry(retry);
            for (key, value) in options(config, &[("timeout", &timeout_value)]) {
                b = b.with_config(
                    key.parse()
                        .map_err(|e| bad(format!("store.options: {e}")))?,
                    value,
                );
            }
            if let Some(endpoint) = &config.endpoint {
                b = b
                    .with_endpoint(endpoint.clone())
                    .with_allow_http(allow_http);
            }
            Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
        }
    };
    // The bucket (or container) is the URL's host; the store lives under its path.
    let prefix = url.path().trim_matches('/');
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    };
    let cache = (config.cache_max_mb > 0).then(|| {
        Cache::new(
            &config.cache_dir,
            &text,
            config.cache_max_mb.saturating_mul(1 << 20),
        )
    });
    ObjectBackend::new(text, store, cache)
}

/// kiln's settings, then `store.options` (which may override them).
fn options<'a>(
    config: &'a ObjectSettings,
    ours: &'a [(&'a str, &'a String)],
) -> impl Iterator<Item = (&'a str, &'a str)> {
    ours.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(config.options.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_directories_and_urls_are_checked() {
        assert_eq!(
            Location::parse(Path::new("models")).unwrap(),
            Location::Dir("models".into())
        );
        assert!(matches!(
            Location::parse(Path::new("s3://bucket/kiln")).unwrap(),
            Location::Url(u) if u.host_str() == Some("bucket") && u.path() == "/kiln"
        ));
        for bad in ["ftp://host/x", "s3:///nobucket", "s3://bad host/x"] {
            assert!(
                matches!(
                    Location::parse(Path::new(bad)),
                    Err(StoreError::Location { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_options_are_refused_by_name() {
        let config = ObjectSettings {
            options: [("aws_no_such_key".to_string(), "1".to_string())].into(),
            ..ObjectSettings::default()
        };
        let url = url::Url::parse("s3://bucket").unwrap();
        let err = open_object(&url, &config).unwrap_err().to_string();
        assert!(err.contains("aws_no_such_key"), "{err}");
    }
}
