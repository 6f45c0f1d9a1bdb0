//! The prediction log: a sample of answered instances, written off the reply path
//! to bounded, rotated segments in the store (`predictions/<replica>/<segment>`).
//!
//! The reply path calls [`PredictionLog::record`], which never waits: a bounded
//! channel feeds one writer thread per replica, and a full channel drops the
//! entry (counted). The writer gathers entries into a segment and writes it whole
//! (temp, fsync, rename; never appended to, so an object store can hold it too)
//! when it reaches `monitoring.segment_bytes` or `monitoring.flush_interval_ms`
//! passes. Past `monitoring.max_log_bytes` the oldest segments of this replica are
//! removed. A write that fails (a full disk) drops that segment, logs an error and
//! counts it; serving never notices.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::drift;
use super::ids::PredictionId;
use super::segments::Segments;
use crate::config::MonitoringConfig;
use crate::metrics::Metrics;
use crate::model::DriftBasis;
use crate::registry::Store;

/// One logged instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub id: PredictionId,
    /// When it was answered, in milliseconds since the Unix epoch.
    pub t_ms: u64,
    pub version: String,
    pub features: Vec<f32>,
    /// The answer as `/predict` gives it.
    pub prediction: serde_json::Value,
    /// The shadow version's answer, when the request was mirrored to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowAnswer>,
}

/// A shadow version's answer to a logged instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowAnswer {
    pub version: String,
    pub prediction: serde_json::Value,
}

/// One segment record: a replica's entries, oldest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct Segment {
    pub replica: String,
    pub entries: Vec<Entry>,
}

/// An entry's input to the drift window: the answering version's training
/// profile and the prediction as a number (a class index or a value).
pub struct DriftSample {
    pub basis: Arc<DriftBasis>,
    pub output: f32,
}

/// What the reply path sends the writer.
enum Message {
    Entry(Entry, Option<DriftSample>),
    /// Write what is pending now, then say so (feedback for a fresh id asks this).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The sending side, shared by every request handler.
#[derive(Clone)]
pub struct PredictionLog {
    tx: SyncSender<Message>,
    metrics: Metrics,
}

impl PredictionLog {
    /// Starts the writer thread; it ends when every [`PredictionLog`] is dropped,
    /// after writing what it holds.
    pub fn start(
        store: Store,
        replica: &str,
        config: &MonitoringConfig,
        metrics: Metrics,
        drift: Arc<Mutex<drift::Window>>,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.log_queue);
        let writer = Writer {
            segments: Segments::open(store, FOLDER, replica, config.max_log_bytes),
            replica: replica.to_string(),
            segment_bytes: config.segment_bytes,
            flush_every: Duration::from_millis(config.flush_interval_ms),
            metrics: metrics.clone(),
            drift,
        };
        let handle = std::thread::Builder::new()
            .name("kiln-prediction-log".into())
            .spawn(move || writer.run(rx))
            .expect("spawning the prediction log writer");
        (Self { tx, metrics }, handle)
    }

    /// Queues `entry` for the log, or drops it (counted) when the writer is behind.
    pub fn record(&self, entry: Entry, drift: Option<DriftSample>) {
        if self.tx.try_send(Message::Entry(entry, drift)).is_err() {
            self.metrics.monitoring.prediction_log_dropped();
        }
    }

    /// Asks the writer to write what it holds now; `false` if it could not be
    /// asked (its queue is full: it is writing anyway).
    pub async fn flush(&self) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.try_send(Message::Flush(tx)).is_ok() && rx.await.is_ok()
    }
}

/// The store folder of the log's segments.
pub const FOLDER: &str = "predictions";

struct Writer {
    segments: Segments,
    replica: String,
    segment_bytes: usize,
    flush_every: Duration,
    metrics: Metrics,
    /// The drift window, fed here: off the reply path.
    drift: Arc<Mutex<drift::Window>>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Message>) {
        let mut pending: Vec<Entry> = Vec::new();
        let mut bytes = 0;
        let mut since = Instant::now();
        loop {
            let wait = self.flush_every.saturating_sub(since.elapsed());
            let mut asked = None;
            match rx.recv_timeout(wait) {
                Ok(Message::Entry(entry, sample)) => {
                    if let Some(sample) = sample {
                        self.drift.lock().expect("drift lock").push(
                            &entry.version,
                            &sample.basis,
                            &entry.features,
                            sample.output,
                        );
                    }
                    // Features as text: about 10 bytes a value, plus the rest.
                    bytes += 128 + entry.features.len() * 10;
                    if pending.is_empty() {
                        since = Instant::now();
                    }
                    pending.push(entry);
                    if bytes < self.segment_bytes {
                        continue;
                    }
                }
                Ok(Message::Flush(done)) => asked = Some(done),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush(std::mem::take(&mut pending));
                    return;
                }
            }
            self.flush(std::mem::take(&mut pending));
            if let Some(done) = asked {
                let _ = done.send(());
            }
            bytes = 0;
            since = Instant::now();
        }
    }

    fn flush(&mut self, entries: Vec<Entry>) {
        let (Some(first), Some(last)) = (
            entries.iter().map(|e| e.t_ms).min(),
            entries.iter().map(|e| e.t_ms).max(),
        ) else {
            return;
        };
        let n = entries.len() as u64;
        let segment = Segment {
            replica: self.replica.clone(),
            entries,
        };
        let bytes = serde_json::to_vec(&segment).expect("entries serialise");
        match self.segments.write(first, last, &bytes) {
            Ok(total) => self.metrics.monitoring.prediction_log_written(n, total),
            Err(e) => {
                self.metrics.monitoring.prediction_log_failed(n);
                tracing::error!(error = %e, entries = n,
                    "could not write a prediction log segment; its entries are dropped");
            }
        }
    }
}

/// Reads one segment record.
pub fn read_segment(store: &Store, name: &str) -> Option<Segment> {
    let bytes = store.read_record(name).ok()??;
    serde_json::from_slice(&bytes).ok()
}
