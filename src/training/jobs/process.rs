//! The worker process (`kiln worker --job ID`): runs one job for the server.
//!
//! First thing, before it reads anything, it dies with its parent
//! (`PR_SET_PDEATHSIG`), caps its address space (`RLIMIT_AS`, when asked: the CPU
//! backend), and moves to idle priority, so a job can neither outlive the server
//! nor take its memory or cores. Then it reads its [`Start`] line from stdin, runs
//! the job ([`run`]) and reports [`Event`]s on stdout. SIGTERM cancels between
//! batches. Allocation failure aborts the process (SIGABRT, after Rust's "memory
//! allocation of N bytes failed" on stderr), which the server reads as out of
//! memory.

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod error;

pub use error::ProtectError;

use super::protocol::{Event, MAX_LINE, Start, VERSION, read_line};
use crate::training::budget::Budget;
use crate::training::error::TrainError;
use crate::training::fit::{EpochReport, Observer};
use crate::training::run;

/// How the server starts a worker.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The job to run (its input arrives on stdin).
    #[arg(long)]
    pub job: String,
    /// The server's pid: the worker exits at once if that is no longer its parent.
    #[arg(long)]
    pub parent: Option<u32>,
    /// Address-space cap in MiB (0: none).
    #[arg(long, default_value_t = 0)]
    pub max_memory_mb: u64,
    /// Run at idle scheduling priority.
    #[arg(long)]
    pub low_priority: bool,
}

/// Runs the worker; returns the process's exit code (0: a `finished` or
/// `cancelled` event was sent, 1: `failed`, 2: no job could be read).
pub fn main(args: &WorkerArgs) -> i32 {
    if let Err(e) = protect(args) {
        eprintln!("kiln worker: {e}");
        return 2;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGTERM, cancel.clone()) {
        eprintln!("kiln worker: cannot handle SIGTERM: {e}");
        return 2;
    }
    let start: Start = match read_line(&mut std::io::stdin().lock(), MAX_LINE) {
        Ok(Some(line)) => match serde_json::from_str(&line) {
            Ok(start) => start,
            Err(e) => {
                eprintln!("kiln worker: a bad start line: {e}");
                return 2;
            }
        },
        Ok(None) => {
            eprintln!("kiln worker: no job on stdin");
            return 2;
        }
        Err(e) => {
            eprintln!("kiln worker: reading the job: {e}");
            return 2;
        }
    };
    if start.v != VERSION || start.job != args.job {
        eprintln!(
            "kiln worker: expected protocol {VERSION} for job {}, got {} for {}",
            args.job, start.v, start.job
        );
        return 2;
    }
    crate::telemetry::init(&start.config.telemetry);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| train(&start, &cancel)));
    let event = match result {
        Ok(Ok(result)) => Event::Finished { v: VERSION, result },
        Ok(Err(TrainError::Cancelled)) => Event::Cancelled { v: VERSION },
        Ok(Err(e)) => Event::Failed {
            v: VERSION,
            error: e.to_string(),
        },
        Err(panic) => Event::Failed {
            v: VERSION,
            error: format!("the job panicked: {}", panic_message(&panic)),
        },
    };
    let code = i32::from(matches!(event, Event::Failed { .. }));
    emit(&event);
    code
}

fn train(start: &Start, cancel: &AtomicBool) -> Result<run::Finished, TrainError> {
    let config = &start.config;
    let mut store = config.store.open()?;
    if let Some(name) = &start.model {
        let name = crate::registry::ModelName::parse(name)
            .map_err(|e| TrainError::recipe(e.to_string()))?;
        store = store.model(&name)?;
    }
    let device = config.training_device()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.training.threads.max(1))
        .thread_name(|i| format!("kiln-train-{i}"))
        .build()?;
    let mut observer = Reporter { cancel };
    pool.install(|| {
        run::run(
            &start.input,
            &start.job,
            format!("train: {}", start.job),
            &store,
            &device,
            &Budget::from(&config.training),
            &mut observer,
        )
    })
}

/// Dies with the parent, caps memory, lowers priority.
fn protect(args: &WorkerArgs) -> Result<(), ProtectError> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::Signal;
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(ProtectError::DeathSignal)?;
        // The parent may have died before the line above: then we were adopted.
        if let Some(parent) = args.parent
            && nix::unistd::getppid().as_raw() as u32 != parent
        {
            return Err(ProtectError::ParentGone(parent));
        }
    }
    if args.max_memory_mb > 0 {
        use nix::sys::resource::{Resource, setrlimit};
        let bytes = args.max_memory_mb.saturating_mul(1 << 20);
        setrlimit(Resource::RLIMIT_AS, bytes, bytes).map_err(ProtectError::MemoryCap)?;
    }
    if args.low_priority {
        // Threads made from now on (the training pool) inherit the class.
        super::trainer::lower_current_thread_priority();
    }
    Ok(())
}

/// Reports epochs on stdout and stops on SIGTERM.
struct Reporter<'a> {
    cancel: &'a AtomicBool,
}

impl Observer for Reporter<'_> {
    fn before_batch(&mut self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn epoch(&mut self, report: &EpochReport) {
        emit(&Event::Epoch {
            v: VERSION,
            report: report.clone(),
        });
    }
}

fn emit(event: &Event) {
    let line = serde_json::to_string(event).expect("events serialise");
    let mut out = std::io::stdout().lock();
    // A closed pipe means the server is gone; the death signal follows.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
