//! The inference service and the manager's routes, without HTTP: a real store in
//! a temp dir, the real batcher, executor and model manager, tiny models.

use std::sync::Arc;
use std::time::Duration;

use burn::prelude::Device;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::infer::{
    Deadline, InferError, Inference, InputError, Limits, Parts, Query, Rows, check,
};
use super::routing::RouteKind;
use super::swap::WarmUp;
use super::{ManageError, Models};
use crate::batching::Batcher;
use crate::batching::cost::CostModel;
use crate::config::{BatchingConfig, MonitoringConfig};
use crate::executor::ActiveModel;
use crate::explainer::Explainer;
use crate::metrics::Metrics;
use crate::model::net::{ActivationKind, Architecture, MlpConfig};
use crate::model::{Manifest, NetConfig, Task};
use crate::monitoring::Monitor;
use crate::registry::Store;

fn mlp(task: Task, input: usize) -> NetConfig {
    NetConfig {
        task,
        architecture: Architecture::Mlp(MlpConfig {
            input,
            hidden: vec![8],
            output: 3,
            activation: ActivationKind::Relu,
        }),
        preprocess: None,
    }
}

/// Four ids in [0, 8) -> 3 classes: the inputs of an iris model, another domain.
fn embedding() -> NetConfig {
    NetConfig {
        task: Task::Classification,
        architecture: serde_json::from_value(serde_json::json!({
            "kind": "sequential", "input_shape": [4], "layers": [
                {"type": "embedding", "num_embeddings": 8, "embedding_dim": 4},
                {"type": "flatten"},
                {"type": "linear", "in_features": 16, "out_features": 3}]
        }))
        .unwrap(),
        preprocess: None,
    }
}

/// The store is never empty here: nothing is bootstrapped.
fn no_bootstrap() -> (Manifest, crate::model::Net) {
    unreachable!("the test store has versions")
}

/// v1: an iris-shaped classifier (active); v2: an embedding classifier over four
/// ids; v3: another iris-shaped classifier; v4: a classifier of ten inputs.
struct Fixture {
    service: Inference,
    models: Models,
    /// Owned for the test's length (dropping them detaches the threads).
    _threads: (
        crate::serving::ManagerThread,
        crate::explainer::ExplainerThread,
    ),
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let device = Device::flex();
    for net in [
        mlp(Task::Classification, 4),
        embedding(),
        mlp(Task::Classification, 4),
        mlp(Task::Classification, 10),
    ] {
        store
            .create_version(
                &Manifest::new(net.clone(), "test"),
                &net.init_default(&device),
            )
            .unwrap();
    }
    store.set_active("v1").unwrap();
    let metrics = Metrics::new();
    let active = ActiveModel::new(metrics.clone());
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let cost = Arc::new(CostModel::default());
    let batching = BatchingConfig::default();
    crate::executor::spawn(
        batch_rx,
        active.clone(),
        cost.clone(),
        metrics.clone(),
        batching.max_batch_size,
        1,
    )
    .unwrap();
    let batcher = Batcher::spawn(
        &batching,
        batch_tx,
        cost,
        metrics.clone(),
        &TaskTracker::new(),
    );
    let warm = WarmUp {
        max_rows: 4,
        buckets: false,
    };
    let (models, manager) =
        Models::spawn(store.clone(), device, warm, no_bootstrap, active.clone()).unwrap();
    assert_eq!(models.load_initial().await.unwrap(), "v1");
    let monitoring = MonitoringConfig {
        sample_rate: 0.0,
        ..MonitoringConfig::default()
    };
    let (monitor, _) = Monitor::start(store, "test", &monitoring, metrics).unwrap();
    let (explainer, explainer_thread) = Explainer::spawn(4, batcher.clone()).unwrap();
    let limits = Limits {
        max_request_rows: 16,
        queue_capacity: batching.queue_capacity,
        explain_max_rows: 4,
        explain_max_steps: 8,
        default_timeout: std::time::Duration::from_secs(5),
    };
    let service = Inference::new(Parts {
        batcher,
        active,
        routing: models.routes().clone(),
        monitor: Arc::new(monitor),
        explainer,
        limits,
        mirrors: tokio_util::task::TaskTracker::new(),
        lane: 0,
        batch_policy: None,
        admission: Arc::new(tokio::sync::Semaphore::new(batching.model_queue_rows())),
        door: crate::serving::decoding::Door::new(crate::serving::decoding::Decoding::new(2), 0),
    });
    Fixture {
        service,
        models,
        _threads: (manager, explainer_thread),
        _dir: dir,
    }
}

fn query(instances: &[[f32; 4]]) -> Query {
    let now = Instant::now();
    Query {
        rows: Rows {
            values: instances.iter().flatten().copied().collect(),
            n: instances.len(),
            width: 4,
            shape: vec![4],
        },
        top_k: None,
        pinned: None,
        deadline: Deadline {
            compute_by: now + Duration::from_secs(9),
            answer_by: now + Duration::from_secs(10),
        },
    }
}

/// The version that answered `instances`.
async fn answered_by(f: &Fixture, instances: &[[f32; 4]]) -> String {
    let predicted = f.service.predict(query(instances)).await.unwrap();
    assert_eq!(predicted.ids.len(), instances.len());
    predicted.answer.version.to_string()
}

#[tokio::test]
async fn a_canary_computes_only_the_instances_it_takes() {
    let f = fixture().await;
    f.models
        .route(RouteKind::Canary, "v2", 100.0)
        .await
        .unwrap();
    // Out of the embedding's range, and not ids at all: the active version
    // answers both (before, the first panicked in the canary's pass and the
    // second was truncated to ids).
    assert_eq!(answered_by(&f, &[[50.0, 60.0, 70.0, 80.0]]).await, "v1");
    assert_eq!(answered_by(&f, &[[5.1, 3.5, 1.4, 0.2]]).await, "v1");
    // Ids the canary takes go to it, at its share.
    assert_eq!(answered_by(&f, &[[1.0, 2.0, 3.0, 0.0]]).await, "v2");
}

#[tokio::test]
async fn instances_are_checked_against_the_version_that_computes_them() {
    let f = fixture().await;
    let mut q = query(&[[5.1, 3.5, 1.4, 0.2]]);
    q.pinned = Some(f.models.get("v2").await.unwrap());
    let e = f.service.predict(q).await.unwrap_err();
    assert!(
        matches!(&e, InferError::Invalid(InputError::Values(why)) if why.to_string().contains("is not an id")),
        "{e}"
    );
    let v4 = f.models.get("v4").await.unwrap();
    let e = check(&v4, &[0.0; 4], 4, &[4]).unwrap_err();
    assert!(e.to_string().contains("model version v4 expects 10"), "{e}");
    let v1 = f.models.get("v1").await.unwrap();
    let e = check(&v1, &[0.0; 4], 4, &[2, 2]).unwrap_err();
    assert!(matches!(e, InputError::Nesting { .. }), "{e}");

    let mut q = query(&[[5.1, 3.5, 1.4, 0.2]]);
    q.top_k = Some(0);
    assert!(matches!(
        f.service.predict(q).await,
        Err(InferError::ZeroTopK)
    ));
    let q = query(&[[5.1, 3.5, 1.4, 0.2]; 17]);
    assert!(matches!(
        f.service.predict(q).await,
        Err(InferError::TooManyRows {
            rows: 17,
            limit: 16
        })
    ));
    assert!(matches!(
        f.service.predict(query(&[])).await,
        Err(InferError::NoRows)
    ));
    // Still serving.
    assert_eq!(answered_by(&f, &[[5.1, 3.5, 1.4, 0.2]]).await, "v1");
}

#[tokio::test]
async fn promotion_rollback_and_deletion_drop_the_routes_they_touch() {
    let f = fixture().await;
    let routes = f.models.routes().clone();
    let canary = || routes.describe(RouteKind::Canary).map(|r| r.version);
    let shadow = || routes.describe(RouteKind::Shadow).map(|r| r.version);

    // Promoted: its own route goes.
    f.models.route(RouteKind::Canary, "v3", 50.0).await.unwrap();
    f.models.promote("v3").await.unwrap();
    assert_eq!(canary(), None);
    // Rolled back to: its route goes too.
    f.models.route(RouteKind::Shadow, "v1", 50.0).await.unwrap();
    f.models.rollback().await.unwrap();
    assert_eq!(shadow(), None);
    // Deleted: its route goes.
    f.models.route(RouteKind::Canary, "v3", 50.0).await.unwrap();
    f.models.delete("v3").await.unwrap();
    assert_eq!(canary(), None);
    // A route that cannot take the new active version's inputs goes.
    f.models.route(RouteKind::Canary, "v2", 50.0).await.unwrap();
    f.models.promote("v4").await.unwrap();
    assert_eq!(canary(), None);
    // ... and cannot be set beside it.
    let e = f
        .models
        .route(RouteKind::Canary, "v1", 50.0)
        .await
        .unwrap_err();
    assert!(matches!(e, ManageError::Incompatible { .. }), "{e}");
    let e = f
        .models
        .route(RouteKind::Canary, "v4", 50.0)
        .await
        .unwrap_err();
    assert!(matches!(e, ManageError::RouteToActive(_)), "{e}");
}

#[tokio::test]
async fn a_route_is_removed_by_the_version_it_names() {
    let f = fixture().await;
    let routes = f.models.routes().clone();
    f.models.route(RouteKind::Canary, "v3", 50.0).await.unwrap();
    let e = f
        .models
        .route(RouteKind::Canary, "v999", 0.0)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ManageError::RoutedElsewhere { routed, .. } if routed == "v3"),
        "{e}"
    );
    assert_eq!(routes.describe(RouteKind::Canary).unwrap().version, "v3");
    // The shadow slot is another route: nothing to remove there.
    f.models.route(RouteKind::Shadow, "v3", 0.0).await.unwrap();
    f.models.route(RouteKind::Canary, "v3", 0.0).await.unwrap();
    assert!(routes.describe(RouteKind::Canary).is_none());
    let e = f
        .models
        .route(RouteKind::Canary, "v3", 101.0)
        .await
        .unwrap_err();
    assert!(matches!(e, ManageError::BadPercent(_)), "{e}");
}
