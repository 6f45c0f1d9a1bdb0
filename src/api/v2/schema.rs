//! The OIP v2 answer bodies besides inference (server and model metadata,
//! readiness) and Triton's model configuration, as types the OpenAPI document
//! states (so the schema conformance check can fail).

use serde::Serialize;
use utoipa::ToSchema;

/// `GET /v2`.
#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: &'static [&'static str],
}

/// `GET /v2/health/live`.
#[derive(Serialize, ToSchema)]
pub struct ServerLive {
    pub live: bool,
}

/// `GET /v2/health/ready`.
#[derive(Serialize, ToSchema)]
pub struct ServerReady {
    pub ready: bool,
}

/// Model metadata (OIP v2).
#[derive(Serialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// One tensor's name, datatype and shape (`-1` = the batch dimension).
#[derive(Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

/// A model's (or version's) readiness (OIP v2).
#[derive(Serialize, ToSchema)]
pub struct ModelReady {
    pub name: String,
    pub version: String,
    pub ready: bool,
}

/// Triton's model configuration (`GET /v2/models/{name}/config`), the subset
/// `perf_analyzer` and Triton's clients read.
#[derive(Serialize, ToSchema)]
pub struct TritonConfig {
    pub name: String,
    pub platform: &'static str,
    pub backend: &'static str,
    /// Most rows one request may carry.
    pub max_batch_size: usize,
    pub input: Vec<TritonTensor>,
    pub output: Vec<TritonTensor>,
    pub dynamic_batching: DynamicBatching,
}

/// One tensor of a Triton model configuration: dimensions without the batch.
#[derive(Serialize, ToSchema)]
pub struct TritonTensor {
    pub name: &'static str,
    pub data_type: &'static str,
    pub dims: Vec<i64>,
    /// Triton's `reshape`: a per-row scalar is configured as `dims: [1]` with
    /// `reshape: {shape: []}`, so its full shape is `[-1]`, as the metadata says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reshape: Option<Reshape>,
}

/// The shape a tensor has per row inside the model (Triton's `reshape`).
#[derive(Serialize, ToSchema)]
pub struct Reshape {
    pub shape: Vec<i64>,
}

/// The batcher's settings, as Triton states them.
#[derive(Serialize, ToSchema)]
pub struct DynamicBatching {
    pub preferred_batch_size: Vec<usize>,
    pub max_queue_delay_microseconds: u64,
}
