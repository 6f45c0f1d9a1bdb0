//! Training with more than one thread: batches cut across part threads learn, and
//! the fused Adam step shared among threads is the single-threaded step.

use super::*;

/// A 400 x 64 regression table whose target is a fixed linear mix plus a kink.
fn wide_regression() -> Dataset {
    let mut rng = SplitMix64(17);
    let mut csv = (0..64).map(|i| format!("x{i},")).collect::<String>() + "target\n";
    for _ in 0..400 {
        let row: Vec<f32> = (0..64)
            .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let y = row
            .iter()
            .enumerate()
            .map(|(i, v)| v * (i % 5) as f32)
            .sum::<f32>()
            + row[3].max(0.0) * 4.0;
        for v in &row {
            csv += &format!("{v},");
        }
        csv += &format!("{y}\n");
    }
    Dataset::prepare(
        RawTable::from_csv(&csv, "target").unwrap(),
        Some(Task::Regression),
    )
    .unwrap()
}

#[test]
fn two_threads_cutting_batches_learn() {
    // The backend's generator is the process's and other tests draw from it, so two
    // fits here cannot start from the same weights: the cut's arithmetic is checked
    // against the whole batch in `step` and the shared Adam step below.
    let data = wide_regression();
    let s = spec(
        serde_json::json!({"hidden": [256]}),
        serde_json::json!({"epochs": 20, "batch_size": 256}),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let out = pool.install(|| train(&data, &s));
    let first = out.history[0].val_loss;
    let last = out.history.last().unwrap().val_loss;
    assert!(last.is_finite() && last < 0.5 * first, "{first} -> {last}");
}

#[test]
fn the_fused_adam_step_shared_among_threads_is_the_same_step() {
    use crate::compute::ComputePool;
    use crate::training::parts::{data_loss, initializer, optimizer};
    let data = wide_regression();
    let s = spec(
        serde_json::json!({"hidden": [1024]}),
        serde_json::json!({"optimizer": "adamw"}),
    );
    let cfg = resolve_net(&s, &data, None).unwrap();
    let device = Device::flex().autodiff();
    let net = cfg.init(&initializer(&s.init), &device);
    let pool = ComputePool::named(2, "test-adam").unwrap();
    let (mut alone, mut shared) = (
        optimizer(&s.optimizer, &Device::flex()),
        optimizer(&s.optimizer, &Device::flex()),
    );
    let x = Tensor::<2>::from_data(
        TensorData::new(data.x[..64 * 32].to_vec(), [32, 64]),
        &device,
    );
    let y = data.y[..32].to_vec();
    let (mut a, mut b) = (net.clone(), net);
    for _ in 0..3 {
        for (net, optim, pool) in [
            (&mut a, &mut alone, None),
            (&mut b, &mut shared, Some(&pool)),
        ] {
            let loss = data_loss(
                net,
                x.clone(),
                y.clone(),
                LossKind::Mse,
                Head::Logits,
                &device,
            );
            let grads = GradientsParams::from_grads(loss.backward(), &*net);
            *net = pool_step(optim, net, grads, pool);
        }
    }
    let (wa, wb) = (weights(&a), weights(&b));
    assert!(wa.len() > 64 * 1024, "a layer longer than one chunk");
    assert_eq!(
        wa, wb,
        "the shared step is bit for bit the single-threaded one"
    );
}

fn pool_step(
    optim: &mut crate::training::parts::Stepper,
    net: &Net,
    grads: GradientsParams,
    pool: Option<&crate::compute::ComputePool>,
) -> Net {
    match pool {
        Some(pool) => pool.install(|| optim.step(0.01, net.clone(), grads.into(), Some(pool))),
        None => optim.step(0.01, net.clone(), grads.into(), None),
    }
}
