//! Named models within `serving.max_loaded_mb`: past it the least recently used
//! are unloaded; an unloaded model loads again on its next request (`/predict`
//! or OIP v2) with its own answers, or answers 503 with Retry-After when its
//! deadline comes first; Triton's repository `load` and `unload` by hand.

use std::collections::BTreeMap;

use crate::common::{Server, post, seed_small_model, test_config};
use serde_json::{Value, json};

use super::named::{answers_as_seed, index, predict, seed_config, upload};

/// Each model's state in the repository index.
async fn states(server: &Server) -> BTreeMap<String, String> {
    index(server)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn loaded(states: &BTreeMap<String, String>) -> Vec<&str> {
    states
        .iter()
        .filter(|(_, s)| *s == "READY")
        .map(|(n, _)| n.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_models_load_on_demand_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seed_small_model(&store, 4);
    let mut config = test_config(&store);
    // Two seed MLPs (2.2 MB each) and the small default model fit; three do not.
    config.serving.max_loaded_mb = 5;
    let server = Server::start(config).await;

    for name in ["a", "b", "c"] {
        let r = upload(&server, name, &seed_config()).await;
        assert_eq!(r.status(), 201, "{name}");
    }
    // Creating c unloaded the least recently used: a.
    let s = states(&server).await;
    assert_eq!(loaded(&s), ["b", "c", "kiln"], "{s:?}");

    // a loads on its next request and answers with its own weights; b, now the
    // least recently used, makes room.
    answers_as_seed(&server, "a").await;
    let s = states(&server).await;
    assert_eq!(loaded(&s), ["a", "c", "kiln"], "{s:?}");

    // By hand: unload c, then OIP v2 loads it again (b unloaded then, a kept).
    let r = post(&server, "/v2/repository/models/c/unload", json!(null)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(loaded(&states(&server).await), ["a", "kiln"]);
    let ones =
        json!({"name": "input", "shape": [1, 1000], "datatype": "FP32", "data": vec![1.0; 1000]});
    let r = post(&server, "/v2/models/c/infer", json!({ "inputs": [ones] })).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(loaded(&states(&server).await), ["a", "c", "kiln"]);

    // load by hand: b in, the least recently used (a) out.
    let r = post(&server, "/v2/repository/models/b/load", json!(null)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(loaded(&states(&server).await), ["b", "c", "kiln"]);
    answers_as_seed(&server, "b").await;

    // A timeout header that is no timeout: 400 at once, and nothing loads.
    for bad in ["soon", "-1", "0", "1e39", "NaN", ""] {
        let r = server
            .client
            .post(server.url("/models/a/predict"))
            .header("x-kiln-timeout-ms", bad)
            .json(&json!({"instances": [vec![1.0; 1000]]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "x-kiln-timeout-ms: {bad:?}");
    }
    assert!(!loaded(&states(&server).await).contains(&"a"));

    // A request whose deadline comes before its model's load: 503, Retry-After;
    // the load goes on, and the model then answers.
    let r = server
        .client
        .post(server.url("/models/a/predict"))
        .header("x-kiln-timeout-ms", "1")
        .json(&json!({"instances": [vec![1.0; 1000]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("loading"),
        "{body}"
    );
    let mut waited = 0;
    while !loaded(&states(&server).await).contains(&"a") {
        waited += 1;
        assert!(waited < 200, "a never finished loading");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    answers_as_seed(&server, "a").await;

    // Deleting: refused while loaded; once unloaded, gone with its files, and a
    // model made again under the name starts afresh.
    let delete = |name: &str| {
        server
            .client
            .delete(server.url(&format!("/models/{name}")))
            .send()
    };
    let r = delete("b").await.unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("unload it first"),
        "{body}"
    );
    let r = post(&server, "/v2/repository/models/b/unload", json!(null)).await;
    assert_eq!(r.status(), 200);
    let r = delete("b").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"deleted": "b"}));
    assert!(!store.join("models/b").exists() && !store.join("models/b.json").exists());
    assert!(!states(&server).await.contains_key("b"));
    let (code, _) = predict(&server, "/models/b/predict", json!([vec![1.0; 1000]])).await;
    assert_eq!(code, 404);
    assert_eq!(delete("b").await.unwrap().status(), 404);
    assert_eq!(delete("kiln").await.unwrap().status(), 409);
    let r = upload(&server, "b", &seed_config()).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"version": "v1", "active": true})
    );
    answers_as_seed(&server, "b").await;

    // The default model always serves; an unknown model is a 404.
    let r = post(&server, "/v2/repository/models/kiln/unload", json!(null)).await;
    assert_eq!(r.status(), 409);
    let r = post(&server, "/v2/repository/models/nobody/load", json!(null)).await;
    assert_eq!(r.status(), 404);
    let (code, _) = predict(&server, "/predict", json!([[0.5, -1.0, 2.0, 0.25]])).await;
    assert_eq!(code, 200);
    server.stop().await.unwrap();
}
