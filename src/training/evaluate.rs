//! Judging a network: validation loss and metric during training, and scoring any
//! loaded version on the same rows (for the `if_better` promotion).

use burn::prelude::*;

use super::data::Dataset;
use super::parts::loss_of;
use super::spec::LossKind;
use crate::model::{Head, LoadedModel, Net, Standardize, Task};

/// The metric's name for a task.
pub fn metric_name(task: Task) -> &'static str {
    match task {
        Task::Classification => "accuracy",
        Task::Regression => "r2",
    }
}

/// How a trained network is judged: its task, loss and head, and (regression) the
/// target's standardisation.
pub struct Judge<'a> {
    pub task: Task,
    pub loss: LossKind,
    pub head: Head,
    pub target_scale: Option<&'a Standardize>,
    /// Each row's level (target units), added back before scoring (see
    /// [`crate::model::level`]).
    pub levels: Option<&'a [f32]>,
    /// Most rows per forward pass (the model's bound).
    pub pass_rows: usize,
}

/// Rows per forward pass when evaluating, so memory stays bounded for any split.
const EVAL_CHUNK: usize = 1024;

/// Validation loss, metric and (regression) RMSE in target units.
pub fn evaluate(
    net: &Net,
    device: &Device,
    x: &[f32],
    y: &[f32],
    judge: &Judge,
) -> (f64, f64, Option<f64>) {
    let n = y.len();
    let width = x.len() / n;
    let threshold = if judge.head == Head::Sigmoid {
        0.5
    } else {
        0.0
    };
    // Chunk by chunk: a classifier's outputs are counted and dropped, so memory
    // stays bounded by one chunk whatever the rows and classes.
    let mut loss_sum = 0.0;
    let mut correct = 0usize;
    let mut predictions: Vec<f32> = Vec::new();
    let chunk = EVAL_CHUNK.min(judge.pass_rows).max(1);
    for (xs, ys) in x.chunks(chunk * width).zip(y.chunks(chunk)) {
        let m = ys.len();
        let xt = Tensor::<2>::from_data(TensorData::new(xs.to_vec(), [m, width]), device);
        let o = net.forward(xt);
        let l = loss_of(o.clone(), ys.to_vec(), judge.loss, judge.head, device);
        loss_sum += f64::from(l.into_scalar::<f32>()) * m as f64;
        let out = o.into_data().try_into_vec::<f32>().expect("f32 outputs");
        match judge.task {
            Task::Classification => {
                let k = out.len() / m;
                correct += out
                    .chunks_exact(k)
                    .zip(ys)
                    .filter(|(row, y)| predicted_class(row, threshold) == **y as usize)
                    .count();
            }
            Task::Regression => predictions.extend(out),
        }
    }
    let val_loss = loss_sum / n as f64;
    match judge.task {
        Task::Classification => (val_loss, correct as f64 / n as f64, None),
        Task::Regression => {
            let s = judge.target_scale.expect("regression has a target scale");
            let unscale = |v: f32| f64::from(v * s.std[0] + s.mean[0]);
            let level = |i: usize| judge.levels.map_or(0.0, |l| f64::from(l[i]));
            let truth: Vec<f64> = y
                .iter()
                .enumerate()
                .map(|(i, v)| unscale(*v) + level(i))
                .collect();
            let pred: Vec<f64> = predictions
                .iter()
                .enumerate()
                .map(|(i, v)| unscale(*v) + level(i))
                .collect();
            let (r2, rmse) = r2_rmse(&pred, &truth);
            (val_loss, r2, Some(rmse))
        }
    }
}

/// The class a row of outputs picks: the argmax, or for one output whether it is
/// above `threshold` (0 for a logit, 0.5 for a probability).
pub fn predicted_class(row: &[f32], threshold: f32) -> usize {
    if row.len() == 1 {
        return usize::from(row[0] > threshold);
    }
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |acc, (i, v)| {
            if *v > acc.1 { (i, *v) } else { acc }
        })
        .0
}

/// Coefficient of determination and root mean squared error.
pub fn r2_rmse(pred: &[f64], truth: &[f64]) -> (f64, f64) {
    let n = truth.len() as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let ss_res: f64 = pred.iter().zip(truth).map(|(p, t)| (t - p).powi(2)).sum();
    let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        0.0
    };
    (r2, (ss_res / n).sqrt())
}

/// How well `model` does on `data` (unstandardised rows, as a client would send
/// them): accuracy by label name, or R^2. `None` when it cannot score them at all
/// (other width, other task, labels it does not know, several outputs).
pub fn score(model: &LoadedModel, data: &Dataset) -> Option<f64> {
    if model.input_width() != data.width()
        || model.manifest().net.task != data.task
        || model.check_instances(&data.x).is_err()
    {
        return None;
    }
    let n = data.len();
    let width = data.width();
    let chunk = EVAL_CHUNK.min(model.max_pass_rows()).max(1);
    match data.task {
        Task::Classification => {
            let names = model.manifest().label_names();
            if !data.labels.iter().all(|l| names.contains(l)) {
                return None;
            }
            let k = model.output_width();
            let mut correct = 0;
            for (rows, ys) in data.x.chunks(chunk * width).zip(data.y.chunks(chunk)) {
                let out = model.forward(rows.to_vec(), ys.len());
                correct += out
                    .chunks_exact(k)
                    .zip(ys)
                    .filter(|(row, y)| {
                        names[predicted_class(row, 0.5)] == data.labels[**y as usize]
                    })
                    .count();
            }
            Some(correct as f64 / n as f64)
        }
        Task::Regression => {
            if model.output_width() != 1 {
                return None;
            }
            let mut pred = Vec::with_capacity(n);
            for rows in data.x.chunks(chunk * width) {
                let out = model.forward(rows.to_vec(), rows.len() / width);
                pred.extend(out.iter().map(|v| f64::from(*v)));
            }
            let truth: Vec<f64> = data.y.iter().map(|v| f64::from(*v)).collect();
            Some(r2_rmse(&pred, &truth).0)
        }
    }
}
