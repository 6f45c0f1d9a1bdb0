//! `[telemetry]` (logging) and `[metrics]` (`/metrics`).

use serde::{Deserialize, Serialize};

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `pretty` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `kiln=debug,tower_http=info`.
    pub level: String,
    /// One line per answered request (method, route, status, ms, version, request
    /// id, and the reason of a 4xx), at info level. It costs throughput at tens of
    /// thousands of requests a second.
    pub access_log: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
            access_log: true,
        }
    }
}

/// `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Most `model` label values, the default model's included; the series of
    /// the models past it are summed under `model="_other"`.
    pub max_models: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { max_models: 20 }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}
