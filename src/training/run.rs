//! One training job from its input to a written version: prepare the data, fit
//! (once, or a candidate per recency window, keeping the best), write the version
//! (atomically), and judge it against the active version under the recipe's
//! `promote` policy. The worker process runs this for the server's jobs and
//! `kiln train` runs it for its own; neither promotes here (the server's model
//! manager does, or the CLI writes the active record).

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::data::RowCounts;
use super::error::TrainError;
use super::fit::{self, EpochReport, FitOutcome};
use super::input::{JobInput, Prepared};
use super::kept;
use super::promote;
use super::windows::{self, Candidate};
use crate::model::LoadedModel;
use crate::registry::Store;

/// A job that wrote its version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finished {
    pub version: String,
    pub best: EpochReport,
    pub stopped_early: bool,
    pub epochs_run: usize,
    /// Mean training rows per second over the epochs.
    pub samples_per_second: f64,
    /// Whether the `promote` policy wants the version active, and why.
    pub promote: bool,
    pub promotion: String,
    pub rows: RowCounts,
    /// Each window's candidate, when the job had windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

/// Runs `input` to a written version. `run` names the job in the version's
/// training summary, `source` says where the version came from.
pub fn run(
    input: &JobInput,
    run: &str,
    source: String,
    store: &Store,
    device: &Device,
    budget: &Budget,
    observer: &mut dyn fit::Observer,
) -> Result<Finished, TrainError> {
    let (prepared, outcome, candidates) = if input.windows.is_empty() {
        let (prepared, outcome) = fit_one(input, budget, device, observer)?;
        (prepared, outcome, Vec::new())
    } else {
        choose(input, budget, device, observer)?
    };
    let spec = &input.spec;
    let FitOutcome {
        net,
        mut manifest,
        history,
        best,
        stopped_early,
        validation,
    } = outcome;
    promote::annotate(
        &mut manifest,
        source,
        run,
        spec,
        &prepared.rows,
        &best,
        stopped_early,
        &validation,
    );
    let version = store
        .create_version(&manifest, &net)
        .map_err(TrainError::WriteVersion)?;
    // Its data, for automatic retraining; a version without it retrains on
    // feedback alone.
    if let Err(e) = kept::keep(store, &version, &prepared.data, &spec.target) {
        tracing::warn!(version, error = %e, "could not keep the version's training data");
    }
    drop(prepared.data);
    // The active version, as the store names it now (the server re-reads it when
    // it promotes); one that cannot be loaded here is judged as absent.
    let active = store.active().ok().flatten().and_then(|record| {
        store
            .load(&record.version, device)
            .inspect_err(|e| tracing::warn!(version = record.version, error = %e, "cannot load the active version to compare"))
            .ok()
    });
    let candidate = LoadedModel::new(&version, manifest, net, device.clone());
    let (promote, promotion) =
        promote::decide(spec.promote, active.as_ref(), &candidate, &validation);
    let samples_per_second =
        history.iter().map(|r| r.samples_per_second).sum::<f64>() / history.len().max(1) as f64;
    Ok(Finished {
        version,
        epochs_run: history.len(),
        best,
        stopped_early,
        samples_per_second,
        promote,
        promotion,
        rows: prepared.rows,
        candidates,
    })
}

fn fit_one(
    input: &JobInput,
    budget: &Budget,
    device: &Device,
    observer: &mut dyn fit::Observer,
) -> Result<(Prepared, FitOutcome), TrainError> {
    let prepared = input.prepare(budget)?;
    let outcome = fit::fit(
        &prepared.data,
        &input.spec,
        prepared.net.clone(),
        device,
        observer,
    )?;
    Ok((prepared, outcome))
}

/// Fits a candidate per window, one at a time, and keeps the best on the shared
/// validation rows. A window that cannot train is listed with its error; the job
/// fails only when none can. A cancelled job stops at once.
fn choose(
    input: &JobInput,
    budget: &Budget,
    device: &Device,
    observer: &mut dyn fit::Observer,
) -> Result<(Prepared, FitOutcome, Vec<Candidate>), TrainError> {
    let mut best: Option<(usize, Prepared, FitOutcome)> = None;
    let mut candidates = Vec::new();
    let mut last_error = None;
    for window in &input.windows {
        let one = JobInput {
            windows: Vec::new(),
            newest: Some(window.rows),
            ..input.clone()
        };
        match fit_one(&one, budget, device, observer) {
            Ok((prepared, outcome)) => {
                candidates.push(Candidate::trained(
                    window,
                    prepared.rows.train,
                    &outcome.best,
                    outcome.history.len(),
                ));
                let wins = best
                    .as_ref()
                    .is_none_or(|(_, _, b)| windows::better(&outcome.best, &b.best));
                if wins {
                    best = Some((candidates.len() - 1, prepared, outcome));
                }
            }
            Err(TrainError::Cancelled) => return Err(TrainError::Cancelled),
            Err(e) => {
                candidates.push(Candidate::failed(window, e.to_string()));
                last_error = Some(e);
            }
        }
    }
    match best {
        Some((i, prepared, outcome)) => {
            candidates[i].chosen = true;
            Ok((prepared, outcome, candidates))
        }
        None => Err(last_error.unwrap_or(TrainError::Data(super::data::DataError::Empty))),
    }
}
