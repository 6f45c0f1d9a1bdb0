//! The server's side of a worker process: start `kiln worker` for a job, hand it
//! the job, relay its events, cancel it (SIGTERM, then SIGKILL after a grace
//! period), and turn the way it ended into an [`Ending`]. A worker that dies by a
//! signal or exits non-zero fails its job with the reason; "out of memory" is
//! SIGABRT plus Rust's allocation-failure line on its stderr.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::protocol::{Event, MAX_EVENT_LINE, Start, read_line};
use crate::training::fit::EpochReport;
use crate::training::run::Finished;

/// Lines of the worker's stderr kept for the failure reason.
const STDERR_LINES: usize = 32;
/// Longest stderr line kept (longer ones are cut).
const STDERR_LINE: u64 = 4096;
/// How often the supervisor looks at the cancel flag.
const TICK: Duration = Duration::from_millis(50);

/// How to start workers.
#[derive(Debug, Clone)]
pub struct Spawner {
    /// The kiln executable.
    pub exe: PathBuf,
    pub max_memory_mb: u64,
    /// Whether the address-space cap applies (CPU backend only: GPU drivers make
    /// large virtual reservations).
    pub cap_memory: bool,
    pub low_priority: bool,
    pub grace: Duration,
}

/// How a worker ended.
#[derive(Debug)]
pub enum Ending {
    Finished(Box<Finished>),
    Cancelled,
    Failed(String),
}

impl Spawner {
    /// Runs `start` in a worker process until it ends. `cancel` is polled;
    /// `on_epoch` hears every epoch.
    pub fn supervise(
        &self,
        start: &Start,
        cancel: &AtomicBool,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> Ending {
        let mut child = match self.spawn(&start.job) {
            Ok(c) => c,
            Err(e) => return Ending::Failed(format!("could not start the worker process: {e}")),
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().map(|s| {
            let (tail, job) = (tail.clone(), start.job.clone());
            std::thread::spawn(move || keep_tail(s, &tail, &job))
        });
        let (tx, events) = channel();
        let stdout = child.stdout.take().map(|out| {
            std::thread::spawn(move || {
                let mut out = BufReader::new(out);
                loop {
                    let event = match read_line(&mut out, MAX_EVENT_LINE) {
                        Ok(Some(line)) => {
                            serde_json::from_str::<Event>(&line).map_err(|e| e.to_string())
                        }
                        Ok(None) => break,
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = &event {
                        tracing::warn!(error = %e, "an unreadable worker event");
                    }
                    if tx.send(event).is_err() {
                        break;
                    }
                }
            })
        });
        // The job goes in on stdin (a worker that died early makes this fail; its
        // exit status says why).
        if let Some(mut stdin) = child.stdin.take() {
            let line = serde_json::to_vec(start).expect("a start line serialises");
            let _ = stdin.write_all(&line).and_then(|()| stdin.write_all(b"\n"));
        }

        let mut last = None;
        // The last event that could not be read: the reason, if no verdict came.
        let mut unreadable = None;
        let mut terminated: Option<Instant> = None;
        loop {
            match events.recv_timeout(TICK) {
                Ok(Ok(Event::Epoch { report, .. })) => on_epoch(&report),
                Ok(Ok(e)) => last = Some(e),
                Ok(Err(e)) => unreadable = Some(e),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if cancel.load(Ordering::Relaxed) {
                match terminated {
                    None => {
                        terminate(&child);
                        terminated = Some(Instant::now());
                    }
                    Some(at) if at.elapsed() > self.grace => {
                        let _ = child.kill();
                    }
                    Some(_) => {}
                }
            }
        }
        let status = child.wait();
        if let Some(t) = stdout {
            let _ = t.join();
        }
        if let Some(t) = stderr {
            let _ = t.join();
        }
        let tail: Vec<String> = tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        match (last, status) {
            (Some(Event::Finished { result, .. }), Ok(s)) if s.success() => {
                Ending::Finished(Box::new(result))
            }
            (Some(Event::Cancelled { .. }), _) => Ending::Cancelled,
            (_, Ok(_)) if terminated.is_some() => Ending::Cancelled,
            (Some(Event::Failed { error, .. }), _) => Ending::Failed(error),
            (_, Ok(status)) if status.success() && unreadable.is_some() => Ending::Failed(format!(
                "the worker's verdict could not be read (an unreadable event: {})",
                unreadable.unwrap_or_default()
            )),
            (_, Ok(status)) => Ending::Failed(self.reason(status, &tail)),
            (_, Err(e)) => Ending::Failed(format!("waiting for the worker failed: {e}")),
        }
    }

    fn spawn(&self, job: &str) -> std::io::Result<Child> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["worker", "--job", job])
            .arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--max-memory-mb")
            .arg(if self.cap_memory {
                self.max_memory_mb.to_string()
            } else {
                "0".into()
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.low_priority {
            cmd.arg("--low-priority");
        }
        cmd.spawn()
    }

    /// Why a worker that sent no verdict ended.
    fn reason(&self, status: ExitStatus, tail: &[String]) -> String {
        use std::os::unix::process::ExitStatusExt;
        // The telling line: the allocation failure, else the last line that is not
        // backtrace noise.
        let allocation = tail.iter().find(|l| l.contains("memory allocation of"));
        let last = allocation
            .or_else(|| {
                tail.iter().rev().find(|l| {
                    !l.trim().is_empty()
                        && !l.starts_with(' ')
                        && !l.starts_with("note:")
                        && !l.contains("backtrace")
                })
            })
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        match (status.code(), status.signal()) {
            (_, Some(sig)) => {
                let name = nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|_| format!("signal {sig}"));
                if name == "SIGABRT" && allocation.is_some() {
                    format!(
                        "out of memory: the job needed more than training.max_memory_mb ({} MiB){last}",
                        self.max_memory_mb
                    )
                } else if name == "SIGKILL" {
                    format!(
                        "the worker process was killed (SIGKILL; the kernel's OOM killer does this when the machine runs out of memory){last}"
                    )
                } else {
                    format!("the worker process died on {name}{last}")
                }
            }
            (Some(code), None) => format!("the worker process exited with code {code}{last}"),
            (None, None) => format!("the worker process ended ({status}){last}"),
        }
    }
}

/// SIGTERM: the worker stops between batches and reports `cancelled`.
fn terminate(child: &Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// Logs the worker's stderr and keeps its last lines.
fn keep_tail(stderr: std::process::ChildStderr, tail: &Mutex<VecDeque<String>>, job: &str) {
    let mut reader = BufReader::new(stderr);
    loop {
        let line = match read_line(&mut reader, STDERR_LINE) {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(_) => "(a line too long or not UTF-8)".into(),
        };
        tracing::info!(job, worker = %line, "worker");
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}
