//! One training job from its input to a written version: prepare the data, fit
//! (once, a candidate per recency window, or a search's trials, keeping the
//! best), write the version
//! (atomically), and judge it against the active version under the recipe's
//! `promote` policy. The worker process runs this for the server's jobs and
//! `kiln train` runs it for its own; neither promotes here (the server's model
//! manager does, or the CLI writes the active record).

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::data::RowCounts;
use super::defaults::Chosen;
use super::error::TrainError;
use super::fit::{self, EpochReport, FitOutcome};
use super::input::{JobInput, Prepared};
use super::kept;
use super::promote;
use super::search::{self, Trial};
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
    /// Each trial, when the recipe asked for a search.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// What kiln chose where the recipe left a field unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defaults: Vec<Chosen>,
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
    let mut candidates = Vec::new();
    let mut trials = Vec::new();
    let (spec, prepared, outcome) = if !input.windows.is_empty() {
        let make = |i: usize| JobInput {
            windows: Vec::new(),
            newest: Some(input.windows[i].rows),
            ..input.clone()
        };
        let (i, prepared, outcome, tried) =
            best_of(input.windows.len(), make, budget, device, observer)?;
        for (window, t) in input.windows.iter().zip(tried) {
            let mut c = match t {
                Ok((rows, best, epochs)) => Candidate::trained(window, rows, &best, epochs),
                Err(e) => Candidate::failed(window, e),
            };
            c.chosen = candidates.len() == i;
            candidates.push(c);
        }
        (prepared.spec.clone(), prepared, outcome)
    } else if let Some(search) = input.spec.search.as_ref().filter(|s| s.trials > 1) {
        let make = |i| JobInput {
            spec: search::trial(&input.spec, i).0,
            ..input.clone()
        };
        let (i, prepared, outcome, tried) = best_of(search.trials, make, budget, device, observer)?;
        for (k, t) in tried.into_iter().enumerate() {
            let mut trial = search::trial(&input.spec, k).1;
            match t {
                Ok((_, best, epochs)) => trial = trial.scored(&best, epochs),
                Err(e) => trial.error = Some(e),
            }
            trial.chosen = k == i;
            trials.push(trial);
        }
        (prepared.spec.clone(), prepared, outcome)
    } else {
        let (prepared, outcome) = fit_one(input, budget, device, observer)?;
        (prepared.spec.clone(), prepared, outcome)
    };
    let spec = &spec;
    let FitOutcome {
        net,
        mut manifest,
        history,
        best,
        stopped_early,
        validation,
        defaults,
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
    if let Some(serde_json::Value::Object(t)) = manifest.training.as_mut()
        && !defaults.is_empty()
    {
        t.insert("defaults".into(), serde_json::json!(defaults));
    }
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
        trials,
        defaults,
    })
}

fn fit_one(
    input: &JobInput,
    budget: &Budget,
    device: &Device,
    observer: &mut dyn fit::Observer,
) -> Result<(Prepared, FitOutcome), TrainError> {
    let prepared = input.prepare(budget)?;
    let mut outcome = fit::fit(
        &prepared.data,
        &prepared.spec,
        prepared.net.clone(),
        device,
        observer,
    )?;
    outcome
        .defaults
        .splice(0..0, prepared.chosen.iter().cloned());
    Ok((prepared, outcome))
}

/// One variant's result: its training rows, best epoch and epochs run, or why
/// it could not train.
type Tried = Result<(usize, EpochReport, usize), String>;

/// Fits `n` variants of a job (`make(i)` builds the i-th), one at a time, and
/// keeps the best on the validation rows (all variants validate on the same
/// rows). A variant that cannot train is listed with its error; the job fails
/// only when none can. A cancelled job stops at once.
fn best_of(
    n: usize,
    make: impl Fn(usize) -> JobInput,
    budget: &Budget,
    device: &Device,
    observer: &mut dyn fit::Observer,
) -> Result<(usize, Prepared, FitOutcome, Vec<Tried>), TrainError> {
    let mut best: Option<(usize, Prepared, FitOutcome)> = None;
    let mut tried = Vec::with_capacity(n);
    let mut last_error = None;
    for i in 0..n {
        match fit_one(&make(i), budget, device, observer) {
            Ok((prepared, outcome)) => {
                tried.push(Ok((
                    prepared.rows.train,
                    outcome.best.clone(),
                    outcome.history.len(),
                )));
                let wins = best
                    .as_ref()
                    .is_none_or(|(_, _, b)| windows::better(&outcome.best, &b.best));
                if wins {
                    best = Some((i, prepared, outcome));
                }
            }
            Err(TrainError::Cancelled) => return Err(TrainError::Cancelled),
            Err(e) => {
                tried.push(Err(e.to_string()));
                last_error = Some(e);
            }
        }
    }
    match best {
        Some((i, prepared, outcome)) => Ok((i, prepared, outcome, tried)),
        None => Err(last_error.unwrap_or(TrainError::Data(super::data::DataError::Empty))),
    }
}
