//! `[server]` and `[auth]`: the listener, its limits and timeouts, and the token.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The HTTP listener and its limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Largest `POST /models` upload (weights and config), in bytes; larger get 413.
    pub max_upload_bytes: usize,
    /// After SIGTERM, how long kiln keeps accepting new connections while
    /// `/health/ready` already answers 503 (lets a load balancer notice first).
    pub shutdown_drain_delay_ms: u64,
    /// A connection must send a request's headers within this long (slow or
    /// half-sent headers are closed).
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this long of its first read (504 after).
    pub body_timeout_ms: u64,
    /// A request must be answered within this long (504 after).
    pub request_timeout_ms: u64,
    /// After shutdown begins (and the drain delay), connections still open this
    /// long are closed and the process exits.
    pub shutdown_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 8 * 1024 * 1024,
            max_upload_bytes: 256 * 1024 * 1024,
            shutdown_drain_delay_ms: 0,
            header_timeout_ms: 10_000,
            body_timeout_ms: 60_000,
            request_timeout_ms: 300_000,
            shutdown_timeout_ms: 30_000,
        }
    }
}

impl ServerConfig {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

/// Bearer-token protection of the mutating endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// When set, `/train`, promote, rollback and delete need
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Protect `/predict` with the same token.
    pub protect_predict: bool,
    /// Let `serve` listen on a non-loopback address without a token (protected mode
    /// is off). Only for networks where every client is trusted.
    pub allow_unauthenticated: bool,
}

/// Models in memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServingConfig {
    /// Megabytes of weights every model's loaded versions may hold together (the
    /// default model's included). Past it, the least recently used named models
    /// are unloaded; each loads again on its next request.
    pub max_loaded_mb: u64,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            max_loaded_mb: 1024,
        }
    }
}
