//! Attributions: which input values drove one prediction, computed with Burn's
//! autodiff on the version that serves, in inference mode.
//!
//! The network is taken in `.valid()` form (dropout off, batch norm on its running
//! statistics, which nothing here writes) and forked onto an autodiff device; only
//! the input requires a gradient. Preprocessing is part of the differentiated
//! function, so attributions, baselines and outputs are all in the raw units the
//! client sent. Classifiers explain the logit (the score before softmax) of the
//! predicted class or of `target`; regression explains the output in target units.
//!
//! The baseline defaults to the training mean, the origin of the standardized
//! scale the network computes in (zeros for a model without standardization),
//! so a feature far from zero in raw units is not credited for its offset.
//!
//! - `gradient_x_input`: `(x - baseline) * df/dx` at `x`.
//! - `integrated_gradients`: `(x - baseline) * the path integral of df/dx` along
//!   the straight line from the baseline to `x`, by Gauss-Legendre quadrature on
//!   `steps` nodes. The attributions add up to `f(x) - f(baseline)` up to the
//!   integration error (`completeness_error`); while it is over
//!   [`COMPLETENESS_TOLERANCE`] of the outputs' scale, the nodes double, up to
//!   `max_steps`.

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

mod quadrature;
pub use quadrature::gauss_legendre;

use super::{LoadedModel, Task};

/// The attribution method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    GradientXInput,
    IntegratedGradients,
}

/// What to explain, checked against the model by [`explain`].
#[derive(Debug, Clone)]
pub struct Request {
    /// Row-major instances, `n` x the model's input width, raw (unstandardised).
    pub rows: Vec<f32>,
    pub n: usize,
    pub method: Method,
    /// Integration nodes to start from (integrated gradients).
    pub steps: usize,
    /// Most nodes the convergence check may double to.
    pub max_steps: usize,
    /// One raw value per input; zeros when absent.
    pub baseline: Option<Vec<f32>>,
    /// A class label (classifiers) or an output index (multi-output regression).
    pub target: Option<String>,
}

/// One instance's explanation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// One number per input value, in the instance's flat order.
    pub attributions: Vec<f32>,
    /// The class (label) or output index explained.
    pub target: String,
    /// The explained quantity at the instance: the class's logit, or the output.
    pub output: f32,
    /// The same at the baseline (integrated gradients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_output: Option<f32>,
    /// `|sum of attributions - (output - baseline_output)|` (integrated
    /// gradients): the integration error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness_error: Option<f32>,
    /// Quadrature nodes used (integrated gradients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
}

/// The integration error integrated gradients aims under: this share of the
/// scale of the outputs compared, `max(|f(x) - f(baseline)|, |f(x)|,
/// |f(baseline)|, 1e-3)` (an instance next to its baseline has a tiny gap, and
/// an error relative to it would chase f32 rounding).
pub const COMPLETENESS_TOLERANCE: f64 = 0.005;

/// What [`COMPLETENESS_TOLERANCE`] is a share of.
pub fn completeness_scale(output: f32, baseline_output: f32) -> f64 {
    let (a, b) = (f64::from(output), f64::from(baseline_output));
    (a - b).abs().max(a.abs()).max(b.abs()).max(1e-3)
}

/// Why an explanation cannot be computed (the client's mistake: a 422).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExplainError {
    /// The request does not fit the model (widths, baseline, target).
    #[error("{0}")]
    Request(String),
    /// The explanation overflowed f32: the instance or the baseline is far outside
    /// the range the model computes in (where `/predict` answers 422 too).
    #[error(
        "instance {instance}: {what} is not a finite number; its values or the baseline are far outside the range the model computes in"
    )]
    NotFinite { instance: usize, what: String },
}

/// Most class names an error message lists.
const SHOWN_LABELS: usize = 20;

/// Most rows per forward-and-backward pass (fewer for a wide model); larger
/// requests run as several passes.
pub const CHUNK_ROWS: usize = 256;

/// Explains every instance of `req` with `model`; `pace` runs before each pass
/// (the caller yields to serving there).
pub fn explain(
    model: &LoadedModel,
    req: &Request,
    pace: &mut dyn FnMut(),
) -> Result<Vec<Explanation>, ExplainError> {
    let bad = |m: String| Err(ExplainError::Request(m));
    let quoted = crate::quote::quoted;
    let manifest = model.manifest();
    let net_cfg = &manifest.net;
    let width = model.input_width();
    if net_cfg.ids().is_some() {
        return bad(
            "this model's first layer is an embedding: its inputs are ids, which have no gradient to explain".into(),
        );
    }
    if req.rows.len() != req.n * width {
        return bad(format!("instances must have {width} values each"));
    }
    let baseline = match &req.baseline {
        Some(b) if b.len() != width => {
            return bad(format!(
                "baseline has {} values; the model takes {width}",
                b.len()
            ));
        }
        Some(b) if b.iter().any(|v| !v.is_finite()) => {
            return bad("baseline values must be finite numbers".into());
        }
        Some(b) => b.clone(),
        None => manifest
            .standardize
            .as_ref()
            .map_or_else(|| vec![0.0; width], |s| s.mean.clone()),
    };
    let outputs = net_cfg.output_width();
    let names = manifest.label_names();
    let fixed_target = match (net_cfg.task, &req.target) {
        // One output: its logit is the second class's.
        (Task::Classification, Some(label)) if outputs == 1 && *label != names[1] => {
            return bad(format!(
                "this classifier has one output, the logit of {}; target must be that class, got {}",
                quoted(&names[1]),
                quoted(label)
            ));
        }
        (Task::Classification, _) if outputs == 1 => Some(0),
        (Task::Classification, Some(label)) => match names.iter().position(|n| n == label) {
            Some(i) => Some(i),
            None => {
                let shown: Vec<String> =
                    names.iter().take(SHOWN_LABELS).map(|n| quoted(n)).collect();
                let more = if names.len() > SHOWN_LABELS {
                    ", ..."
                } else {
                    ""
                };
                return bad(format!(
                    "target {} is not a class; the classes are [{}{more}]",
                    quoted(label),
                    shown.join(", ")
                ));
            }
        },
        (Task::Regression, Some(t)) => match t.parse::<usize>() {
            Ok(i) if i < outputs => Some(i),
            _ => {
                return bad(format!(
                    "target {} must be an output index below {outputs} for this regression model",
                    quoted(t)
                ));
            }
        },
        (Task::Regression, None) => Some(0),
        (Task::Classification, None) => None,
    };

    let chunk = CHUNK_ROWS.min(model.max_pass_rows());
    let device = model.device().clone().autodiff();
    let net = model.net().valid().fork(&device);
    let (mean, std) = match &manifest.standardize {
        Some(s) => (s.mean.clone(), s.std.clone()),
        None => (vec![0.0; width], vec![1.0; width]),
    };
    let target_scale = match (net_cfg.task, &manifest.target_standardize) {
        (Task::Regression, Some(t)) => (t.std[0], t.mean[0]),
        _ => (1.0, 0.0),
    };
    // f(rows) per row, and d f / d rows, for the chosen output of each row.
    let grad = |rows: Vec<f32>, targets: &[Option<usize>]| -> (Vec<f32>, Vec<f32>, Vec<usize>) {
        let m = targets.len();
        let x = Tensor::<2>::from_data(TensorData::new(rows, [m, width]), &device).require_grad();
        let mean_t = Tensor::<2>::from_data(TensorData::new(mean.clone(), [1, width]), &device);
        let std_t = Tensor::<2>::from_data(TensorData::new(std.clone(), [1, width]), &device);
        // A level is the row's own input mean: it is subtracted from the inputs and
        // added to the output inside the graph, so its gradient is counted.
        // Each value scaled before the sum: 12 values near f32::MAX sum past it.
        let level = manifest
            .level
            .map(|_| x.clone().div_scalar(width as f32).sum_dim(1));
        let centred = match &level {
            Some(l) => x.clone().sub(l.clone()),
            None => x.clone(),
        };
        let z = centred.sub(mean_t).div(std_t);
        let out = net.forward_logits(z);
        let k = out.dims()[1];
        let values: Vec<f32> = out.clone().into_data().try_into_vec().unwrap_or_default();
        let chosen: Vec<usize> = targets
            .iter()
            .enumerate()
            .map(|(r, t)| t.unwrap_or_else(|| predicted(&values[r * k..(r + 1) * k])))
            .collect();
        let idx = Tensor::<2, Int>::from_data(
            TensorData::new(chosen.iter().map(|c| *c as i64).collect::<Vec<_>>(), [m, 1]),
            &device,
        );
        let picked = out.gather(1, idx).mul_scalar(target_scale.0);
        let picked = match level {
            Some(l) => picked + l,
            None => picked,
        };
        let f: Vec<f32> = picked
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v + target_scale.1)
            .collect();
        let grads = picked.sum().backward();
        let g: Vec<f32> = x
            .grad(&grads)
            .map(|g| g.into_data().try_into_vec().unwrap_or_default())
            .unwrap_or_else(|| vec![0.0; m * width]);
        (f, g, chosen)
    };

    let label = |c: usize| match net_cfg.task {
        Task::Classification if outputs == 1 => names[1].clone(),
        Task::Classification => names[c.min(names.len() - 1)].clone(),
        Task::Regression => c.to_string(),
    };
    let mut out = Vec::with_capacity(req.n);
    match req.method {
        Method::GradientXInput => {
            for rows in req.rows.chunks(chunk * width) {
                pace();
                let m = rows.len() / width;
                let (f, g, chosen) = grad(rows.to_vec(), &vec![fixed_target; m]);
                for r in 0..m {
                    let x = &rows[r * width..(r + 1) * width];
                    out.push(Explanation {
                        attributions: (0..width)
                            .map(|j| (x[j] - baseline[j]) * g[r * width + j])
                            .collect(),
                        target: label(chosen[r]),
                        output: f[r],
                        baseline_output: None,
                        completeness_error: None,
                        steps: None,
                    });
                }
            }
        }
        Method::IntegratedGradients => {
            let first = req.steps.max(1);
            let most = req.max_steps.max(first);
            let per_pass = (chunk / first).clamp(1, chunk);
            for group in req.rows.chunks(per_pass * width) {
                pace();
                let m = group.len() / width;
                // The class of each instance is chosen at the instance itself.
                let (f_x, _, chosen) = grad(group.to_vec(), &vec![fixed_target; m]);
                let targets: Vec<Option<usize>> = chosen.iter().map(|c| Some(*c)).collect();
                let (f_b, _, _) = grad(baseline.repeat(m), &targets);
                let mut steps = first;
                let attributions = loop {
                    let (nodes, weights) = gauss_legendre(steps);
                    let mut path = Vec::with_capacity(m * steps * width);
                    let mut path_targets = Vec::with_capacity(m * steps);
                    for r in 0..m {
                        let x = &group[r * width..(r + 1) * width];
                        for alpha in &nodes {
                            let a = *alpha as f32;
                            path.extend((0..width).map(|j| baseline[j] + a * (x[j] - baseline[j])));
                            path_targets.push(Some(chosen[r]));
                        }
                    }
                    // The path runs in passes of at most CHUNK_ROWS rows.
                    let mut g = Vec::with_capacity(path.len());
                    for (rows, targets) in
                        path.chunks(chunk * width).zip(path_targets.chunks(chunk))
                    {
                        pace();
                        g.extend(grad(rows.to_vec(), targets).1);
                    }
                    let attributions: Vec<Vec<f64>> = (0..m)
                        .map(|r| {
                            let x = &group[r * width..(r + 1) * width];
                            (0..width)
                                .map(|j| {
                                    let integral: f64 = (0..steps)
                                        .map(|s| {
                                            weights[s] * f64::from(g[(r * steps + s) * width + j])
                                        })
                                        .sum();
                                    f64::from(x[j] - baseline[j]) * integral
                                })
                                .collect()
                        })
                        .collect();
                    let converged = (0..m).all(|r| {
                        let gap = f64::from(f_x[r] - f_b[r]);
                        let error = (attributions[r].iter().sum::<f64>() - gap).abs();
                        let scale = completeness_scale(f_x[r], f_b[r]);
                        !error.is_finite() || error <= COMPLETENESS_TOLERANCE * scale
                    });
                    if converged || steps * 2 > most {
                        break attributions;
                    }
                    steps *= 2;
                };
                for r in 0..m {
                    let gap = f64::from(f_x[r] - f_b[r]);
                    let sum: f64 = attributions[r].iter().sum();
                    out.push(Explanation {
                        attributions: attributions[r].iter().map(|a| *a as f32).collect(),
                        target: label(chosen[r]),
                        output: f_x[r],
                        baseline_output: Some(f_b[r]),
                        completeness_error: Some((sum - gap).abs() as f32),
                        steps: Some(steps),
                    });
                }
            }
        }
    }
    for (instance, e) in out.iter().enumerate() {
        check_finite(instance, e)?;
    }
    Ok(out)
}

/// Refuses an explanation with a non-finite number in it, naming the first one.
fn check_finite(instance: usize, e: &Explanation) -> Result<(), ExplainError> {
    let not_finite = |what: String| ExplainError::NotFinite { instance, what };
    if !e.output.is_finite() {
        return Err(not_finite("the output at the instance".into()));
    }
    if e.baseline_output.is_some_and(|b| !b.is_finite()) {
        return Err(not_finite("the output at the baseline".into()));
    }
    if let Some(j) = e.attributions.iter().position(|a| !a.is_finite()) {
        return Err(not_finite(format!("the attribution of value {j}")));
    }
    Ok(())
}

/// The index of the largest score (the first on ties); 0 when there is one.
fn predicted(row: &[f32]) -> usize {
    if row.len() == 1 {
        return 0;
    }
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |acc, (i, v)| {
            if *v > acc.1 { (i, *v) } else { acc }
        })
        .0
}
