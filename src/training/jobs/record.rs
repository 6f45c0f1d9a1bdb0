//! Job records: what `GET /train/{id}` answers and what `<store>/jobs/<id>.json`
//! holds, plus the types a submission and its errors are made of.

use serde::{Deserialize, Serialize};

use crate::model::Task;
use crate::training::data::RowCounts;
use crate::training::fit::EpochReport;
use crate::training::input::JobInput;
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
    /// When the job was submitted, started and finished: milliseconds since the
    /// Unix epoch, like `heartbeat_ms` (records written before carry seconds under
    /// the old names; they are read as such).
    #[serde(alias = "created_at", deserialize_with = "epoch_ms")]
    pub created_at_ms: u64,
    #[serde(alias = "started_at", default, deserialize_with = "epoch_ms_opt")]
    pub started_at_ms: Option<u64>,
    #[serde(alias = "finished_at", default, deserialize_with = "epoch_ms_opt")]
    pub finished_at_ms: Option<u64>,
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
    /// The written version's validation figures, under the names `GET /models`
    /// uses (`accuracy` or `r2`, `val_loss`, `rmse`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
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
    /// The process running the job, `host:pid` (replicas share job records).
    #[serde(default)]
    pub owner: String,
    /// When the owner last said it is alive (ms since the Unix epoch); written every
    /// `training.heartbeat_interval_ms` while the job is queued or running.
    #[serde(default)]
    pub heartbeat_ms: u64,
    /// The backend the job trains on (`training.backend`, else `model.backend`).
    #[serde(default)]
    pub backend: String,
    /// What started an automatic job (`[retrain]`): absent for jobs users sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The live trial (`shadow` or `canary`) a better version must pass before
    /// it is promoted (`retrain.gate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// The named model the job trains (`POST /models/{name}/train`); absent: the
    /// default model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The version beat the serving one and waits for its live trial instead of
    /// being promoted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// How a held version's live trial ended (`passed: promoted`, `rejected`,
    /// `timed out`), with the scores compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
    /// An automatic job's candidates: each recency window it trained on, its
    /// validation score on the newest labels, and the one it kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<crate::training::windows::Candidate>,
    /// A search's trials (`search` in the recipe): what each tried, its
    /// validation score, and the one whose version was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<crate::training::search::Trial>,
    /// What kiln chose where the recipe left a field unset, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defaults: Vec<crate::training::defaults::Chosen>,
}

/// This process, as job records name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
}

impl Owner {
    /// This process: the host name (`HOSTNAME`, else the kernel's) and pid.
    pub fn me() -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_else(|| "localhost".into());
        Self {
            host,
            pid: std::process::id(),
        }
    }

    pub fn tag(&self) -> String {
        format!("{}:{}", self.host, self.pid)
    }

    /// Whether the process named by `tag` is certainly gone: it ran on this host
    /// and its pid no longer exists (Linux). Other hosts are judged by heartbeat.
    fn certainly_gone(&self, tag: &str) -> bool {
        let Some((host, pid)) = tag.rsplit_once(':') else {
            return false;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        host == self.host
            && pid != self.pid
            && cfg!(target_os = "linux")
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
}

impl JobRecord {
    /// Whether the process that owns this unfinished job has stopped: no heartbeat
    /// for `timeout_ms`, or (same host) its process is gone, or it was this very
    /// process's pid in an earlier life.
    pub fn orphaned(&self, now_ms: u64, timeout_ms: u64, me: &Owner) -> bool {
        !self.state.is_finished()
            && (now_ms.saturating_sub(self.heartbeat_ms) > timeout_ms
                || self.owner == me.tag() && self.heartbeat_ms < me_started_ms()
                || me.certainly_gone(&self.owner))
    }

    /// The record as a reader should see it: an orphaned job reads `interrupted`.
    pub fn observed(mut self, now_ms: u64, timeout_ms: u64, me: &Owner) -> Self {
        if self.orphaned(now_ms, timeout_ms, me) {
            self.state = JobState::Interrupted;
            self.eta_seconds = None;
            self.error = Some(format!(
                "the server running this job ({}) stopped while it was queued or running",
                self.owner
            ));
        }
        self
    }
}

/// When this process started (ms since the Unix epoch).
pub fn me_started_ms() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(now_ms)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A job ready to queue: its input (checked by preparing it once) and what its
/// record says of the data.
pub struct Submission {
    /// What the worker gets: the recipe as sent (the worker sizes it again and
    /// records what it chose).
    pub input: JobInput,
    /// The recipe with its sizes filled from the rows, as the record shows it.
    pub spec: TrainSpec,
    pub task: Task,
    pub task_reason: String,
    pub rows: RowCounts,
    /// What started it, for automatic jobs.
    pub trigger: Option<String>,
    /// The live trial a better version must pass first, for automatic jobs.
    pub gate: Option<String>,
    /// The named model it trains; `None`: the default model.
    pub target: Option<super::Target>,
}

/// Why a job was not accepted, or not cancelled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("the training queue is full ({0} jobs waiting, training.max_queued_jobs); retry later")]
    QueueFull(usize),
    #[error("no training job {0}")]
    NotFound(String),
    #[error("job {0} has already finished ({1})")]
    Finished(String, &'static str),
    #[error("job {0} runs on another replica and its cancel request could not be recorded: {1}")]
    Elsewhere(String, String),
    #[error("the trainer has stopped")]
    Stopped,
}

/// Before 10^11 (March 1973 in ms), a time stamp is in seconds: an older record's.
fn to_ms(t: u64) -> u64 {
    if t < 100_000_000_000 { t * 1000 } else { t }
}

fn epoch_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    u64::deserialize(d).map(to_ms)
}

fn epoch_ms_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d).map(|t| t.map(to_ms))
}
