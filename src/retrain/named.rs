//! Automatic retraining for named models: one loop (the default model's, in
//! [`super::spawn`]) per named model whose settings enable it (`[retrain]`, or
//! its own `[models.<name>.retrain]`). The models are listed every
//! `retrain.check_interval_ms`: a loop starts for a model made since, and ends
//! for one deleted (or made again under its name). Each loop's jobs name their
//! model and run in the shared trainer.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Deps;
use crate::config::Config;
use crate::serving::bundle::Bundle;
use crate::serving::catalog::Catalog;
use crate::training::jobs::{Served, Target, Trainer};

/// Starts the lister on `tracker` when any model's settings enable retraining;
/// it and every loop end with `stop`.
pub fn spawn_named(
    catalog: Catalog,
    trainer: Trainer,
    config: Arc<Config>,
    stop: CancellationToken,
    tracker: &TaskTracker,
) {
    let enabled = |name: &str| config.for_model(name).is_ok_and(|c| c.retrain.enabled);
    let any = config.retrain.enabled
        || config
            .models
            .keys()
            .any(|name| name != &config.model.name && enabled(name));
    if !any {
        return;
    }
    let every = Duration::from_millis(config.retrain.check_interval_ms);
    let loops_tracker = tracker.clone();
    tracker.spawn(async move {
        let mut loops: HashMap<String, (Weak<Bundle>, CancellationToken)> = HashMap::new();
        loop {
            let listed = catalog.all();
            loops.retain(|name, (bundle, token)| {
                let same = listed
                    .iter()
                    .any(|b| &b.name == name && Weak::ptr_eq(bundle, &Arc::downgrade(b)));
                if !same {
                    token.cancel();
                }
                same
            });
            for bundle in listed {
                if loops.contains_key(&bundle.name) {
                    continue;
                }
                let Ok(own) = config.for_model(&bundle.name) else {
                    continue;
                };
                if !own.retrain.enabled {
                    continue;
                }
                let token = stop.child_token();
                super::spawn(deps(&bundle, own, &trainer), token.clone(), &loops_tracker);
                tracing::info!(
                    model = bundle.name,
                    "automatic retraining follows the model"
                );
                loops.insert(bundle.name.clone(), (Arc::downgrade(&bundle), token));
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
}

/// The loop's handles for the named model `bundle`, run with its own settings.
fn deps(bundle: &Bundle, config: Config, trainer: &Trainer) -> Deps {
    Deps {
        config: Arc::new(config),
        monitor: bundle.monitor.clone(),
        trainer: trainer.clone(),
        store: bundle.store.clone(),
        model: bundle.model.clone(),
        models: bundle.models.clone(),
        target: Some(Target {
            model: bundle.name.clone(),
            store: bundle.store.clone(),
            activate: Arc::new(Served(bundle.models.clone())),
        }),
    }
}
