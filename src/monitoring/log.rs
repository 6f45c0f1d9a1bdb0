//! The prediction log: a sample of answered instances, written off the reply path
//! to bounded, rotated segments in the store (`predictions/<replica>/<segment>`).
//!
//! The reply path calls [`PredictionLog::record`], which never waits: a bounded
//! channel feeds one writer thread per replica, and a full channel drops the
//! entry (counted). The writer gathers entries into a segment and writes it whole
//! (temp, fsync, rename; never appended to, so an object store can hold it too)
//! when it reaches `monitoring.segment_bytes` or `monitoring.flush_interval_ms`
//! passes. At shutdown [`LogWriter::close`] has it write everything queued, then
//! joins it: an entry queued before shutdown is never lost. Past
//! `monitoring.max_log_bytes` the oldest segments of this replica are removed. A
//! write that fails (a full disk) drops that segment, logs an error and counts it;
//! serving never notices.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::drift;
use super::ids::PredictionId;
use super::segments::Segments;
use crate::config::MonitoringConfig;
use crate::metrics::Metrics;
use crate::model::{LoadedModel, Prediction};
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

/// A sampled request as the reply path hands it over; the writer turns it into
/// entries (so the reply path pays one queue push, not the encoding).
pub struct Logged {
    pub ids: Vec<PredictionId>,
    /// The version that answered.
    pub model: Arc<LoadedModel>,
    /// `ids.len()` rows of features.
    pub rows: Vec<f32>,
    pub predictions: Vec<Prediction>,
    /// A shadow version's answers to the same rows.
    pub shadow: Option<(String, Vec<Prediction>)>,
    /// The answers are the serving version's: they feed the drift window.
    pub serving: bool,
}

/// What the reply path sends the writer.
enum Message {
    Request(Box<Logged>),
    /// Write what is pending now, then say so (feedback for a fresh id asks this).
    Flush(tokio::sync::oneshot::Sender<()>),
    /// Write everything queued and end (shutdown).
    Close,
}

/// How often a busy writer drains its queue: it wakes per tick, not per request.
const TICK: Duration = Duration::from_millis(5);

/// The sending side, shared by every request handler.
#[derive(Clone)]
pub struct PredictionLog {
    tx: SyncSender<Message>,
    /// Instances queued for the writer (bounded by `monitoring.log_queue`).
    queued: Arc<AtomicUsize>,
    limit: usize,
    metrics: Metrics,
}

/// The writer thread, owned by the process lifecycle.
pub struct LogWriter {
    tx: SyncSender<Message>,
    thread: std::thread::JoinHandle<()>,
}

impl LogWriter {
    /// Has the writer write every entry queued before this call, then joins it.
    /// Blocks (while the queue is full, and while the last segment is written).
    pub fn close(self) {
        // A full queue makes room as the writer drains it; a writer that has
        // already ended (it panicked) refuses the send, and the join says so.
        let _ = self.tx.send(Message::Close);
        if self.thread.join().is_err() {
            tracing::error!("the prediction log writer panicked");
        }
    }
}

impl PredictionLog {
    /// Starts the writer thread; it ends at [`LogWriter::close`] (or when every
    /// sender is dropped), after writing what it holds.
    pub fn start(
        store: Store,
        replica: &str,
        config: &MonitoringConfig,
        metrics: Metrics,
        drift: Arc<Mutex<drift::Window>>,
    ) -> std::io::Result<(Self, LogWriter)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.log_queue);
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            segments: Segments::open(store, FOLDER, replica, config.max_log_bytes),
            replica: replica.to_string(),
            segment_bytes: config.segment_bytes,
            flush_every: Duration::from_millis(config.flush_interval_ms),
            metrics: metrics.clone(),
            drift,
            queued: queued.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("kiln-prediction-log".into())
            .spawn(move || writer.run(rx))?;
        let log = Self {
            tx: tx.clone(),
            queued,
            limit: config.log_queue,
            metrics,
        };
        Ok((log, LogWriter { tx, thread }))
    }

    /// Queues a sampled request for the log, or drops it (counted) when the
    /// writer is behind.
    pub fn record(&self, logged: Logged) {
        let n = logged.ids.len();
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.limit
            || self
                .tx
                .try_send(Message::Request(Box::new(logged)))
                .is_err()
        {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.metrics.monitoring.prediction_log_dropped(n as u64);
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
    queued: Arc<AtomicUsize>,
}

/// Entries encoded as they arrive: a segment's `entries` array in the making.
#[derive(Default)]
struct Pending {
    json: Vec<u8>,
    n: u64,
    first_ms: u64,
    last_ms: u64,
}

impl Pending {
    fn push(&mut self, entry: &Entry) {
        if self.n == 0 {
            (self.first_ms, self.last_ms) = (entry.t_ms, entry.t_ms);
        } else {
            self.json.push(b',');
        }
        serde_json::to_writer(&mut self.json, entry).expect("entries encode");
        self.first_ms = self.first_ms.min(entry.t_ms);
        self.last_ms = self.last_ms.max(entry.t_ms);
        self.n += 1;
    }
}

impl Writer {
    fn run(mut self, rx: Receiver<Message>) {
        let mut pending = Pending::default();
        let mut since = Instant::now();
        loop {
            // Idle, it blocks until a message; busy, it drains once per tick.
            let first = if pending.n == 0 {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return,
                }
            } else {
                std::thread::sleep(TICK);
                None
            };
            let mut asked = Vec::new();
            let mut closed = false;
            let mut next = first;
            loop {
                let message = match next.take() {
                    Some(m) => m,
                    None => match rx.try_recv() {
                        Ok(m) => m,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    },
                };
                match message {
                    Message::Request(logged) => {
                        if pending.n == 0 {
                            since = Instant::now();
                        }
                        self.take(*logged, &mut pending);
                    }
                    Message::Flush(done) => asked.push(done),
                    // What was queued before it is taken: it comes after them.
                    Message::Close => closed = true,
                }
            }
            if closed || !asked.is_empty() || since.elapsed() >= self.flush_every {
                self.flush(&mut pending);
            }
            for done in asked {
                let _ = done.send(());
            }
            if closed {
                return;
            }
        }
    }

    /// Turns a request into entries (feeding the drift window); a segment is
    /// written whenever it reaches `segment_bytes`.
    fn take(&mut self, logged: Logged, pending: &mut Pending) {
        let Logged {
            ids,
            model,
            rows,
            predictions,
            shadow,
            serving,
        } = logged;
        self.queued.fetch_sub(ids.len(), Ordering::Relaxed);
        let width = rows.len() / ids.len().max(1);
        let version = model.version();
        let basis = model.drift_basis().filter(|_| serving);
        for (k, ((id, row), prediction)) in ids
            .iter()
            .zip(rows.chunks(width.max(1)))
            .zip(&predictions)
            .enumerate()
        {
            if let Some(basis) = basis {
                let output = match prediction {
                    Prediction::Value(v) => Some(*v),
                    Prediction::Values(v) => v.first().copied(),
                    Prediction::Class { label, .. } => model.class_index(label).map(|i| i as f32),
                };
                if let Some(output) = output {
                    self.drift
                        .lock()
                        .expect("drift lock")
                        .push(version, basis, row, output);
                }
            }
            pending.push(&Entry {
                id: *id,
                t_ms: id.t_ms(),
                version: version.to_string(),
                features: row.to_vec(),
                prediction: serde_json::to_value(prediction).unwrap_or_default(),
                shadow: shadow.as_ref().and_then(|(version, answers)| {
                    Some(ShadowAnswer {
                        version: version.clone(),
                        prediction: serde_json::to_value(answers.get(k)?).ok()?,
                    })
                }),
            });
            if pending.json.len() >= self.segment_bytes {
                self.flush(pending);
            }
        }
    }

    /// Writes the pending entries as one segment: `{"replica": ..., "entries": [...]}`.
    fn flush(&mut self, pending: &mut Pending) {
        let p = std::mem::take(pending);
        if p.n == 0 {
            return;
        }
        let mut bytes = serde_json::to_vec(&serde_json::json!({ "replica": self.replica }))
            .expect("a string encodes");
        bytes.pop(); // the closing brace
        bytes.extend_from_slice(b",\"entries\":[");
        bytes.extend_from_slice(&p.json);
        bytes.extend_from_slice(b"]}");
        match self.segments.write(p.first_ms, p.last_ms, &bytes) {
            Ok(total) => self.metrics.monitoring.prediction_log_written(p.n, total),
            Err(e) => {
                self.metrics.monitoring.prediction_log_failed(p.n);
                tracing::error!(error = %e, entries = p.n,
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
