//! Training a named model through `POST /models/{name}/train`: a first job under
//! a new name creates the model with its version active; later jobs add versions
//! to it under the recipe's policy; the default model and other named models are
//! untouched; each model's answers come from its own training data; jobs are
//! listed per model; bad names and the `model.max_models` bound are refused
//! before anything is queued; the models are back after a restart.

use crate::common::{Server, get, post, seed_small_model, train_config, wait_job};
use serde_json::{Value, json};

/// Submits `body` to `/models/{name}/train`; the status and the answer.
async fn train(server: &Server, name: &str, body: Value) -> (u16, Value) {
    let r = post(server, &format!("/models/{name}/train"), body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The iris rows and their labels, from the bundled file.
fn iris() -> (Vec<Vec<f64>>, Vec<String>) {
    let text = std::fs::read_to_string(crate::common::data("iris.csv")).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let x = rows
        .iter()
        .map(|r| r[..4].iter().map(|v| v.parse().unwrap()).collect())
        .collect();
    let y = rows.iter().map(|r| r[4].to_string()).collect();
    (x, y)
}

/// The share of iris rows the model `name` labels right, and the version that
/// answered.
async fn iris_accuracy(server: &Server, name: &str) -> (f64, String) {
    let (x, y) = iris();
    let r = post(
        server,
        &format!("/models/{name}/predict"),
        json!({ "instances": x }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let version = r.headers()["x-model-version"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    let labels: Vec<String> = body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap().to_string())
        .collect();
    let right = labels.iter().zip(&y).filter(|(a, b)| a == b).count();
    (right as f64 / y.len() as f64, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_job_under_a_new_name_creates_the_model_and_later_ones_add_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seed_small_model(&store, 4);
    let mut config = train_config(&store);
    config.model.max_models = 2;
    let server = Server::start(config.clone()).await;
    let iris_job = json!({"dataset": {"path": "iris.csv"}, "epochs": 60, "seed": 3});

    // Names are checked before anything is queued.
    for bad in ["v12", "a..b", "Fraud", "a%2Fb"] {
        let (status, body) = train(&server, bad, iris_job.clone()).await;
        assert!(status == 422 || status == 404, "{bad}: {status} {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(get(&server, "/train").await["jobs"], json!([]));

    // The first job creates `fraud`, its version active.
    let (status, job) = train(&server, "fraud", iris_job.clone()).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["model"], "fraud");
    let job = wait_job(&server, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        (job["version"].as_str(), job["promoted"].as_bool()),
        (Some("v1"), Some(true)),
        "{job}"
    );
    assert_eq!(
        get(&server, "/models").await["models"],
        json!(["kiln", "fraud"])
    );
    let fraud = get(&server, "/models/fraud/versions").await;
    assert_eq!(fraud["active"], "v1", "{fraud}");
    let (accuracy, version) = iris_accuracy(&server, "fraud").await;
    assert!(accuracy >= 0.9, "{accuracy}");
    assert_eq!(version, "v1");

    // The default model is untouched: its one version, its own answers
    // (the seed regression MLP: two numbers, no label).
    let default = get(&server, "/models/kiln/versions").await;
    assert_eq!(default["active"], "v1", "{default}");
    assert_eq!(
        default["versions"].as_array().unwrap().len(),
        1,
        "{default}"
    );
    let answer: Value = post(
        &server,
        "/predict",
        json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(answer["predictions"][0]["label"].is_null(), "{answer}");

    // A regression model beside it, from its own data.
    let (status, job) = train(
        &server,
        "churn",
        json!({"dataset": {"path": "diabetes.csv"}, "epochs": 40}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job = wait_job(&server, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["metrics"]["r2"].as_f64().unwrap() > 0.2, "{job}");
    let r = post(
        &server,
        "/models/churn/predict",
        json!({"instances": [[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let value = answer["predictions"][0]
        .as_f64()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!((25.0..350.0).contains(&value), "{answer}");

    // At model.max_models, a new name is refused; existing models still train.
    let (status, body) = train(&server, "third", iris_job.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("model.max_models"),
        "{body}"
    );

    // A second job: a new version of `fraud`, promoted as the policy says.
    let mut again = iris_job.clone();
    again["promote"] = json!("always");
    again["seed"] = json!(4);
    let (status, job) = train(&server, "fraud", again).await;
    assert_eq!(status, 202, "{job}");
    let job = wait_job(&server, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (job["version"].as_str(), job["promoted"].as_bool()),
        (Some("v2"), Some(true)),
        "{job}"
    );
    let (accuracy, version) = iris_accuracy(&server, "fraud").await;
    assert!(accuracy >= 0.9, "{accuracy}");
    assert_eq!(version, "v2");
    assert_eq!(
        get(&server, "/models/kiln/versions").await["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Jobs by model.
    let models = |list: &Value| -> Vec<Value> {
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["model"].clone())
            .collect()
    };
    assert_eq!(
        models(&get(&server, "/models/fraud/train").await),
        vec![json!("fraud"); 2]
    );
    assert_eq!(
        models(&get(&server, "/models/churn/train").await),
        vec![json!("churn")]
    );
    assert_eq!(get(&server, "/models/kiln/train").await["jobs"], json!([]));
    assert_eq!(
        get(&server, "/train").await["jobs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let r = server
        .client
        .get(server.url("/models/v2/train"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    server.stop().await.unwrap();

    // After a restart on the same store: both models, their versions.
    let server = Server::start(config).await;
    assert_eq!(
        get(&server, "/models").await["models"],
        json!(["kiln", "churn", "fraud"])
    );
    let (accuracy, version) = iris_accuracy(&server, "fraud").await;
    assert!(accuracy >= 0.9, "{accuracy}");
    assert_eq!(version, "v2");
    server.stop().await.unwrap();
}
