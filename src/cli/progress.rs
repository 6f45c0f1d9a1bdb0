//! How `kiln train` reports progress: a bar on a terminal, else (CI, a Kubernetes
//! Job) one plain line every tenth of the run or every 10 seconds, whichever
//! comes first; and Ctrl-C, which stops the run before the next batch.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::training::fit::{EpochReport, Observer};

/// Plain lines at least this often when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// The training run's observer for the command line.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    epochs: usize,
    metric: &'static str,
    last_line: Instant,
    interrupted: Arc<AtomicBool>,
    /// The newest epoch's report.
    pub last: Option<EpochReport>,
}

impl Progress {
    /// A bar (hidden with `quiet`) on a terminal, plain lines elsewhere.
    pub fn new(epochs: usize, metric: &'static str, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(epochs as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} epoch {pos}/{len} {msg} [{elapsed} < {eta}]",
                )
                .expect("a valid template"),
            );
            bar
        });
        let interrupted = Arc::new(AtomicBool::new(false));
        // A second Ctrl-C while the first is handled ends the process at once.
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal_hook::consts::SIGINT,
            130,
            interrupted.clone(),
        );
        let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone());
        Self {
            bar,
            quiet,
            epochs,
            metric,
            last_line: Instant::now(),
            interrupted,
            last: None,
        }
    }

    /// Whether Ctrl-C stopped the run.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    fn describe(&self, r: &EpochReport) -> String {
        format!(
            "train loss {:.4}, validation loss {:.4}, {} {:.4}, {:.0} rows/s",
            r.train_loss, r.val_loss, self.metric, r.val_metric, r.samples_per_second
        )
    }

    /// Ends the bar at the last epoch run (early stopping may end before the
    /// last planned one), showing that epoch's figures.
    pub fn finish(&self) {
        let Some(bar) = &self.bar else { return };
        if let Some(r) = &self.last {
            bar.set_length(r.epoch as u64);
            bar.set_position(r.epoch as u64);
            bar.set_message(self.describe(r));
        }
        bar.abandon();
    }
}

impl Observer for Progress {
    fn before_batch(&mut self) -> bool {
        self.interrupted()
    }

    fn epoch(&mut self, r: &EpochReport) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(r.epoch as u64);
                bar.set_message(self.describe(r));
            }
            None if self.quiet => {}
            None => {
                let step = (self.epochs / 10).max(1);
                let due = r.epoch.is_multiple_of(step) || r.epoch == self.epochs;
                if due || self.last_line.elapsed() >= LINE_EVERY {
                    eprintln!("epoch {}/{}: {}", r.epoch, self.epochs, self.describe(r));
                    self.last_line = Instant::now();
                }
            }
        }
        self.last = Some(r.clone());
    }
}
