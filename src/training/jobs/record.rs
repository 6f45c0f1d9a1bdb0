//! Job records: what `GET /train/{id}` answers and what `<store>/jobs/<id>.json`
//! holds, plus the types a submission and its errors are made of.

use serde::{Deserialize, Serialize};

use crate::model::{NetConfig, Task};
use crate::training::data::{Dataset, RowCounts};
use crate::training::fit::EpochReport;
use crate::training::spec::TrainSpec;

/// Where a job is in its life.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The process died while the job was queued or running.
    Interrupted,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Interrupted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// Everything known about a job; what `GET /train/{id}` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: String,
    pub state: JobState,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub task: Task,
    /// Whether the task was given or inferred (and how).
    pub task_reason: String,
    /// The validation metric: `accuracy` or `r2`.
    pub metric: String,
    pub rows: RowCounts,
    /// Epochs asked for, and the last one finished.
    pub epochs: usize,
    pub epoch: usize,
    pub history: Vec<EpochReport>,
    pub best: Option<EpochReport>,
    pub stopped_early: bool,
    pub samples_per_second: Option<f64>,
    pub eta_seconds: Option<f64>,
    /// The version written by a successful job.
    pub version: Option<String>,
    pub promoted: Option<bool>,
    /// Why the version was (not) promoted.
    pub promotion: Option<String>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub spec: TrainSpec,
}

/// A job ready to run: clean data, a validated recipe and the network to build.
pub struct Submission {
    pub data: Dataset,
    pub spec: TrainSpec,
    pub net: NetConfig,
    pub rows: RowCounts,
}

/// Why a job was not accepted, or not cancelled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("the training queue is full ({0} jobs waiting); retry later")]
    QueueFull(usize),
    #[error("no training job {0}")]
    NotFound(String),
    #[error("job {0} has already finished ({1})")]
    Finished(String, &'static str),
    #[error("the trainer has stopped")]
    Stopped,
}
