use super::*;

fn model(toml: &str) -> Arc<LoadedModel> {
    use crate::model::NetConfig;
    let cfg = NetConfig::parse(toml, false).unwrap();
    let device = burn::prelude::Device::flex();
    let net = cfg.init_default(&device);
    let manifest = crate::model::import::manifest_for(&cfg, "test".into());
    Arc::new(LoadedModel::new("v1", manifest, net, device))
}

/// Every way of sharing a pass (columns, rows, whole) answers what one thread
/// does, for networks that split and ones that do not.
/// A warm pool answers like a cold one, jobs handed over back to back or after
/// a pause, and its drop does not wait much past its window.
#[test]
fn a_warm_pool_runs_every_job_and_ends() {
    let pool = ComputePool::new(3).unwrap().warm(Duration::from_millis(20));
    for round in 0..200u64 {
        let got = pool.run_each(vec![round, round + 1, round + 2], |i, v| (i as u64, v * 2));
        assert_eq!(
            got,
            vec![(0, 2 * round), (1, 2 * round + 2), (2, 2 * round + 4)]
        );
        if round % 50 == 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let started = Instant::now();
    drop(pool);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_shared_pass_answers_what_one_thread_does() {
    let mlp = "task = \"classification\"\n[architecture]\nkind = \"mlp\"\n\
               input = 300\nhidden = [200, 100]\noutput = 5\nactivation = \"gelu\"";
    let stack = "task = \"regression\"\n[architecture]\nkind = \"sequential\"\n\
                 input_shape = [1, 8, 8]\nlayers = [\n\
                 { type = \"conv2d\", in_channels = 1, out_channels = 4, kernel_size = 3, padding = 1 },\n\
                 { type = \"flatten\" },\n\
                 { type = \"linear\", in_features = 256, out_features = 128 },\n\
                 { type = \"tanh\" },\n\
                 { type = \"linear\", in_features = 128, out_features = 2 },\n]";
    let small = "task = \"regression\"\n[architecture]\nkind = \"mlp\"\n\
                 input = 4\nhidden = [8]\noutput = 1";
    let pools = [
        ComputePool::new(1).unwrap(),
        ComputePool::new(2).unwrap(),
        ComputePool::new(3).unwrap(),
    ];
    for (text, splits) in [(mlp, true), (stack, true), (small, false)] {
        let m = model(text);
        assert_eq!(m.splits_columns(), splits, "{text}");
        for n in [1, 2, 3, 17, 64, MAX_COLUMN_ROWS, MAX_COLUMN_ROWS + 1, 300] {
            let rows: Vec<f32> = (0..n * m.input_width())
                .map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.0)
                .collect();
            let alone = m.forward(rows.clone(), n);
            for pool in &pools {
                let shared = pool.forward(&m, rows.clone(), n);
                assert_eq!(shared.len(), alone.len());
                for (a, b) in alone.iter().zip(&shared) {
                    assert!(
                        (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                        "{n} rows, {} threads: {a} vs {b}",
                        pool.threads()
                    );
                }
            }
        }
    }
}

#[test]
fn dropping_a_pool_waits_for_its_threads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let pool = ComputePool::named(2, "kiln-jt").unwrap();
    let ids = pool.run_each(vec![1, 2], |i, x| (i, x * 2));
    assert_eq!(ids, vec![(0, 2), (1, 4)]);
    let finished = Arc::new(AtomicBool::new(false));
    let (started, running) = mpsc::channel();
    let flag = finished.clone();
    pool.pools[1].spawn(move || {
        started.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        flag.store(true, Ordering::SeqCst);
    });
    running.recv().unwrap();
    // rayon's own drop returns at once; ours joins the thread, which ends
    // only after the job it runs.
    drop(pool);
    assert!(
        finished.load(Ordering::SeqCst),
        "the drop joined the thread"
    );
}

#[test]
fn a_pool_dropped_on_its_own_thread_does_not_wait_for_itself() {
    let pool = Arc::new(ComputePool::named(2, "kiln-own").unwrap());
    let inner = pool.clone();
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel();
    pool.pools[0].spawn(move || {
        wait.recv().unwrap();
        // The last handle, dropped on the pool's own thread: the drop joins
        // the other thread only.
        drop(inner);
        done.send(()).unwrap();
    });
    drop(pool);
    go.send(()).unwrap();
    finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the drop returned");
}
