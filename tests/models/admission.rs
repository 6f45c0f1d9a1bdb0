//! Each model's own admission bound (`batching.model_queue_capacity`): a flood of
//! one model's requests gets 429 past it, while another model's requests, and the
//! default model's, are all admitted from the rest of the shared queue.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Server, seed_small_model, test_config};
use serde_json::json;

use super::named::{answers_as_seed, seed_config, upload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_model_gets_429_past_its_own_bound_and_the_others_are_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seed_small_model(&store, 4);
    let mut config = test_config(&store);
    config.batching.queue_capacity = 64;
    config.batching.max_request_rows = 8;
    config.batching.model_queue_capacity = Some(8);
    // One row per pass: the flood's rows wait, so its bound is reached.
    config.batching.max_batch_size = 1;
    let server = Arc::new(Server::start(config).await);
    for name in ["a", "b"] {
        assert_eq!(upload(&server, name, &seed_config()).await.status(), 201);
    }
    answers_as_seed(&server, "b").await;

    // A: 24 clients sending 8 rows at a time, 5 times each (960 rows offered
    // against a bound of 8 in flight).
    let a_body = json!({ "instances": vec![vec![0.5f32; 1000]; 8] });
    let flood: Vec<_> = (0..24)
        .map(|_| {
            let (server, body) = (server.clone(), a_body.clone());
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..5 {
                    let r = server
                        .client
                        .post(server.url("/models/a/predict"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let code = r.status().as_u16();
                    if code == 429 {
                        assert!(r.headers().contains_key("retry-after"));
                    }
                    codes.push(code);
                }
                codes
            })
        })
        .collect();
    // Meanwhile B and the default model, one row at a time: A can hold at most 8
    // of the shared 64 rows, so they are never turned away.
    let mut others = Vec::new();
    for i in 0..40 {
        let path = if i % 2 == 0 {
            "/models/b/predict".to_string()
        } else {
            "/predict".to_string()
        };
        let width = if i % 2 == 0 { 1000 } else { 4 };
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            server
                .client
                .post(server.url(&path))
                .json(&json!({ "instances": [vec![0.25f32; width]] }))
                .send(),
        )
        .await
        .expect("no request may hang")
        .unwrap();
        others.push((path, r.status().as_u16()));
    }
    let mut codes = Vec::new();
    for f in flood {
        codes.extend(f.await.unwrap());
    }
    assert!(
        others.iter().all(|(_, c)| *c == 200),
        "B and the default model beside A's flood: {others:?}"
    );
    let (ok, busy) = (
        codes.iter().filter(|c| **c == 200).count(),
        codes.iter().filter(|c| **c == 429).count(),
    );
    assert_eq!(ok + busy, codes.len(), "only 200 and 429 for A: {codes:?}");
    assert!(ok > 0 && busy > 0, "A: {ok} answered, {busy} turned away");
    // Once the flood is over, A is admitted again.
    answers_as_seed(&server, "a").await;
    Arc::into_inner(server).unwrap().stop().await.unwrap();
}

/// `[models.<name>]` settings apply to that model alone: `a` takes at most 2
/// rows a request, admits 2 rows and waits up to 300 ms to fill a batch; `b`
/// and the default model keep the process's bounds and delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_own_section_bounds_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seed_small_model(&store, 1000);
    let mut config = test_config(&store);
    config.models.insert(
        "a".into(),
        kiln::config::ModelOverrides {
            batching: kiln::config::BatchingOverrides {
                max_request_rows: Some(2),
                model_queue_capacity: Some(2),
                // Its batches wait up to 300 ms to fill.
                max_queue_delay_ms: Some(300.0),
                max_batch_size: Some(8),
                default_timeout_ms: None,
            },
            ..Default::default()
        },
    );
    config.validate().unwrap();
    let server = Server::start(config).await;
    for name in ["a", "b"] {
        assert_eq!(upload(&server, name, &seed_config()).await.status(), 201);
    }
    let rows = |n: usize| json!({ "instances": vec![vec![0.5f32; 1000]; n] });
    let status = |path: &'static str, n: usize| {
        let server = &server;
        async move {
            server
                .client
                .post(server.url(path))
                .json(&rows(n))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // One row waits out a's own batch delay; b's batches go at the process's.
    let timed = |path: &'static str| async move {
        let started = std::time::Instant::now();
        assert_eq!(status(path, 1).await, 200);
        started.elapsed()
    };
    let (a, b) = (
        timed("/models/a/predict").await,
        timed("/models/b/predict").await,
    );
    assert!(a >= Duration::from_millis(250), "{a:?}");
    assert!(b < Duration::from_millis(150), "{b:?}");
    assert_eq!(status("/models/a/predict", 2).await, 200);
    assert_eq!(status("/models/a/predict", 3).await, 413);
    assert_eq!(status("/models/b/predict", 3).await, 200);
    assert_eq!(status("/predict", 3).await, 200);
    server.stop().await.unwrap();
}
