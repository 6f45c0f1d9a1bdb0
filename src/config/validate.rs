//! [`Config::validate`]: the checks serde cannot make (ranges, relations between
//! keys, device selectors), each error naming the key at fault.

use super::{Config, ConfigError};

impl Config {
    /// Checks the values serde cannot: ranges and relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.batching;
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if b.max_batch_size == 0 {
            return invalid("batching.max_batch_size", "must be at least 1".into());
        }
        // Every duration is bounded (an hour at most), so none overflows a timer.
        if !(0.0..=60_000.0).contains(&b.max_queue_delay_ms) {
            return invalid(
                "batching.max_queue_delay_ms",
                format!("must be between 0 and 60000, got {}", b.max_queue_delay_ms),
            );
        }
        for (key, v) in [
            (
                "server.shutdown_drain_delay_ms",
                self.server.shutdown_drain_delay_ms,
            ),
            ("store.poll_interval_ms", self.store.poll_interval_ms),
            (
                "training.heartbeat_interval_ms",
                self.training.heartbeat_interval_ms,
            ),
            (
                "training.heartbeat_timeout_ms",
                self.training.heartbeat_timeout_ms,
            ),
        ] {
            if v > 3_600_000 {
                return invalid(key, format!("must be at most 3600000 (an hour), got {v}"));
            }
        }
        let server = &self.server;
        for (key, v) in [
            ("server.header_timeout_ms", server.header_timeout_ms),
            ("server.body_timeout_ms", server.body_timeout_ms),
            ("server.request_timeout_ms", server.request_timeout_ms),
            ("server.shutdown_timeout_ms", server.shutdown_timeout_ms),
            ("store.timeout_ms", self.store.timeout_ms),
        ] {
            if !(1..=3_600_000).contains(&v) {
                return invalid(key, format!("must be between 1 and 3600000, got {v}"));
            }
        }
        // MiB: past 2^40 the byte count overflows.
        if self.store.cache_max_mb > 1 << 40 {
            return invalid(
                "store.cache_max_mb",
                format!("must be at most 2^40, got {}", self.store.cache_max_mb),
            );
        }
        crate::registry::Location::parse(&self.store.dir).map_err(|e| ConfigError::Invalid {
            key: "store.dir",
            reason: e.to_string(),
        })?;
        if self
            .store
            .endpoint
            .as_deref()
            .is_some_and(|e| url::Url::parse(e).is_err())
        {
            return invalid(
                "store.endpoint",
                "must be a URL such as http://minio:9000".into(),
            );
        }
        if b.compute_threads == 0 || b.compute_threads > 1024 {
            return invalid(
                "batching.compute_threads",
                "must be between 1 and 1024".into(),
            );
        }
        if b.default_timeout_ms == 0 || b.default_timeout_ms > 3_600_000 {
            return invalid(
                "batching.default_timeout_ms",
                format!(
                    "must be between 1 and 3600000, got {}",
                    b.default_timeout_ms
                ),
            );
        }
        if b.max_request_rows == 0 {
            return invalid("batching.max_request_rows", "must be at least 1".into());
        }
        if b.queue_capacity < b.max_request_rows {
            return invalid(
                "batching.queue_capacity",
                format!(
                    "must be at least batching.max_request_rows ({}), got {}",
                    b.max_request_rows, b.queue_capacity
                ),
            );
        }
        if b.queue_capacity > u32::MAX as usize {
            return invalid("batching.queue_capacity", "must fit in 32 bits".into());
        }
        if let Some(m) = b.model_queue_capacity
            && (m < b.max_request_rows || m > b.queue_capacity)
        {
            return invalid(
                "batching.model_queue_capacity",
                format!(
                    "must lie between batching.max_request_rows ({}) and batching.queue_capacity ({}), got {m}",
                    b.max_request_rows, b.queue_capacity
                ),
            );
        }
        if self.server.max_body_bytes < 64 {
            return invalid("server.max_body_bytes", "must be at least 64".into());
        }
        if self.server.max_upload_bytes < 1024 {
            return invalid("server.max_upload_bytes", "must be at least 1024".into());
        }
        if let Err((key, reason)) = self.monitoring.check().and(self.retrain.check()) {
            return invalid(key, reason);
        }
        let e = &self.explain;
        if e.max_rows == 0 || e.max_rows > 65_536 {
            return invalid("explain.max_rows", "must be between 1 and 65536".into());
        }
        if e.max_steps == 0 || e.max_steps > 65_536 {
            return invalid("explain.max_steps", "must be between 1 and 65536".into());
        }
        if self.serving.max_loaded_mb == 0 {
            return invalid("serving.max_loaded_mb", "must be at least 1".into());
        }
        if self.metrics.max_models == 0 {
            return invalid("metrics.max_models", "must be at least 1".into());
        }
        if e.queue_capacity == 0 {
            return invalid("explain.queue_capacity", "must be at least 1".into());
        }
        if self.model.name.is_empty()
            || !self
                .model
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return invalid(
                "model.name",
                format!(
                    "must be non-empty ASCII letters, digits, '-', '_' or '.', got {:?}",
                    self.model.name
                ),
            );
        }
        for (key, backend, selector) in [
            (
                "model.device",
                self.model.backend,
                Some(self.model.device.as_str()),
            ),
            (
                "training.device",
                self.training_backend(),
                self.training.device.as_deref(),
            ),
        ] {
            let Some(selector) = selector else { continue };
            let checked = crate::device::Selector::parse(selector)
                .map_err(|e| e.to_string())
                .and_then(|s| s.check(backend, selector).map_err(|e| e.to_string()));
            if let Err(why) = checked {
                return invalid(key, why);
            }
        }
        if self.training.threads == 0 || self.training.threads > 1024 {
            return invalid("training.threads", "must be between 1 and 1024".into());
        }
        if self.training.heartbeat_interval_ms == 0
            || self.training.heartbeat_timeout_ms < 2 * self.training.heartbeat_interval_ms
        {
            return invalid(
                "training.heartbeat_timeout_ms",
                format!(
                    "must be at least twice training.heartbeat_interval_ms ({}), which must be > 0",
                    self.training.heartbeat_interval_ms
                ),
            );
        }
        if self.training.max_queued_jobs == 0 {
            return invalid("training.max_queued_jobs", "must be at least 1".into());
        }
        let t = &self.training;
        for (key, v, lo, hi) in [
            ("training.max_memory_mb", t.max_memory_mb, 64, 1 << 24),
            ("training.cancel_grace_ms", t.cancel_grace_ms, 1, 600_000),
            ("training.max_model_mb", t.max_model_mb, 1, 1 << 24),
            (
                "training.max_activation_mb",
                t.max_activation_mb,
                1,
                1 << 24,
            ),
            ("training.max_classes", t.max_classes as u64, 2, 1 << 20),
            (
                "training.max_dataset_values",
                t.max_dataset_values,
                1,
                1 << 40,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return invalid(key, format!("must be between {lo} and {hi}, got {v}"));
            }
        }
        if self.auth.token.as_deref().is_some_and(|t| t.len() < 8) {
            return invalid(
                "auth.token",
                "must be at least 8 characters (set it in the file or KILN_AUTH__TOKEN, e.g. KILN_AUTH__TOKEN=$(openssl rand -hex 24))".into(),
            );
        }
        if self.auth.protect_predict && self.auth.token.is_none() {
            return invalid("auth.protect_predict", "needs auth.token".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.telemetry.level) {
            return invalid("telemetry.level", e.to_string());
        }
        self.validate_models()
    }
}

impl Config {
    /// Protected mode (as Redis has it): serving on a non-loopback address needs
    /// `auth.token`, unless `auth.allow_unauthenticated` says every client there is
    /// trusted. The error says how to fix it.
    pub fn check_exposure(&self, addr: std::net::SocketAddr) -> Result<(), ConfigError> {
        if addr.ip().is_loopback() || self.auth.token.is_some() || self.auth.allow_unauthenticated {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            key: "auth.token",
            reason: format!(
                "kiln will not serve on {addr} without a token (protected mode): anyone who can reach it could train, promote and delete models. \
                 Set a token of at least 8 characters (KILN_AUTH__TOKEN=<secret>, or token under [auth] in the config file) \
                 and send it as \"Authorization: Bearer <secret>\"; or listen on 127.0.0.1; \
                 or, only if every client on that network is trusted, set KILN_AUTH__ALLOW_UNAUTHENTICATED=true"
            ),
        })
    }
}
