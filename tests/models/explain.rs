//! Integrated gradients on a known ground truth, in raw units far from zero:
//! the target depends on 2 of 8 features, each feature has its own offset and
//! scale, and the model is the default MLP. The default baseline (the training
//! mean) and the converged integral must rank the two first.

use serde_json::{Value, json};

use super::common::{Server, post, submit, train_config};

const MEAN: [f32; 8] = [50.0, -200.0, 3.0, 1000.0, 0.1, 7.0, -40.0, 12.0];
const SCALE: [f32; 8] = [5.0, 30.0, 1.0, 100.0, 0.02, 2.0, 10.0, 3.0];

/// Rows of raw readings; each feature sits 0.5 to 2 scales from its mean.
fn rows(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = super::Rng(seed);
    (0..n)
        .map(|_| (0..8).map(|j| MEAN[j] + SCALE[j] * rng.feature()).collect())
        .collect()
}

/// Depends on features 2 and 5 only.
fn target(x: &[f32]) -> f32 {
    let (a, b) = ((x[2] - MEAN[2]) / SCALE[2], (x[5] - MEAN[5]) / SCALE[5]);
    3.0 * a - 2.0 * b + a * b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrated_gradients_rank_the_two_true_features_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = train_config(dir.path());
    config.explain.max_rows = 200;
    let server = Server::start(config).await;
    let train = rows(2000, 5);
    let targets: Vec<f32> = train.iter().map(|x| target(x)).collect();
    // The default recipe (an MLP of 64 ReLU units), regression.
    let id = submit(
        &server,
        json!({"dataset": {"instances": train, "targets": targets}, "task": "regression",
               "promote": "always"}),
    )
    .await;
    let job = super::succeeded(&server, &id, 600).await;
    let r2 = job["best"]["val_metric"].as_f64().unwrap();
    assert!(r2 > 0.95, "{job}");

    let probe = rows(200, 77);
    let mut report = Vec::new();
    for method in ["integrated_gradients", "gradient_x_input"] {
        let r = post(
            &server,
            "/explain",
            json!({"instances": probe, "method": method}),
        )
        .await;
        assert_eq!(r.status(), 200, "{method}");
        let answer: Value = r.json().await.unwrap();
        let mut hits = 0;
        let (mut errors, mut steps) = (Vec::new(), Vec::new());
        for e in answer["explanations"].as_array().unwrap() {
            let a: Vec<f64> = e["attributions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let mut order: Vec<usize> = (0..8).collect();
            order.sort_by(|x, y| a[*y].abs().total_cmp(&a[*x].abs()));
            hits += usize::from(order[..2].contains(&2) && order[..2].contains(&5));
            if method == "integrated_gradients" {
                let gap = e["output"].as_f64().unwrap() - e["baseline_output"].as_f64().unwrap();
                let error = e["completeness_error"].as_f64().unwrap();
                let sum: f64 = a.iter().sum();
                assert!((sum - gap).abs() - error <= 1e-3 * (1.0 + gap.abs()), "{e}");
                let scale = gap
                    .abs()
                    .max(e["output"].as_f64().unwrap().abs())
                    .max(e["baseline_output"].as_f64().unwrap().abs())
                    .max(1e-3);
                errors.push(error / scale);
                steps.push(e["steps"].as_u64().unwrap());
            }
        }
        let rate = hits as f64 / probe.len() as f64;
        report.push(format!("{method}: top-2 hit rate {rate:.3}"));
        if method == "integrated_gradients" {
            steps.sort_unstable();
            errors.sort_by(f64::total_cmp);
            let at = |q: f64| errors[((errors.len() - 1) as f64 * q) as usize];
            report.push(format!(
                "completeness error / max(|f(x) - f(baseline)|, |f(x)|, |f(baseline)|): median {:.5}, 95th percentile {:.4}, worst {:.4}; nodes {}..{}",
                at(0.5),
                at(0.95),
                at(1.0),
                steps[0],
                steps[steps.len() - 1]
            ));
            assert!(rate >= 0.98, "{report:?}");
            // A ReLU network's gradient jumps along the path: the error falls as
            // 1/nodes there, and explain.max_steps (256) bounds the doubling.
            assert!(at(0.5) <= 0.005 && at(1.0) <= 0.1, "{report:?}");
        }
    }
    eprintln!("validation R² {r2:.3}; {}", report.join("; "));
    server.stop().await.unwrap();
}
