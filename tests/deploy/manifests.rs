//! The Kubernetes manifests agree with each other: the training Job's pods match
//! no selector of the serving objects, every claim a pod mounts is defined, and a
//! serving pod's memory limit leaves room for a training worker at its cap.

use serde_json::Value;

/// Every document of every `.yaml` in `deploy/kubernetes`.
fn documents() -> Vec<Value> {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(super::repo("deploy/kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            docs.extend(
                super::yaml_documents(&text)
                    .into_iter()
                    .filter(|d| !d.is_null()),
            );
        }
    }
    docs
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Whether `labels` satisfy a `matchLabels` (or plain) selector.
fn selects(selector: &Value, labels: &Value) -> bool {
    let wanted = selector.get("matchLabels").unwrap_or(selector);
    wanted
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Memory in MiB from a Kubernetes quantity (`512Mi`, `5Gi`).
fn mib(quantity: &str) -> u64 {
    if let Some(g) = quantity.strip_suffix("Gi") {
        g.parse::<u64>().unwrap() * 1024
    } else {
        quantity.strip_suffix("Mi").unwrap().parse().unwrap()
    }
}

#[test]
fn the_manifests_fit_together() {
    let docs = documents();
    let job = kind(&docs, "Job")[0];
    let job_pods = &job["spec"]["template"]["metadata"]["labels"];
    let deployment = kind(&docs, "Deployment")[0];
    let serving_pods = &deployment["spec"]["template"]["metadata"]["labels"];
    let selectors: Vec<(&str, &Value)> = vec![
        ("Deployment", &deployment["spec"]["selector"]),
        ("Service", &kind(&docs, "Service")[0]["spec"]["selector"]),
        (
            "PodDisruptionBudget",
            &kind(&docs, "PodDisruptionBudget")[0]["spec"]["selector"],
        ),
        (
            "NetworkPolicy",
            &kind(&docs, "NetworkPolicy")[0]["spec"]["podSelector"],
        ),
    ];
    for (what, selector) in selectors {
        assert!(
            selects(selector, serving_pods),
            "{what} selects the serving pods"
        );
        assert!(
            !selects(selector, job_pods),
            "{what} also selects the training Job's pods"
        );
    }
    // Every claim mounted is defined here.
    let claims: Vec<&Value> = kind(&docs, "PersistentVolumeClaim")
        .iter()
        .map(|c| &c["metadata"]["name"])
        .collect();
    for pod in [deployment, job] {
        for volume in pod["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
        {
            if let Some(name) = volume.get("persistentVolumeClaim") {
                assert!(
                    claims.contains(&&name["claimName"]),
                    "{name} is defined nowhere"
                );
            }
        }
    }
    // The serving pod's limit covers a training worker at training.max_memory_mb.
    let config = super::read("config/default.toml");
    let cap: u64 = config
        .lines()
        .find_map(|l| l.strip_prefix("max_memory_mb = "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let limit =
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            .as_str()
            .unwrap();
    assert!(
        mib(limit) >= cap + 512,
        "limit {limit} against a {cap} MiB worker cap"
    );
}
