//! [`Limits`]: the configured bounds a model's inference service applies, from
//! the settings that model runs with (`Config::for_model`).

use crate::config::Config;

/// The configured bounds the service applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `batching.max_request_rows`.
    pub max_request_rows: usize,
    /// `batching.queue_capacity`: a shadow mirrors only while under a quarter of it
    /// is in flight.
    pub queue_capacity: usize,
    /// `explain.max_rows`.
    pub explain_max_rows: usize,
    /// `explain.max_steps`.
    pub explain_max_steps: usize,
    /// `batching.default_timeout_ms`: a request's deadline when it sets none.
    pub default_timeout: std::time::Duration,
}

impl From<&Config> for Limits {
    fn from(config: &Config) -> Self {
        Self {
            max_request_rows: config.batching.max_request_rows,
            queue_capacity: config.batching.queue_capacity,
            explain_max_rows: config.explain.max_rows,
            explain_max_steps: config.explain.max_steps,
            default_timeout: config.batching.default_timeout(),
        }
    }
}
